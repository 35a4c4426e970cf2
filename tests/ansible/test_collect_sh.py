"""The fleet collector (playbooks/roles/doctor_collect/files/collect.sh) on this machine, under dash,
busybox sh and bash, read back by the doctor's own snapshot code as `stapdoctor fleet` does."""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest

from stapdoctor.doctor.collected import decode_output, read_archive
from stapdoctor.doctor.snapshot import collect
from stapdoctor.testing.ansiblerun import PLAYBOOKS

COLLECT = PLAYBOOKS / "roles/doctor_collect/files/collect.sh"
SHELLS = {"dash": ["dash"], "busybox": ["busybox", "sh"], "bash": ["bash", "--posix"]}


def test_collector_is_posix_sh():
    p = subprocess.run(["shellcheck", "-s", "sh", str(COLLECT)], capture_output=True, text=True)
    assert p.returncode == 0, p.stdout


def _run(shell: list[str], tmp_path, *args: str):
    p = subprocess.run([*shell, str(COLLECT), *args], capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    # what `stapdoctor fleet` does: read the archive in memory, never extract it
    return read_archive(decode_output(p.stdout), "collector:test")


@pytest.mark.parametrize("shell", SHELLS, ids=list(SHELLS))
def test_collector_tree_is_a_snapshot_sysroot(shell, tmp_path):
    if not shutil.which(SHELLS[shell][0]):
        pytest.fail(f"{shell} not installed: tests/apt-packages.txt lists it")
    tree = _run(SHELLS[shell], tmp_path, "root")
    snap = collect(tree, run_commands=False)
    assert snap.kernel_release == os.uname().release
    assert snap.files["/proc/version"]["status"] == "ok"
    assert snap.files["/etc/os-release"]["status"] == "ok"
    assert snap.user.get("name") == "root"
    assert tree.read("/.stapdoctor/commands/uname-r.out").decode().strip() == os.uname().release
    if shutil.which("stap"):
        assert "stap-V" in snap.commands


def test_collector_for_a_kernel_that_is_not_running(tmp_path):
    tree = _run(["dash"], tmp_path, "", "6.1.0-56-amd64")
    snap = collect(tree, run_commands=False)
    assert snap.kernel_release == "6.1.0-56-amd64"
    # what only the running kernel has is left out rather than attributed to the other kernel
    assert snap.files["/proc/version"]["status"] == "missing"
    assert snap.files["/sys/kernel/notes"]["status"] == "missing"
