"""Putting stapdoctor into a test VM, and keeping what a VM run produced.

The VMs have no network: stapdoctor from the working tree and its runtime dependencies (all pure
Python wheels, so one set serves any image's Python) are laid out on the host as a PYTHONPATH tree
and copied in, with a `stapdoctor` launcher on PATH.
"""

from __future__ import annotations

import importlib.metadata
import os
import shutil
import subprocess
import tomllib
from pathlib import Path

from stapdoctor.testing.vm import VM

# What `stapdoctor check`/`profile` import on a target; ansible-core runs on the controller only.
VM_RUNTIME_DEPS = ("typer", "rich", "packaging", "distro", "pyelftools")
VM_PYTHONPATH = "/opt/stapdoctor/lib"

# Measured step times of this process; written to times_file() at the end of the session, for the
# terminal summary (printed by the xdist controller, which runs no e2e test itself).
TIMES: dict[str, float] = {}


def record_time(what: str, seconds: float | None) -> None:
    if seconds is not None:
        TIMES[what] = round(seconds, 1)


def artefacts_dir(repo: Path) -> Path:
    """Where VM logs are kept for CI: $STAPDOCTOR_E2E_ARTEFACTS or <repo>/.artefacts/e2e."""
    return Path(os.environ.get("STAPDOCTOR_E2E_ARTEFACTS", repo / ".artefacts" / "e2e"))


def times_file(repo: Path) -> Path:
    return artefacts_dir(repo) / "step-times.json"


def build_pythonpath_tree(source: Path, lib: Path) -> Path:
    """stapdoctor's packages from the tree at `source` (laid out as pyproject's package-dir maps
    them, no build step) plus its runtime deps as installed in this venv (pure Python)."""
    lib.mkdir(parents=True, exist_ok=True)
    conf = tomllib.loads((source / "pyproject.toml").read_text())
    for package, rel in conf["tool"]["setuptools"]["package-dir"].items():
        shutil.copytree(source / rel, lib / package.replace(".", "/"), dirs_exist_ok=True,
                        ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    for dist in _closure(VM_RUNTIME_DEPS):
        for f in dist.files or ():
            src = Path(dist.locate_file(f))
            if f.parts[0] == ".." or not src.is_file() or "__pycache__" in f.parts:
                continue  # console scripts in bin/, bytecode
            if src.suffix in (".so", ".pyd"):
                raise RuntimeError(f"{dist.metadata['Name']} has compiled code ({f}): the VM's Python may differ")
            dest = lib / f
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest)
    return lib


def _closure(names) -> list[importlib.metadata.Distribution]:
    """The installed distributions `names` need (this interpreter's versions, markers evaluated)."""
    from packaging.requirements import Requirement

    seen: dict[str, importlib.metadata.Distribution] = {}
    todo = list(names)
    while todo:
        req = Requirement(todo.pop())
        key = req.name.lower().replace("_", "-")
        if key in seen:
            continue
        dist = importlib.metadata.distribution(req.name)
        seen[key] = dist
        for r in dist.requires or ():
            rr = Requirement(r)
            if rr.marker is None or rr.marker.evaluate({"extra": ""}):
                todo.append(r)
    return list(seen.values())


LAUNCHER = ("#!/bin/sh\n"
            f"PYTHONPATH={VM_PYTHONPATH} exec python3 -c "
            "'import sys; from stapdoctor.doctor.cli import main; sys.argv[0] = \"stapdoctor\"; "
            "sys.exit(main())' \"$@\"\n")


def install_stapdoctor(vm: VM, lib: Path) -> None:
    """Copy the unpacked tree into the VM and put a `stapdoctor` launcher on PATH."""
    vm.run("rm -rf /opt/stapdoctor && mkdir -p /opt/stapdoctor/.incoming")
    vm.copy_in(lib, "/opt/stapdoctor/.incoming/")
    vm.run(["mv", f"/opt/stapdoctor/.incoming/{lib.name}", VM_PYTHONPATH])
    vm.run("cat > /usr/local/bin/stapdoctor && chmod 755 /usr/local/bin/stapdoctor", input=LAUNCHER)
    vm.run(["stapdoctor", "--help"], timeout=300)


def install_stapdoctor_in_root(root: Path, lib: Path) -> None:
    """The same tree and launcher in a host-side root (a chroot of a VM image, for `--compile-only`)."""
    dest = root / VM_PYTHONPATH.lstrip("/")
    shutil.rmtree(dest, ignore_errors=True)
    shutil.copytree(lib, dest)
    launcher = root / "usr/local/bin/stapdoctor"
    launcher.parent.mkdir(parents=True, exist_ok=True)
    launcher.write_text(LAUNCHER)
    launcher.chmod(0o755)


def save(vm: VM, name: str, proc: subprocess.CompletedProcess) -> None:
    """Keep a command's output next to the VM's serial log (a CI artefact when the test fails)."""
    (vm.log_dir / f"{name}.stdout").write_text(proc.stdout or "")
    (vm.log_dir / f"{name}.stderr").write_text(proc.stderr or "")


def findings_by_id(check_json: str) -> dict[str, dict]:
    """`stapdoctor check --json` output (run in a VM or host) as check id -> finding."""
    import json
    return {f["id"]: f for f in json.loads(check_json)["findings"]}
