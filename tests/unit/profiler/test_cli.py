"""`stapdoctor flamegraph` through Typer: outputs, formats, and clear errors with exit codes."""

import json
import subprocess
import sys

import pytest
import typer
from typer.testing import CliRunner

from stapdoctor.profiler.cli import flamegraph

BUSY = "busy-debian-unstable"


@pytest.fixture
def run():
    app = typer.Typer(add_completion=False)
    app.command()(flamegraph)
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
    assert text.startswith("<?xml") and "<title>func_c (14,620 samples, 95.38%)</title>" in text
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
