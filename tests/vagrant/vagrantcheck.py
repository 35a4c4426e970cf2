"""Helpers shared by the Vagrantfile tests (imported by name: test dirs have no packages)."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
VENV_BIN = Path(sys.executable).parent


def require(tool: str) -> str:
    path = shutil.which(tool)
    if path is None:
        pytest.fail(f"{tool} not found: install the packages in tests/apt-packages.txt")
    return path


def vagrant_environment(tmp: Path) -> dict:
    """Environment that keeps Vagrant's state out of the repository and the user's home."""
    require("vagrant")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("STAPDOCTOR_", "VAGRANT_"))}
    env.update(
        VAGRANT_HOME=str(tmp / "home"),
        VAGRANT_DOTFILE_PATH=str(tmp / "dotfile"),
        VAGRANT_CHECKPOINT_DISABLE="1",
        VAGRANT_NO_COLOR="1",
        # Vagrant's ansible provisioner asks `ansible --version`: the project's pinned one.
        PATH=f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}",
    )
    return env


def vagrant(env: dict, *args: str, cwd: Path = ROOT, extra_env: dict | None = None):
    return subprocess.run(["vagrant", *args], cwd=cwd, env={**env, **(extra_env or {})},
                          capture_output=True, text=True, timeout=300, check=False)


def describe(env: dict, project: Path = ROOT, extra_env: dict | None = None) -> dict:
    require("ruby")
    proc = subprocess.run(["ruby", str(HERE / "describe_vagrantfile.rb"), str(project)],
                          cwd=project, env={**env, **(extra_env or {})}, capture_output=True,
                          text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)
