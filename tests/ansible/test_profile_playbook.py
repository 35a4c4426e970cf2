"""profile.yml over real SSH: `stapdoctor profile` runs on a test host and its outputs land on the controller.

The test hosts run this machine's kernel (no loadable modules), so the host's `stap` is the profiler
unit tests' stand-in (tests/unit/profiler_run/fake_stap.py), passed with `--stap` through the
playbook's `profile_extra_args`. This proves the playbook's mechanics (stapdoctor installed as the
QEMU tier installs it, argv passed without a shell, the output directory fetched back); that stap
really profiles is the QEMU e2e tier's proof.
"""

from __future__ import annotations

import json
import shlex
import subprocess
import time
from pathlib import Path

import pytest

from stapdoctor.testing.ansiblerun import REPO, recap
from stapdoctor.testing.vmtools import build_pythonpath_tree, install_stapdoctor

pytestmark = pytest.mark.ansible

FAKE_STAP = REPO / "tests/unit/profiler_run/fake_stap.py"
BUSY_C = REPO / "tests/data/profiler_run/busy.c"
REMOTE = "/opt/stapdoctor-profile-test"
# What the stand-in reports for busy (leaf first), as in tests/unit/profiler_run/conftest.py.
BUSY_STACKS = [
    [["busy", "func_c"], ["busy", "func_b"], ["busy", "func_a"], ["busy", "main"], ["libc.so", "__libc_start_main"]],
    [["busy", "func_c"], ["busy", "func_a"], ["busy", "main"], ["libc.so", "__libc_start_main"]],
]
VICTIM = "/root/stapdoctor-victim"  # a root-only file a local user would like root to overwrite
LOST = 7  # samples the stand-in reports lost: a count that must come through to summary.json unchanged


class _SshHost:
    """The part of the VM interface vmtools.install_stapdoctor uses, over a test host's SSH."""

    def __init__(self, fleet, host):
        self.fleet, self.host = fleet, host

    def run(self, command, *, timeout: float = 600, check: bool = True, input: str | None = None):
        line = command if isinstance(command, str) else shlex.join(command)
        p = subprocess.run(self.fleet.ssh_argv(self.host) + ["--", line], capture_output=True, text=True,
                           timeout=timeout, input=input)
        if check and p.returncode != 0:
            raise AssertionError(f"`{line}` exited {p.returncode} on {self.host.name}\n{p.stdout[-2000:]}\n"
                                 f"{p.stderr[-2000:]}")
        return p

    def copy_in(self, local, remote: str, *, timeout: float = 300) -> None:
        local = Path(local)
        if not local.is_dir():
            self.run(["sh", "-c", 'cat > "$1"', "sh", remote], input=local.read_text(), timeout=timeout)
            return
        target = remote.rstrip("/") + "/" + local.name if remote.endswith("/") else remote
        tar = subprocess.Popen(["tar", "-C", str(local), "-cf", "-", "."], stdout=subprocess.PIPE)
        try:
            p = subprocess.run(self.fleet.ssh_argv(self.host)
                               + ["--", shlex.join(["sh", "-c", 'mkdir -p "$1" && tar -C "$1" -xf -', "sh", target])],
                               stdin=tar.stdout, capture_output=True, text=True, timeout=timeout)
        finally:
            tar.stdout.close()
            tar.wait()
        assert p.returncode == 0 and tar.returncode == 0, f"copying {local} -> {remote}: {p.stderr}"


