"""Fixtures for the e2e tier: cached VM images, booted VMs with stapdoctor installed inside.

VM logs (serial console, stap output, command transcripts) go to an artefact directory per VM
($STAPDOCTOR_E2E_ARTEFACTS or <repo>/.artefacts/e2e/<name>); removed when all tests using that VM
passed, kept when one failed, for CI to upload.
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import pytest

from stapdoctor.testing import vm as vmh
from stapdoctor.testing.vmtools import TIMES, build_pythonpath_tree, install_stapdoctor, record_time

REPO = Path(__file__).resolve().parents[2]
ARTEFACTS = Path(os.environ.get("STAPDOCTOR_E2E_ARTEFACTS", REPO / ".artefacts" / "e2e"))


def pytest_terminal_summary(terminalreporter):
    if TIMES:
        terminalreporter.section("e2e step times (s)")
        for k, v in TIMES.items():
            terminalreporter.write_line(f"{v:8.1f}  {k}")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    if outcome.get_result().failed:
        # Remembered per module: the module's VM keeps its logs.
        item.module.__dict__.setdefault("_e2e_failed", []).append(item.name)


@pytest.fixture(scope="session")
def require_root():
    if os.geteuid() != 0:
        pytest.skip("e2e VMs need root (debootstrap, chroot, mount); CI runs as root")


@pytest.fixture(scope="session")
def stapdoctor_lib(tmp_path_factory, require_root) -> Path:
    t0 = time.monotonic()
    lib = build_pythonpath_tree(REPO, tmp_path_factory.mktemp("vmlib") / "lib")
    record_time("stapdoctor PYTHONPATH tree for the VMs", time.monotonic() - t0)
    return lib


def _image(name: str) -> vmh.Image:
    t0 = time.monotonic()
    img = vmh.build(name)
    record_time(f"image {name} (build or cache hit)", time.monotonic() - t0)
    return img


@pytest.fixture(scope="session")
def bookworm_image(require_root) -> vmh.Image:
    return _image("bookworm")


@pytest.fixture(scope="session")
def unstable_image(require_root) -> vmh.Image:
    return _image("unstable")


def boot(request, image: vmh.Image, name: str, lib: Path):
    """Generator body for a module-scoped VM fixture: boot, install stapdoctor, always power off."""
    logs = ARTEFACTS / name
    shutil.rmtree(logs, ignore_errors=True)
    machine = vmh.VM(image, log_dir=logs)
    machine.start()
    record_time(f"{name}: boot to SSH", machine.boot_seconds)
    try:
        t0 = time.monotonic()
        install_stapdoctor(machine, lib)
        record_time(f"{name}: install stapdoctor in the VM", time.monotonic() - t0)
        yield machine
    finally:
        failed = request.module.__dict__.get("_e2e_failed")
        if failed:
            _collect_outputs(machine, logs)
        machine.stop()
        if not failed:
            shutil.rmtree(logs, ignore_errors=True)


def _collect_outputs(machine: vmh.VM, logs: Path) -> None:
    """Best effort: the profiler's output directories (stap.out, stap.err, …) and the journal."""
    try:
        dirs = machine.run("ls -d /root/prof-* 2>/dev/null", check=False, timeout=60).stdout.split()
        for d in dirs:
            machine.copy_out(d, logs, timeout=300)
        j = machine.run("journalctl -b --no-pager | tail -n 2000", check=False, timeout=120)
        (logs / "journal.txt").write_text(j.stdout)
    except Exception as e:  # the VM may be what failed
        (logs / "collect-error.txt").write_text(f"{type(e).__name__}: {e}\n")


@pytest.fixture(scope="module")
def bookworm_vm(request, bookworm_image, stapdoctor_lib):
    """Debian 12 VM, one per test module."""
    yield from boot(request, bookworm_image, "bookworm", stapdoctor_lib)


@pytest.fixture(scope="module")
def unstable_vm(request, unstable_image, stapdoctor_lib):
    """Debian unstable VM, one per test module (tests in the module share its state, in order)."""
    yield from boot(request, unstable_image, "unstable", stapdoctor_lib)
