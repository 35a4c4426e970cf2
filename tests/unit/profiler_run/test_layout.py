"""One job per file: the run machinery is shared through stapproc/request, not borrowed privately."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

PROFILER = Path(__file__).resolve().parents[3] / "profiler"


def _imports(path: Path) -> list[tuple[str, str]]:
    """(module, name) for every `from .module import name` (at any depth) in a file."""
    out = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.level == 1:
            out += [(node.module or "", a.name) for a in node.names]
    return out


def test_no_private_names_cross_between_profiler_modules():
    for f in sorted(PROFILER.glob("*.py")):
        private = [f"{m}.{n}" for m, n in _imports(f) if n.startswith("_")]
        assert not private, f"{f.name} imports private helpers {private}"


def test_prebuilt_does_not_import_the_runner():
    assert not [m for m, _ in _imports(PROFILER / "prebuilt.py") if m == "runner"]
    code = ("import sys, stapdoctor.profiler.prebuilt; "
            "sys.exit('stapdoctor.profiler.runner' in sys.modules)")
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0
