"""Suite-wide: the QEMU tier's step times at the end of the run."""

from __future__ import annotations

import json
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
_STARTED = time.time()


def pytest_terminal_summary(terminalreporter):
    """Written by the process that ran the tier (tests/e2e/conftest.py), read back here so the summary
    also appears when the tier ran in another process (pytest-xdist)."""
    from stapdoctor.testing.vmtools import times_file

    f = times_file(REPO)
    if f.exists() and f.stat().st_mtime >= _STARTED:
        terminalreporter.section("e2e step times (s)")
        for k, v in json.loads(f.read_text()).items():
            terminalreporter.write_line(f"{v:8.1f}  {k}")
