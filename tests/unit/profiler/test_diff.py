"""Differential flame graphs: `flamegraph --diff`, the diff folded form, `profile --baseline`."""

import io
import xml.etree.ElementTree as ET

from typer.testing import CliRunner

from stapdoctor.profiler.diff import (check_baseline, diff_folded_lines, normalised, write_baseline_diff)
from stapdoctor.profiler.svg import diff_colour, render_svg_string

NS = {"s": "http://www.w3.org/2000/svg"}
BEFORE = {("main", "parse"): 60, ("main", "write"): 40}
AFTER = {("main", "parse"): 20, ("main", "write"): 40, ("main", "cache"): 30}


def _frames(svg: str) -> dict:
    root = ET.fromstring(svg.encode())
    out = {}
    for g in root.find("s:g[@id='frames']", NS):
        name = g.find("s:title", NS).text
        out[name.rsplit(" (", 1)[0]] = (g, name, g.find("s:rect", NS).get("fill"))
    return out


def test_folded_form_is_difffolded_pl():
    assert diff_folded_lines(BEFORE, AFTER) == ["main;cache 0 30", "main;parse 60 20", "main;write 40 40"]


def test_normalise_scales_before_to_after_total():
    assert normalised({("a",): 100, ("b",): 50}, 300) == {("a",): 200, ("b",): 100}


def test_svg_colours_and_counts_by_change():
    svg = render_svg_string(AFTER, before=BEFORE, minwidth=0)
    f = _frames(svg)
    assert set(f) == {"all", "main", "parse", "write", "cache"}
    g, title, fill = f["parse"]
    assert g.get("data-s") == "20" and g.get("data-b") == "60"
    assert title == "parse (20 samples, 22.22%; before 60; change -40, -44.44%)"
    assert fill == diff_colour(-40, 40) and fill.endswith("ff")  # blue: shrank, the largest change
    assert f["cache"][2] == diff_colour(30, 40) and f["cache"][2].startswith("#ff")  # red: grew
    assert f["write"][2] == "#ffffff"  # unchanged
    assert f["all"][0].get("data-b") == "100" and f["all"][0].get("data-s") == "90"
    assert 'data-diff="1"' in svg


def test_frame_gone_since_before_counts_for_its_callers_but_is_not_drawn():
    f = _frames(render_svg_string({("main", "b"): 10}, before={("main", "a"): 5, ("main", "b"): 10}, minwidth=0))
    assert "a" not in f
    assert f["main"][0].get("data-b") == "15" and f["main"][0].get("data-s") == "10"


def test_cli_diff_svg_and_folded(fg_app, tmp_path, data_dir):
    b = tmp_path / "before.folded"
    a = tmp_path / "after.folded"
    b.write_text("main;parse 60\nmain;write 40\n")
    a.write_text("main;parse 20\nmain;write 40\nmain;cache 30\n")
    r = CliRunner().invoke(fg_app, ["--diff", str(b), str(a), "-f", "folded", "--top", "0"])
    assert r.exit_code == 0, r.output
    assert r.stdout == "main;cache 0 30\nmain;parse 60 20\nmain;write 40 40\n"
    r = CliRunner().invoke(fg_app, ["--diff", "--normalise", str(b), str(a), "-f", "folded", "--top", "0"])
    assert r.stdout == "main;cache 0 30\nmain;parse 54 20\nmain;write 36 40\n"
    out = tmp_path / "d.svg"
    r = CliRunner().invoke(fg_app, ["--diff", str(b), str(a), "-o", str(out), "--top", "3"])
    assert r.exit_code == 0, r.output
    assert "before 100 samples, after 90: -10 (-10.0%)" in out.read_text() and "differential" in r.stdout
    # stap output on one side works too
    stap = data_dir / "collapse" / "busy-debian-unstable" / "input.txt"
    r = CliRunner().invoke(fg_app, ["--diff", str(stap), str(stap), "-f", "folded", "--top", "0"])
    assert r.exit_code == 0 and all(x.split()[-1] == x.split()[-2] for x in r.stdout.splitlines())


def test_cli_diff_usage_errors(fg_app, tmp_path):
    a = tmp_path / "a.folded"
    a.write_text("main 1\n")
    for args, needle in ((["--diff", str(a)], "needs two profiles"), ([str(a), str(a)], "add --diff"),
                         (["--diff", str(a), str(a), "-f", "speedscope"], "no differential form"),
                         (["--normalise", str(a)], "only applies to --diff")):
        r = CliRunner().invoke(fg_app, args)
        assert r.exit_code == 2 and needle in r.stderr, (args, r.output)
    e = tmp_path / "empty.folded"
    e.write_text("")
    r = CliRunner().invoke(fg_app, ["--diff", str(e), str(a)])
    assert r.exit_code == 1 and "no stacks found in empty.folded" in r.stderr


def test_baseline_dir_checked_and_diff_written(tmp_path):
    old, new = tmp_path / "old", tmp_path / "new"
    old.mkdir()
    new.mkdir()
    assert "no stacks.folded" in check_baseline(old)
    assert "not a directory" in check_baseline(tmp_path / "missing")
    (old / "stacks.folded").write_text("main;parse 60\nmain;write 40\n")
    (new / "stacks.folded").write_text("main;parse 40\nmain;write 80\nmain;cache 60\n")
    assert check_baseline(old) is None
    svg = write_baseline_diff(old, new)
    assert svg == new / "flamegraph.diff.svg" and 'data-diff="1"' in svg.read_text()
    # normalised: before 100 -> after's 180
    assert (new / "stacks.diff.folded").read_text() == "main;cache 0 60\nmain;parse 108 40\nmain;write 72 80\n"


def test_profile_baseline_refused_before_profiling(tmp_path):
    import typer

    from stapdoctor.profiler.cli import profile

    app = typer.Typer(add_completion=False)
    app.command()(profile)
    r = CliRunner().invoke(app, ["--baseline", str(tmp_path), "--pid", "1", "-o", str(tmp_path / "out")])
    assert r.exit_code == 2 and "no stacks.folded" in r.stderr
    assert not (tmp_path / "out").exists()
