"""`profile --baseline DIR`: the new profile's differential graph against an earlier output directory."""

from __future__ import annotations

from .conftest import FAKE_STAP, run_cli


def test_baseline_writes_the_differential_graph_beside_the_outputs(tmp_path, fake_stap, busy_proc):
    before = tmp_path / "before"
    before.mkdir()
    # an earlier run in which func_b was hot and func_c did not exist yet
    (before / "stacks.folded").write_text("__libc_start_main;main;func_a;func_b 900\n__libc_start_main;main 100\n")
    out = tmp_path / "after"
    r = run_cli(["--stap", str(FAKE_STAP), "-o", str(out), "--force", "--pid", str(busy_proc.pid), "--duration", "2",
                 "--baseline", str(before)])
    assert r.returncode == 0, r.stderr
    assert "Traceback" not in r.stderr
    svg = (out / "flamegraph.diff.svg").read_text()
    assert 'data-diff="1"' in svg and "flamegraph.diff.svg" in r.stderr
    from stapdoctor.profiler.diff import normalised

    after = {tuple(k.split(";")): int(v) for k, v in (l.rsplit(" ", 1) for l in (out / "stacks.folded").read_text().splitlines())}
    want_before = normalised({("__libc_start_main", "main", "func_a", "func_b"): 900, ("__libc_start_main", "main"): 100},
                             sum(after.values()))
    rows = {tuple(l.rsplit(" ", 2)[0].split(";")): tuple(map(int, l.rsplit(" ", 2)[1:]))
            for l in (out / "stacks.diff.folded").read_text().splitlines()}
    assert rows == {k: (want_before.get(k, 0), after.get(k, 0)) for k in want_before.keys() | after.keys()}
    assert ("__libc_start_main", "main", "func_a", "func_b", "func_c") in after  # new since before
    assert (out / "flamegraph.svg").is_file()  # the normal outputs are all still there
