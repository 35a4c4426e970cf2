"""`stapdoctor flamegraph` through Typer: outputs, formats, and clear errors with exit codes."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

BUSY = "busy-debian-unstable"


@pytest.fixture
def run(fg_app):
    app = fg_app
    runner = CliRunner()

    def _run(*args, input=None):
        return runner.invoke(app, [str(a) for a in args], input=input)

    return _run


@pytest.fixture
def busy(data_dir):
    return data_dir / "collapse" / BUSY / "input.txt"


def test_svg_to_file_with_top_table(run, busy, tmp_path):
    out = tmp_path / "flame.svg"
    r = run(busy, "-o", out, "--title", "busy", "--top", "3")
    assert r.exit_code == 0, r.output
    text = out.read_text()
    assert text.startswith("<?xml") and "<title>func_b (9,916 samples, 66.87%)</title>" in text
    assert "func_c" in r.stdout and "Self" in r.stdout and "98.60" in r.stdout
    assert not list(tmp_path.glob(".*tmp*"))


def test_format_from_suffix_and_explicit(run, busy, tmp_path):
    r = run(busy, "-o", tmp_path / "p.json", "--top", "0")
    assert r.exit_code == 0
    assert json.loads((tmp_path / "p.json").read_text())["profiles"][0]["type"] == "sampled"
    r = run(busy, "-o", tmp_path / "p.folded", "--top", "0")
    assert (tmp_path / "p.folded").read_text().splitlines()[-1] == "func_c 4"
    r = run(busy, "-f", "speedscope", "--top", "0")
    assert json.loads(r.stdout)["$schema"].endswith("file-format-schema.json")


def test_folded_input_from_stdin(run):
    r = run("-", "-f", "folded", "--top", "0", input="main;a 2\nmain;a 3\nmain;b 1\n")
    assert r.exit_code == 0
    assert r.stdout == "main;a 5\nmain;b 1\n"


def test_svg_options(run, busy, tmp_path):
    out = tmp_path / "f.svg"
    r = run(busy, "-o", out, "--reverse", "--inverted", "--palette", "module", "--width", "900",
            "--minwidth", "2", "--subtitle", "s", "--top", "0")
    assert r.exit_code == 0, r.output
    t = out.read_text()
    assert 'width="900"' in t and 'data-reverse="1"' in t and 'data-inverted="1"' in t and 'id="legend"' in t


def test_warnings_are_reported(run, data_dir):
    r = run(data_dir / "collapse" / "warnings-interleaved" / "input.txt", "-f", "folded", "--top", "0")
    assert r.exit_code == 0
    assert "stap reported 3 message(s)" in r.stderr and "Missing unwind data" in r.stderr
    r = run(data_dir / "collapse" / "final-stack-without-count" / "input.txt", "-f", "folded", "--top", "0")
    assert r.exit_code == 0 and "no count line" in r.stderr


@pytest.mark.parametrize(
    "make,code,needle",
    [
        (lambda p: p / "missing.out", 2, "no such file"),
        (lambda p: p, 2, "is a directory"),
        (lambda p: (p / "empty.out").write_bytes(b"") and p / "empty.out" or p / "empty.out", 1, "no stacks found"),
        (lambda p: (p / "junk.out").write_bytes(b"hello\nworld\n\x00\xff\n") and p / "junk.out", 1, "no stacks found"),
    ],
    ids=["missing", "directory", "empty", "unparseable"],
)
def test_user_errors_are_one_line_without_traceback(run, tmp_path, make, code, needle):
    r = run(make(tmp_path), "-o", tmp_path / "x.svg")
    assert r.exit_code == code
    assert needle in r.stderr
    assert "Traceback" not in r.output and r.exception is None or isinstance(r.exception, SystemExit)
    assert not (tmp_path / "x.svg").exists()


def test_usage_error_exit_2(run, busy):
    assert run(busy, "--palette", "rainbow").exit_code == 2
    assert run(busy, "--width", "5").exit_code == 2


def test_output_directory_missing(run, busy, tmp_path):
    r = run(busy, "-o", tmp_path / "nope" / "x.svg")
    assert r.exit_code == 2 and "does not exist" in r.stderr


def test_module_import_is_light():
    code = "import sys, stapdoctor.profiler.cli; print(sorted(m for m in sys.modules if m.startswith(('rich','stapdoctor.profiler.svg','json'))))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert "stapdoctor.profiler.svg" not in out and "'rich'" not in out


def test_a_flamegraph_run_imports_only_what_it_uses(data_dir, tmp_path):
    """Start-up is part of the speed (a tenth of a 60 MB run): `stapdoctor flamegraph -o F --top 0`
    imports neither the fleet command (Ansible's settings, threads) nor rich (nothing to print but
    one line); with a top-N table, rich comes back; and a run of `check` imports no profiler code."""
    busy = data_dir / "collapse" / BUSY / "input.txt"
    code = ("import sys; from stapdoctor.doctor.cli import main; sys.argv = ['stapdoctor'] + sys.argv[1:]\n"
            "try:\n    main()\nexcept SystemExit as e:\n    assert not e.code, e.code\n"
            "print(sorted(m for m in sys.modules if m.startswith(('rich', 'stapdoctor'))), file=sys.stderr)")

    def modules(*args):
        r = subprocess.run([sys.executable, "-c", code, *map(str, args)], capture_output=True, text=True)
        assert r.returncode == 0, r.stderr
        return r.stderr.splitlines()[-1]

    quiet = modules("flamegraph", busy, "-o", tmp_path / "f.svg", "--top", "0")
    assert "stapdoctor.profiler.svg" in quiet and "stapdoctor.profiler.collapse" in quiet
    assert "stapdoctor.doctor.fleet" not in quiet and "'rich" not in quiet
    assert "'rich.console'" in modules("flamegraph", busy, "-o", tmp_path / "f.svg", "--top", "3")
    version = modules("check", "--help")
    assert "stapdoctor.profiler" not in version and "stapdoctor.doctor.fleet" not in version


def test_help_and_typos_still_see_every_command():
    exe = Path(sys.executable).parent / "stapdoctor"
    r = subprocess.run([exe, "--help"], capture_output=True, text=True, env={"COLUMNS": "100", "PATH": "/usr/bin:/bin"})
    assert r.returncode == 0, r.stderr
    assert all(f" {c} " in r.stdout for c in ("check", "snapshot", "flamegraph", "profile", "fleet")), r.stdout
    r = subprocess.run([exe, "flet"], capture_output=True, text=True, env={"COLUMNS": "100", "PATH": "/usr/bin:/bin"})
    assert r.returncode == 2 and "Did you mean 'fleet'" in r.stderr
    r = subprocess.run([exe, "fleet", "--help"], capture_output=True, text=True, env={"COLUMNS": "100", "PATH": "/usr/bin:/bin"})
    assert r.returncode == 0 and "--transport" in r.stdout


def test_installed_command_line(data_dir, tmp_path):
    """The real entry point: `stapdoctor flamegraph` as a user runs it."""
    exe = Path(sys.executable).parent / "stapdoctor"
    busy = data_dir / "collapse" / BUSY / "input.txt"
    r = subprocess.run([exe, "flamegraph", busy, "-o", tmp_path / "f.svg", "--top", "2"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "f.svg").read_text().rstrip().endswith("</svg>") and "func_c" in r.stdout
    r = subprocess.run([exe, "flamegraph", tmp_path / "nope.out"], capture_output=True, text=True)
    assert r.returncode == 2 and "no such file" in r.stderr and "Traceback" not in r.stderr
    (tmp_path / "empty.out").write_bytes(b"")
    r = subprocess.run([exe, "flamegraph", tmp_path / "empty.out"], capture_output=True, text=True)
    assert r.returncode == 1 and "no stacks found" in r.stderr and "Traceback" not in r.stderr


def test_folded_from_other_tools_renders_svg(run, tmp_path):
    src = tmp_path / "perf.folded"
    src.write_text("java;start;Thread.run;Work.compute 30\njava;start;GC 12\n")
    out = tmp_path / "o.svg"
    r = run(src, "-o", out, "--top", "0")
    assert r.exit_code == 0, r.output
    assert "<title>Work.compute (30 samples, 71.43%)</title>" in out.read_text()
    # forcing the stap parser on folded text finds nothing
    r = run(src, "--input-format", "stap", "-o", tmp_path / "p.svg")
    assert r.exit_code == 1 and "no stacks found" in r.stderr


def test_reader_going_away_is_quiet(data_dir, tmp_path):
    """`stapdoctor flamegraph big.out -f folded | head -1` ends quietly, like any filter."""
    src = tmp_path / "many.folded"
    src.write_text("".join(f"main;f{i};g{i} {i + 1}\n" for i in range(200_000)))
    exe = Path(sys.executable).parent / "stapdoctor"
    p = subprocess.Popen([exe, "flamegraph", src, "-f", "folded", "--top", "0"], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE)
    assert p.stdout.read(20).startswith(b"main;f")
    p.stdout.close()
    err = p.stderr.read().decode()
    assert p.wait() == 0 and "Traceback" not in err and "Exception" not in err, err


def test_module_palette_without_module_names_says_so_and_uses_hot(run, tmp_path):
    src = tmp_path / "x.folded"
    src.write_text("main;work 3\n")
    out = tmp_path / "o.svg"
    r = run(src, "-o", out, "--palette", "module", "--top", "0")
    assert r.exit_code == 0 and "names no modules" in r.stderr and "using the hot palette" in r.stderr
    assert 'id="legend"' not in out.read_text() and "unknown module" not in out.read_text()


def test_terminal_gets_no_escape_sequences_and_no_endless_name(run, tmp_path):
    src = tmp_path / "x.folded"
    huge = "f" * 10_000_000
    src.write_text(f"main;evil\u009b31m\x1b]0;title\x07 5\nmain;{huge} 1\nmain;gnp.\u202eexe 2\n")
    r = run(src, "-o", tmp_path / "o.svg", "--top", "5")
    assert r.exit_code == 0, r.output
    assert "\x1b" not in r.stdout and "\u009b" not in r.stdout and "\x07" not in r.stdout
    assert "\u202e" not in r.stdout and "gnp.\ufffdexe" in r.stdout  # a bidi override reorders what is read
    assert "evil" in r.stdout and "more characters" in r.stdout and len(r.stdout) < 20_000


def test_speedscope_with_non_utf8_file_name_and_title(run, tmp_path):
    import os

    name = os.fsdecode(b"prof\xff.folded")
    src = tmp_path / name
    src.write_text("main;work 3\n")
    out = tmp_path / "o.json"
    r = run(src, "-o", out, "--top", "0")
    assert r.exit_code == 0, r.output
    assert json.loads(out.read_text())["name"] == "prof\ufffd.folded"
    r = run(src, "-o", out, "--top", "0", "--title", os.fsdecode(b"t\xfe"))
    assert r.exit_code == 0 and json.loads(out.read_text())["name"] == "t\ufffd"


def test_raw_names_option(run, data_dir):
    src = data_dir / "collapse" / "mangled-cpp-rust-names" / "input.txt"
    r = run(src, "-f", "folded", "--top", "0", "--raw-names")
    assert r.exit_code == 0 and "_ZNSt6vectorIiSaIiEE9push_backERKi" in r.stdout
    r = run(src, "-f", "folded", "--top", "0")
    assert "std::vector<int" in r.stdout and "_ZNSt6" not in r.stdout


def test_only_stap_warnings_is_no_stacks(run, data_dir):
    r = run(data_dir / "collapse" / "only-stap-warnings" / "input.txt", "-o", "-")
    assert r.exit_code == 1 and "no stacks found" in r.stderr and "stap reported 3 message(s)" in r.stderr