def test_profile_playbook_fetches_the_flame_graph(ansible_env, tmp_path):
    env = ansible_env
    host = env.fleet.hosts[0]
    m = _SshHost(env.fleet, host)
    t0 = time.monotonic()
    pid = None
    try:
        install_stapdoctor(m, build_pythonpath_tree(REPO, tmp_path / "lib"))
        m.run(["mkdir", "-p", REMOTE])
        m.copy_in(FAKE_STAP, f"{REMOTE}/fake_stap.py")
        m.copy_in(BUSY_C, f"{REMOTE}/busy.c")
        m.run(["sh", "-c", 'cat > "$1"', "sh", f"{REMOTE}/fake-stap.json"], input=json.dumps(
            {"stacks": BUSY_STACKS, "lost": LOST, "compile_s": 0.2, "argv_log": f"{REMOTE}/stap-argv.json"}))
        # The stand-in reads its config from the environment; the playbook passes only --stap PATH.
        # It also notes the profile directories that exist while it runs (the playbook's private one).
        m.run(f"cat > {REMOTE}/stap && chmod 755 {REMOTE}/stap",
              input=f"#!/bin/sh\nstat -c '%a %U %n' /tmp/stapdoctor-profile-* > {REMOTE}/outdirs.txt\n"
                    f"FAKE_STAP_CONFIG={REMOTE}/fake-stap.json exec python3 {REMOTE}/fake_stap.py \"$@\"\n")
        m.run(["gcc", "-g", "-O1", "-fno-omit-frame-pointer", "-o", f"{REMOTE}/busy", f"{REMOTE}/busy.c"])
        pid = int(m.run(f"nohup {REMOTE}/busy </dev/null >/dev/null 2>&1 & echo $!").stdout.strip())
        # A local user's trap at the name the playbook once used: root must not write through it.
        trap = f"/tmp/stapdoctor-profile-{pid}"
        m.run(f"printf root-only > {VICTIM} && chmod 600 {VICTIM} && install -d -o nobody -m 755 {trap} && "
              f"ln -s {VICTIM} {trap}/flamegraph.svg && chown -h nobody {trap}/flamegraph.svg")
        env.timings["profile_setup"] = round(time.monotonic() - t0, 1)

        dest = env.workdir / "profiles"
        t1 = time.monotonic()
        p = env.playbook("profile.yml", "-l", host.name, "-e", f"pid={pid}", "-e", "duration=2",
                         "-e", f"profile_dest={dest}",
                         "-e", json.dumps({"profile_extra_args": ["--force", "--stap", f"{REMOTE}/stap"]}),
                         timeout=300)
        env.timings["profile_playbook"] = round(time.monotonic() - t1, 1)
        assert p.returncode == 0, p.stdout[-6000:] + p.stderr[-2000:]
        rc = recap(p.stdout)
        assert set(rc) == {host.name}, rc
        assert rc[host.name]["failed"] == 0 and rc[host.name]["unreachable"] == 0, rc

        # the stand-in was the stap that ran, on the target, with stapdoctor's arguments
        argv = json.loads(m.run(["cat", f"{REMOTE}/stap-argv.json"]).stdout)
        assert argv[argv.index("-x") + 1] == str(pid), argv
        assert "duration_ms=2000" in argv, argv

        out = dest / f"{host.name}-{pid}"
        names = {f.name for f in out.iterdir()}
        assert {"flamegraph.svg", "stacks.folded", "summary.json"} <= names, names
        summary = json.loads((out / "summary.json").read_text())
        assert names == set(summary["files"].values())  # every file of the output directory came back

        # the profile ran in a fresh root-only directory, removed afterwards; the trap was not touched
        dirs = [line.split() for line in m.run(["cat", f"{REMOTE}/outdirs.txt"]).stdout.splitlines()]
        private = [d for d in dirs if d[2] != trap]
        assert len(private) == 1 and private[0][:2] == ["700", "root"], dirs
        assert m.run(["sh", "-c", "ls -d /tmp/stapdoctor-profile-*"]).stdout.split() == [trap]
        assert m.run(["cat", VICTIM]).stdout == "root-only"
        assert m.run(["ls", "-A", trap]).stdout.split() == ["flamegraph.svg"]
        folded = {}
        for line in (out / "stacks.folded").read_text().splitlines():
            stack, _, count = line.rpartition(" ")
            folded[stack] = int(count)
        assert summary["lost"] == LOST, summary
        assert summary["samples_stored"] > 0, summary
        assert summary["samples"] == summary["samples_stored"] + LOST, summary
        assert sum(folded.values()) == summary["samples_stored"], (folded, summary)
        assert "__libc_start_main;main;func_a;func_b;func_c" in folded, folded
        assert "__libc_start_main;main;func_a;func_c" in folded, folded
        svg = (out / "flamegraph.svg").read_text()
        assert svg.lstrip().startswith(("<?xml", "<svg")) and "func_c" in svg
    finally:
        if pid is not None:
            m.run(["kill", "-KILL", str(pid)], check=False)
        m.run(f"rm -rf {REMOTE} /opt/stapdoctor /usr/local/bin/stapdoctor /tmp/stapdoctor-profile-* {VICTIM}",
              check=False)


