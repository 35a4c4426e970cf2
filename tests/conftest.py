"""Suite-wide: how the tiers share the machine under pytest-xdist, and the QEMU tier's step times.

CI runs `pytest -n 4 --dist loadgroup`: the QEMU tier (~30 min of emulated CPU, one long chain of
steps) and the Ansible tier (mostly waiting on SSH and apt, and one compile) each keep a worker of
their own and start at once, while the unit, browser and vagrant tests share the other workers.
Run one after the other they took 54 min warm. Side by side, the QEMU tier is the longest chain and
its emulated CPUs must not starve (a -dbg unpack in the VM, 7 min alone, passed its 30-min timeout when
the other workers' compiles competed): every other test runs at nice 10, so it takes the cycles the
VMs leave idle (SSH round trips, boots, the Debian 12 VM's single vCPU) instead of theirs.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
_STARTED = time.time()
#: Tests under these directories share per-process fixtures (VMs, test hosts, a systemtap compile), so
#: each directory is one unit of work for one worker: split up, every worker would boot or build its own.
_TIERS = {"tests/e2e/": "e2e", "tests/ansible/": "ansible"}


def _tier(nodeid: str) -> str | None:
    return next((group for prefix, group in _TIERS.items() if nodeid.startswith(prefix)), None)


def pytest_xdist_make_scheduler(config, log):
    """`--dist loadgroup`, grouped by tier directory. (xdist's own grouping, by xdist_group marks,
    renames items through `item._nodeid`, which pytest 9 no longer reads: the marks group nothing.)
    xdist hands out the largest units first, so both tiers start at the beginning of the run."""
    if config.getvalue("dist") != "loadgroup":
        return None
    from xdist.scheduler import LoadGroupScheduling

    class TierScheduling(LoadGroupScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return _tier(nodeid) or super()._split_scope(nodeid)

    return TierScheduling(config, log)


#: Niceness of tests outside the QEMU tier when xdist runs them beside it (children inherit it).
_BESIDE_THE_VMS = 10


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item):
    """Under xdist, the QEMU tier's tests run at normal priority and every other test at nice 10
    (Linux niceness is per thread: this sets the worker's main thread, which starts the tests'
    processes; root may lower it again when the same worker later runs a QEMU test)."""
    if not os.environ.get("PYTEST_XDIST_WORKER") or os.geteuid() != 0:
        return
    nice = 0 if _tier(item.nodeid) == "e2e" else _BESIDE_THE_VMS
    if os.getpriority(os.PRIO_PROCESS, 0) != nice:
        os.setpriority(os.PRIO_PROCESS, 0, nice)


def pytest_terminal_summary(terminalreporter):
    """Written by the process that ran the tier (tests/e2e/conftest.py), read back here so the summary
    also appears when the tier ran in another process (pytest-xdist)."""
    from stapdoctor.testing.vmtools import times_file

    f = times_file(REPO)
    if f.exists() and f.stat().st_mtime >= _STARTED:
        terminalreporter.section("e2e step times (s)")
        for k, v in json.loads(f.read_text()).items():
            terminalreporter.write_line(f"{v:8.1f}  {k}")
