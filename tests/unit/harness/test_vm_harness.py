"""The VM harness's cheap parts: recipe keys, the PYTHONPATH tree, the Ansible inventory, the CLI.

Booting is covered by tests/e2e; these run in a second and need no root.
"""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from pathlib import Path

from stapdoctor.testing import vm as vmh
from stapdoctor.testing.vmtools import build_pythonpath_tree

REPO = Path(__file__).resolve().parents[3]


def test_recipe_key_follows_the_recipe_data():
    r = vmh.RECIPES["unstable"]
    assert r.key() == dataclasses.replace(r).key()
    assert r.key() != dataclasses.replace(r, packages=r.packages + ("strace",)).key()
    assert r.key() != vmh.RECIPES["bookworm"].key()


def test_unstable_image_leaves_headers_and_dbg_to_the_playbooks():
    r = vmh.RECIPES["unstable"]
    assert not any(p.startswith("linux-headers") or p.endswith("-dbg") for p in r.packages)
    assert {"linux-headers-{krel}", "linux-image-{krel}-dbg"} <= set(r.mirror_packages)
    assert "python3-apt" in r.packages  # Ansible's apt module needs it on the target


def test_pythonpath_tree_is_pure_python_and_imports(tmp_path):
    lib = build_pythonpath_tree(REPO, tmp_path / "lib")
    assert not list(lib.rglob("*.so"))
    p = subprocess.run([sys.executable, "-I", "-c",
                        f"import sys; sys.path.insert(0, {str(lib)!r}); "
                        "import stapdoctor.doctor.cli, stapdoctor.profiler.cli, typer, rich; "
                        "print(stapdoctor.doctor.cli.__file__)"],
                       capture_output=True, text=True, check=True)
    assert p.stdout.startswith(str(lib))


def test_ansible_inventory_reaches_the_forwarded_port(tmp_path):
    fake = vmh.VM.__new__(vmh.VM)
    fake.image = vmh.Image(vmh.RECIPES["unstable"], tmp_path)
    fake.port = 40222
    inv = fake.ansible_inventory(tmp_path / "inv.ini", systemtap_install="package")
    text = inv.read_text()
    assert text.startswith("[stap_hosts]\n")
    assert "ansible_port=40222" in text and "ansible_host=127.0.0.1" in text
    assert "systemtap_install=package" in text


def test_cli_list_runs_without_root():
    p = subprocess.run([sys.executable, "-m", "stapdoctor.testing.vm", "list"], capture_output=True,
                       text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    assert "bookworm" in p.stderr and "unstable" in p.stderr


DATA = REPO / "tests/data/e2e"


def _dead_vm(tmp_path: Path, serial: str) -> vmh.VM:
    """A VM object whose QEMU has exited, with the given serial log (no boot needed)."""
    machine = vmh.VM.__new__(vmh.VM)
    machine.image = vmh.Image(vmh.RECIPES["unstable"], tmp_path)
    machine.serial_log = tmp_path / "serial.log"
    machine.serial_log.write_text((DATA / serial).read_text())
    machine.port = 1
    machine.proc = subprocess.Popen(["true"])
    machine.proc.wait()
    return machine


def test_kernel_crash_is_read_from_the_serial_log(tmp_path):
    crash = _dead_vm(tmp_path, "serial-panic.log").kernel_crash()
    assert crash.splitlines()[0].endswith("Oops: int3: 0000 [#1] SMP PTI")
    assert "RIP: 0010:trace_syscall_enter+0xd/0xb0" in crash
    assert crash.splitlines()[-1].endswith("Kernel panic - not syncing: Fatal exception in interrupt")
    assert _dead_vm(tmp_path, "serial-clean.log").kernel_crash() is None


def test_a_command_on_a_crashed_vm_names_the_crash(tmp_path):
    machine = _dead_vm(tmp_path, "serial-panic.log")
    try:
        machine.run("true")
    except vmh.VMError as e:
        msg = str(e)
    else:
        raise AssertionError("run() on a dead VM did not fail")
    assert "kernel crashed" in msg and "QEMU exited (0)" in msg and "trace_syscall_enter" in msg


def test_a_command_on_a_vm_that_is_gone_without_a_crash_says_so(tmp_path):
    machine = _dead_vm(tmp_path, "serial-clean.log")
    try:
        machine.run("true")
    except vmh.VMError as e:
        assert "is gone" in str(e) and "kernel crashed" not in str(e)
    else:
        raise AssertionError("run() on a dead VM did not fail")
