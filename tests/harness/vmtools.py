"""Putting stapdoctor into a test VM, and keeping what a VM run produced.

The VMs have no network: stapdoctor from the working tree and its runtime dependencies (all pure
Python, so one set serves any image's Python) are unpacked on the host into a PYTHONPATH tree and
copied in, with a `stapdoctor` launcher on PATH.
"""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

from stapdoctor.testing.vm import VM, cache_root

# What `stapdoctor check`/`profile` import on a target; ansible-core runs on the controller only.
VM_RUNTIME_DEPS = ("typer", "rich", "packaging", "distro", "pyelftools")
VM_PYTHONPATH = "/opt/stapdoctor/lib"

# Measured step times of this process (the e2e conftest prints them in the terminal summary).
TIMES: dict[str, float] = {}


def record_time(what: str, seconds: float | None) -> None:
    if seconds is not None:
        TIMES[what] = round(seconds, 1)


def build_pythonpath_tree(source: Path, wheels: Path, lib: Path) -> Path:
    """Wheel the stapdoctor tree at `source` (no deps) plus the cached runtime deps, unpack into lib."""
    pip = [sys.executable, "-m", "pip", "-q", "wheel"]
    subprocess.run([*pip, "-w", str(wheels), "--no-deps", "--no-build-isolation", str(source)],
                   check=True, capture_output=True)
    deps = cache_root() / "wheelhouse"
    deps.mkdir(parents=True, exist_ok=True)
    if not any(deps.glob("typer-*.whl")):
        subprocess.run([*pip, "-w", str(deps), *VM_RUNTIME_DEPS], check=True)
    lib.mkdir(parents=True, exist_ok=True)
    for whl in [*wheels.glob("stapdoctor-*.whl"), *deps.glob("*.whl")]:
        if not whl.name.endswith("-none-any.whl"):
            raise RuntimeError(f"{whl.name} is not pure Python: the VM's Python may differ")
        with zipfile.ZipFile(whl) as z:
            z.extractall(lib)
    return lib


LAUNCHER = ("#!/bin/sh\n"
            f"PYTHONPATH={VM_PYTHONPATH} exec python3 -c "
            "'import sys; from stapdoctor.doctor.cli import main; sys.argv[0] = \"stapdoctor\"; "
            "sys.exit(main())' \"$@\"\n")


def install_stapdoctor(vm: VM, lib: Path) -> None:
    """Copy the unpacked tree into the VM and put a `stapdoctor` launcher on PATH."""
    vm.run("rm -rf /opt/stapdoctor && mkdir -p /opt/stapdoctor")
    vm.copy_in(lib, "/opt/stapdoctor/")
    vm.run(["mv", f"/opt/stapdoctor/{lib.name}", VM_PYTHONPATH])
    vm.run("cat > /usr/local/bin/stapdoctor && chmod 755 /usr/local/bin/stapdoctor", input=LAUNCHER)


def save(vm: VM, name: str, proc: subprocess.CompletedProcess) -> None:
    """Keep a command's output next to the VM's serial log (a CI artefact when the test fails)."""
    (vm.log_dir / f"{name}.stdout").write_text(proc.stdout or "")
    (vm.log_dir / f"{name}.stderr").write_text(proc.stderr or "")