def test_profile_playbook_runs_a_precompiled_module(ansible_env, tmp_path):
    """profile_module: a module compiled elsewhere goes to the host with its sidecar and runs with --module.

    The module is the stand-in's (a real ELF relocatable whose vermagic is this kernel's: the test hosts
    share it); the host's staprun is the stand-in, which prints the records a real module would."""
    import importlib.util
    import os

    spec = importlib.util.spec_from_file_location("fake_stap", FAKE_STAP)
    fake = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(fake)
    env = ansible_env
    host = env.fleet.hosts[1]
    m = _SshHost(env.fleet, host)
    module = tmp_path / "busy-prof.ko"
    fake.write_module(str(module), os.uname().release, "busy_prof")
    (tmp_path / "busy-prof.ko.json").write_text(json.dumps({
        "format": "stapdoctor.module/1", "module": "busy_prof", "file": module.name,
        "kernel_release": os.uname().release, "stap_version": "5.6/0.193", "kernel_stacks": False}))
    pid = None
    try:
        install_stapdoctor(m, build_pythonpath_tree(REPO, tmp_path / "lib"))
        m.run(["mkdir", "-p", f"{REMOTE}/bin"])
        # named staprun*: the stand-in takes the staprun face from its file name
        m.copy_in(FAKE_STAP, f"{REMOTE}/bin/staprun.py")
        m.copy_in(BUSY_C, f"{REMOTE}/busy.c")
        m.run(["sh", "-c", 'cat > "$1"', "sh", f"{REMOTE}/fake-stap.json"], input=json.dumps(
            {"stacks": BUSY_STACKS, "staprun_argv_log": f"{REMOTE}/staprun-argv.json"}))
        m.run(f"cat > {REMOTE}/bin/staprun && chmod 755 {REMOTE}/bin/staprun",
              input=f"#!/bin/sh\nFAKE_STAP_CONFIG={REMOTE}/fake-stap.json exec python3 {REMOTE}/bin/staprun.py \"$@\"\n")
        m.run(["gcc", "-g", "-O1", "-fno-omit-frame-pointer", "-o", f"{REMOTE}/busy", f"{REMOTE}/busy.c"])
        pid = int(m.run(f"nohup {REMOTE}/busy </dev/null >/dev/null 2>&1 & echo $!").stdout.strip())

        dest = env.workdir / "profiles-module"
        p = env.playbook("profile.yml", "-l", host.name, "-e", f"pid={pid}", "-e", "duration=2",
                         "-e", f"profile_dest={dest}", "-e", f"profile_module={module}",
                         "-e", json.dumps({"profile_extra_args": ["--force", "--staprun", f"{REMOTE}/bin/staprun"]}),
                         timeout=300)
        assert p.returncode == 0, p.stdout[-6000:] + p.stderr[-2000:]
        assert m.run(["ls", "/var/lib/stapdoctor/modules"]).stdout.split() == ["busy-prof.ko", "busy-prof.ko.json"]
        argv = json.loads(m.run(["cat", f"{REMOTE}/staprun-argv.json"]).stdout)
        assert argv[argv.index("-x") + 1] == str(pid) and "duration_ms=2000" in argv, argv
        # staprun gets a file named after the module (stapdoctor links busy_prof.ko to busy-prof.ko)
        assert any(a.endswith("busy_prof.ko") for a in argv), argv
        out = dest / f"{host.name}-{pid}"
        folded = (out / "stacks.folded").read_text()
        assert "__libc_start_main;main;func_a;func_b;func_c" in folded, folded
        summary = json.loads((out / "summary.json").read_text())
        assert summary["exit_code"] == 0 and summary["samples_stored"] > 0, summary

        bad = env.playbook("profile.yml", "-l", host.name, "-e", f"pid={pid}",
                           "-e", f"profile_module={tmp_path / 'missing.ko'}", timeout=300)
        assert bad.returncode != 0 and "profile_module=FILE.ko" in bad.stdout, bad.stdout[-3000:]
    finally:
        if pid is not None:
            m.run(["kill", "-KILL", str(pid)], check=False)
        m.run(f"rm -rf {REMOTE} /opt/stapdoctor /usr/local/bin/stapdoctor /tmp/stapdoctor-profile-* "
              "/var/lib/stapdoctor", check=False)
