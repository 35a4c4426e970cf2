"""Every parser case directory: input -> exactly the expected folded text (and stap messages)."""

import io
from pathlib import Path

import pytest
from typer.testing import CliRunner

from stapdoctor.profiler.collapse import collapse_stap
from stapdoctor.profiler.folded import collapse_folded, write_folded

CASES = Path(__file__).resolve().parents[2] / "data" / "collapse"
CASE_DIRS = sorted(p for p in CASES.iterdir() if p.is_dir())


def _input(case: Path) -> Path:
    folded = case / "input.folded"
    return folded if folded.exists() else case / "input.txt"


def test_there_are_cases():
    assert len(CASE_DIRS) >= 18


@pytest.mark.parametrize("case", CASE_DIRS, ids=[p.name for p in CASE_DIRS])
def test_case_api(case: Path):
    src = _input(case)
    with open(src, "rb") as f:
        c = collapse_folded(f) if src.suffix == ".folded" else collapse_stap(f)
    buf = io.BytesIO()
    write_folded(c.stacks, buf)
    assert buf.getvalue().decode("utf-8") == (case / "expected.folded").read_text("utf-8")
    msgs = case / "expected-messages.txt"
    expected_msgs = msgs.read_text("utf-8").splitlines() if msgs.exists() else []
    assert c.messages == expected_msgs


@pytest.mark.parametrize(
    "case", [c for c in CASE_DIRS if (c / "expected.folded").stat().st_size], ids=lambda p: p.name
)
def test_case_cli_folded(case: Path, fg_app):
    r = CliRunner().invoke(fg_app, [str(_input(case)), "--format", "folded", "--top", "0"])
    assert r.exit_code == 0, r.output
    assert r.stdout_bytes.decode("utf-8") == (case / "expected.folded").read_text("utf-8")
