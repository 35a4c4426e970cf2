"""Suite-wide: how the tiers share the machine under pytest-xdist, and the QEMU tier's step times.

CI runs `pytest -n 4 --dist loadgroup`: the QEMU tier (~30 min of emulated CPU, one long chain of
steps) and the two Ansible groups (mostly waiting on SSH, apt and one compile) each keep a worker of
their own and start at once, while the unit, browser and vagrant tests share the remaining worker.
Run one after the other they took 54 min warm; side by side the run is as long as its longest tier.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
_STARTED = time.time()
# Long groups first, so each is a worker's first unit of work and starts at the beginning of the run.
_GROUP_ORDER = ("e2e", "ansible-env", "ansible-hosts")


def _group(item: pytest.Item) -> str | None:
    """The xdist group of a test: tests sharing VMs or test hosts must run in one process (their
    fixtures are per process: split across workers, each would boot or build its own)."""
    if item.get_closest_marker("e2e"):
        return "e2e"
    if item.get_closest_marker("ansible"):
        # tests/ansible/conftest.py's session fixture: three hosts and a real systemtap compile
        return "ansible-env" if "ansible_env" in getattr(item, "fixturenames", ()) else "ansible-hosts"
    return None


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(session, config, items):
    """Under xdist only (workers collect; xdist reads the marks after this hook): group, and put the
    long groups first. A plain `pytest` keeps the collection order (the Ansible tier before the QEMU
    tier, which then finds the systemtap build the Ansible tier put in the controller cache)."""
    if not os.environ.get("PYTEST_XDIST_WORKER"):
        return
    rank = {name: i for i, name in enumerate(_GROUP_ORDER)}
    keyed = []
    for pos, item in enumerate(items):
        group = _group(item)
        if group:
            item.add_marker(pytest.mark.xdist_group(group))
        keyed.append((rank.get(group, len(rank)), pos, item))
    items[:] = [item for _, _, item in sorted(keyed, key=lambda t: (t[0], t[1]))]


def pytest_terminal_summary(terminalreporter):
    """Written by the process that ran the tier (tests/e2e/conftest.py), read back here so the summary
    also appears when the tier ran in another process (pytest-xdist)."""
    from stapdoctor.testing.vmtools import times_file

    f = times_file(REPO)
    if f.exists() and f.stat().st_mtime >= _STARTED:
        terminalreporter.section("e2e step times (s)")
        for k, v in json.loads(f.read_text()).items():
            terminalreporter.write_line(f"{v:8.1f}  {k}")
