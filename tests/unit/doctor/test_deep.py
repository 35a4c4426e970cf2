"""`check --deep` with stand-in stap executables: the verdict logic and the watchdog (the real compile is
proven in the QEMU e2e tier, tests/e2e)."""
import json
import os
import subprocess
import sys
from pathlib import Path

FIXTURE = Path(__file__).resolve().parents[2] / "data/doctor/stap-4.8-hello-pass4-fail-debian12-kernel-6.1.176.txt"
STAP_V = "echo 'Systemtap translator/driver (version 5.6/0.196, Debian version 5.6-1)'; " \
         "echo 'tested kernel versions: 3.10 ... 7.3.0-rc3'; exit 0"


def fake_stap(tmp_path, body: str) -> dict:
    d = tmp_path / "bin"
    d.mkdir()
    stap = d / "stap"
    stap.write_text(f'#!/bin/sh\nif [ "$1" = "-V" ]; then {STAP_V}; fi\n{body}\n')
    stap.chmod(0o755)
    return dict(os.environ, PATH=f"{d}{os.pathsep}{os.environ['PATH']}")


def deep(env, *extra):
    r = subprocess.run([sys.executable, "-m", "stapdoctor.doctor", "check", "--deep", "--json", *extra],
                       capture_output=True, text=True, env=env, timeout=120)
    assert "Traceback" not in r.stderr, r.stderr
    return {f["id"]: f for f in json.loads(r.stdout)["findings"]}["stap.deep"]


def test_deep_pass_reports_pass_times(tmp_path):
    env = fake_stap(tmp_path, "echo 'Pass 1: parsed user script and 486 library scripts using 1virt/1res/1shr/1data kb, "
                              "in 4460usr/3020sys/6537real ms.' >&2\n"
                              "echo 'Pass 4: compiled C into \"stap_x.ko\" in 1usr/1sys/95500real ms.' >&2\n"
                              "echo 'stapdoctor: hello from a stap module'")
    f = deep(env)
    assert f["status"] == "pass" and "pass 1 6.5s" in f["evidence"] and "pass 4 95.5s" in f["evidence"]


def test_deep_pass4_failure_shows_compiler_lines(tmp_path):
    env = fake_stap(tmp_path, f"cat '{FIXTURE}' >&2; exit 1")
    f = deep(env)
    assert f["status"] == "fail" and "pass 4 failed" in f["evidence"]
    assert "cc1: all warnings being treated as errors" in f["evidence"]


def test_deep_watchdog_kills_a_silent_stap(tmp_path):
    env = fake_stap(tmp_path, "exec sleep 60")
    f = deep(env, "--deep-timeout", "2")
    assert f["status"] == "fail" and "killed after 2 s" in f["evidence"]


def test_deep_without_headers_points_at_devel_build(tmp_path):
    """Issue 14 item 12: stap's own words when /lib/modules/R/build is missing (stap 4.8, Debian 12), and a fix
    that names devel.build instead of compiler lines that do not exist."""
    R = os.uname().release
    if os.path.exists(f"/lib/modules/{R}/build/Makefile"):
        import pytest
        pytest.skip(f"this machine has headers for {R}")
    env = fake_stap(tmp_path, f"echo 'Checking \"/lib/modules/{R}/build/.config\" failed with error: No such file "
                              "or directory' >&2\necho 'Incorrect version or missing kernel-devel package, use: "
                              f"yum install kernel-devel-{R}' >&2; exit 1")
    r = subprocess.run([sys.executable, "-m", "stapdoctor.doctor", "check", "--deep", "--json"],
                       capture_output=True, text=True, env=env, timeout=120)
    f = {f["id"]: f for f in json.loads(r.stdout)["findings"]}["stap.deep"]
    assert f["status"] == "fail" and "devel.build" in f["remedy"] and "compiler lines" not in f["remedy"]
