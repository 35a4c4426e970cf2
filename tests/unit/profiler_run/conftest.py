"""Fixtures for the profile runner's tests: a real target program, a stand-in stap, the CLI."""

from __future__ import annotations

import glob
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
DATA = HERE.parents[1] / "data" / "profiler_run"
FAKE_STAP = HERE / "fake_stap.py"
CLI = "import typer; from stapdoctor.profiler.cli import profile; typer.run(profile)"

#: The stack the stand-in reports for busy (leaf first): (file name part, symbol) as in busy.c.
BUSY_STACKS = [
    [["busy", "func_c"], ["busy", "func_b"], ["busy", "func_a"], ["busy", "main"], ["libc.so", "__libc_start_main"]],
    [["busy", "func_c"], ["busy", "func_a"], ["busy", "main"], ["libc.so", "__libc_start_main"]],
]


@pytest.fixture(scope="session")
def busy_exe(tmp_path_factory) -> Path:
    """busy.c (the program the seed profiled) built as the seed built it."""
    out = tmp_path_factory.mktemp("busy") / "busy"
    subprocess.run(["gcc", "-g", "-O1", "-fno-omit-frame-pointer", "-o", str(out), str(DATA / "busy.c")], check=True)
    return out


def _spawn(argv) -> subprocess.Popen:
    return subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, start_new_session=True)


def _reap(p: subprocess.Popen) -> None:
    if p.poll() is None:
        os.killpg(p.pid, signal.SIGKILL)
        p.wait(10)


@pytest.fixture
def busy_proc(busy_exe):
    p = _spawn([str(busy_exe)])
    time.sleep(0.1)
    yield p
    _reap(p)


@pytest.fixture
def idle_proc():
    p = _spawn(["sleep", "300"])
    time.sleep(0.05)
    yield p
    _reap(p)


@pytest.fixture
def spawn():
    procs = []

    def _go(argv):
        p = _spawn(argv)
        procs.append(p)
        return p

    yield _go
    for p in procs:
        _reap(p)


@pytest.fixture
def fake_stap(tmp_path, monkeypatch):
    """Configure the stand-in stap; returns (stap path, config writer)."""
    cfg_path = tmp_path / "fake-stap.json"

    def configure(**cfg):
        cfg.setdefault("argv_log", str(tmp_path / "stap-argv.json"))
        cfg.setdefault("stacks", BUSY_STACKS)
        cfg.setdefault("compile_s", 0.2)
        cfg_path.write_text(json.dumps(cfg))
        return cfg

    configure()
    monkeypatch.setenv("FAKE_STAP_CONFIG", str(cfg_path))
    return str(FAKE_STAP), configure


def run_cli(args, *, timeout=120, env=None, cwd=None) -> subprocess.CompletedProcess:
    """The `profile` command in a process of its own (signals, exit codes, stderr as a user sees them)."""
    return subprocess.run([sys.executable, "-c", CLI, *args], capture_output=True, text=True, timeout=timeout,
                          env=env or os.environ.copy(), cwd=cwd)


@pytest.fixture
def fake_staprun(tmp_path, fake_stap) -> str:
    """The stand-in as `staprun` (it takes its face from its name); configured by fake_stap's writer."""
    link = tmp_path / "bin" / "staprun"
    link.parent.mkdir()
    link.symlink_to(FAKE_STAP)
    return str(link)


def make_module(path: Path, release: str, name: str | None = None) -> Path:
    """A tiny ELF relocatable whose .modinfo holds vermagic=RELEASE ... and name=NAME (the stand-in's own)."""
    from . import fake_stap

    fake_stap.write_module(str(path), release, name or path.name[:-3])
    return path


INSTALL_HINT = "apt-get install systemtap linux-headers-amd64 (tests/apt-packages.txt)"


def release_with_headers() -> str:
    """A kernel release whose build tree is installed (Debian 12's linux-headers on the test machines)."""
    for cfg in sorted(glob.glob("/lib/modules/*/build/.config")):
        return Path(cfg).parts[3]
    pytest.fail(f"no kernel build tree under /lib/modules: {INSTALL_HINT}")


def wait_for(pred, timeout=30.0, step=0.05) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():
            return True
        time.sleep(step)
    return False


def nm_address(path: str, symbol: str) -> int:
    """A symbol's ELF value, from binutils (independent of stapdoctor's ELF reader)."""
    for extra in ([], ["-D"]):
        r = subprocess.run(["nm", "--defined-only", *extra, path], capture_output=True, text=True)
        for line in r.stdout.splitlines():
            parts = line.split()
            if len(parts) == 3 and parts[2].split("@")[0] == symbol:
                return int(parts[0], 16)
    raise KeyError(symbol)


def have(tool: str) -> bool:
    return shutil.which(tool) is not None


def interrupt(p: subprocess.Popen, timeout: float = 60) -> tuple[str, str, float]:
    """Ctrl-C a running CLI (SIGINT) and wait for it: (stdout, stderr, seconds it took to end)."""
    try:
        t0 = time.monotonic()
        p.send_signal(signal.SIGINT)
        stdout, stderr = p.communicate(timeout=timeout)
    finally:
        if p.poll() is None:
            p.kill()
    return stdout, stderr, time.monotonic() - t0


def ubuntu_1204_snapshot(tmp_path: Path) -> Path:
    """A saved host snapshot of Ubuntu 12.04 (its real kernel config: no uprobes/utrace; no headers,
    no stap), for `--host-snapshot`: a host the profile gate must refuse."""
    from stapdoctor.doctor import snapshot

    root = tmp_path / "root"
    (root / "proc/sys/kernel").mkdir(parents=True)
    (root / "proc/sys/kernel/osrelease").write_text("3.2.0-23-generic\n")
    (root / "boot").mkdir()
    shutil.copy(DATA / "config-3.2.0-23-generic", root / "boot")
    snap_file = tmp_path / "snap.json"
    snap_file.write_text(snapshot.collect(str(root)).to_json())
    return snap_file
