"""Suite-wide: how the tiers share the machine under pytest-xdist, and the QEMU tier's step times.

CI runs `pytest -n 4 --dist loadgroup`: the QEMU tier (~30 min of emulated CPU, one long chain of
steps) and the Ansible tier (mostly waiting on SSH and apt, and one compile) each keep a worker of
their own and start at once, while the unit, browser and vagrant tests share the other workers.
Run one after the other they took 54 min warm.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
_STARTED = time.time()
#: Tests under these directories share per-process fixtures (VMs, test hosts, a systemtap compile), so
#: each directory is one unit of work for one worker: split up, every worker would boot or build its own.
_TIERS = {"tests/e2e/": "e2e", "tests/ansible/": "ansible"}


def pytest_xdist_make_scheduler(config, log):
    """`--dist loadgroup`, grouped by tier directory. (xdist's own grouping, by xdist_group marks,
    renames items through `item._nodeid`, which pytest 9 no longer reads: the marks group nothing.)
    xdist hands out the largest units first, so both tiers start at the beginning of the run."""
    if config.getvalue("dist") != "loadgroup":
        return None
    from xdist.scheduler import LoadGroupScheduling

    class TierScheduling(LoadGroupScheduling):
        def _split_scope(self, nodeid: str) -> str:
            for prefix, group in _TIERS.items():
                if nodeid.startswith(prefix):
                    return group
            return super()._split_scope(nodeid)

    return TierScheduling(config, log)


def pytest_terminal_summary(terminalreporter):
    """Written by the process that ran the tier (tests/e2e/conftest.py), read back here so the summary
    also appears when the tier ran in another process (pytest-xdist)."""
    from stapdoctor.testing.vmtools import times_file

    f = times_file(REPO)
    if f.exists() and f.stat().st_mtime >= _STARTED:
        terminalreporter.section("e2e step times (s)")
        for k, v in json.loads(f.read_text()).items():
            terminalreporter.write_line(f"{v:8.1f}  {k}")
