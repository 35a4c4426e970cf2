"""The packaged scripts and the argument list, given to the real stap (passes 1-3: parse,
elaborate against the tapsets, translate to C; pass 4 through `profile --compile-only`). Pass 5
needs a kernel that loads the module: that is the real-kernel VM test's part."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from stapdoctor.profiler.advice import Limits
from stapdoctor.profiler.stapargs import StapPlan, build_argv
from stapdoctor.profiler.targets import parse_maps, unwind_modules

from .conftest import INSTALL_HINT, run_cli
from .conftest import release_with_headers as _release_with_headers


@pytest.mark.parametrize("kernel", [False, True])
def test_real_stap_translates_the_profile(kernel, busy_proc, tmp_path):
    stap = shutil.which("stap")
    assert stap, f"stap is not installed: {INSTALL_HINT}"
    release = _release_with_headers()
    maps = parse_maps(Path(f"/proc/{busy_proc.pid}/maps").read_text())
    plan = StapPlan(stap=stap, pid=busy_proc.pid, duration_s=3, kernel=kernel,
                    modules=unwind_modules(maps, os.readlink(f"/proc/{busy_proc.pid}/exe")),
                    limits=Limits(10240, 20000, 100, 1024, maxskipped=1000, buffer_size=8, no_overload=True))
    argv = build_argv(plan)
    argv = [argv[0], "-p3", "-r", release, *argv[1:]]
    r = subprocess.run(argv, capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    c = r.stdout
    # -G duration_ms=N is a module parameter staprun sets at load time (-D values go to the
    # compiler in pass 4): the global must be one
    assert "module_param_named (duration_ms" in c or "param_named (duration_ms" in c
    assert "stapdoctor:begin" in c and "stapdoctor:stack" in c and "stapdoctor:end" in c
    # the stacks table overflow is caught (counted as lost), not fatal
    assert "Array overflow, check MAXMAPENTRIES" in c and "s___global_lost" in c
    assert ("function___global_backtrace" in c) is kernel  # kernel stacks only when asked for
    for line in r.stderr.splitlines():
        assert not line.startswith(("ERROR", "semantic error", "parse error")), r.stderr


def test_real_stap_frequency_sets_the_perf_period(busy_proc, tmp_path):
    """timer.profile is itself a perf cpu-clock event in stap 4.x+; --frequency changes its period."""
    stap = shutil.which("stap")
    assert stap, f"stap is not installed: {INSTALL_HINT}"
    release = _release_with_headers()
    for freq, period in ((None, None), (250, 4000000)):
        argv = build_argv(StapPlan(stap=stap, pid=busy_proc.pid, duration_s=1, frequency=freq))
        r = subprocess.run([argv[0], "-p3", "-r", release, *argv[1:]], capture_output=True, text=True, timeout=300,
                           cwd=tmp_path)
        assert r.returncode == 0, r.stderr[-3000:]
        if period:
            assert f".sample_period={period}ULL" in r.stdout
        else:
            assert "timer.profile" in r.stdout


def test_real_stap_compile_only(busy_exe, tmp_path):
    """`profile --compile-only` with the real stap against the installed headers. Debian 12's stap 4.8
    fails pass 4 there (its runtime does not compile against 6.1.0-*-amd64: `cc1: all warnings being
    treated as errors`, see tests/data/profiler_run/SOURCES.md); a stap that succeeds must leave a
    module for that release. Exactly these two outcomes are accepted."""
    stap = shutil.which("stap")
    assert stap, f"stap is not installed: {INSTALL_HINT}"
    release = _release_with_headers()
    ko = tmp_path / "x.ko"
    t0 = time.monotonic()
    r = run_cli(["--compile-only", str(ko), "-r", release, "--exe", str(busy_exe)], timeout=1200)
    elapsed = time.monotonic() - t0
    assert "Traceback" not in r.stderr, r.stderr
    if r.returncode == 0:
        print(f"real stap compiled x.ko for {release} in {elapsed:.0f} s")
        info = subprocess.run(["readelf", "-p", ".modinfo", str(ko)], capture_output=True, text=True).stdout
        assert f"vermagic={release} " in info
        assert json.loads((tmp_path / "x.ko.json").read_text())["kernel_release"] == release
        assert not (tmp_path / "x.ko.stap.err").exists()
        return
    print(f"real stap failed pass 4 for {release} in {elapsed:.0f} s")
    assert r.returncode == 1, r.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.ko.stap.err"]  # no module, sidecar or scratch
    log = (tmp_path / "x.ko.stap.err").read_text()
    assert "Pass 3: translated to C" in log and "Pass 4: compilation failed" in log
    assert "cc1: all warnings being treated as errors" in log
    assert "pass 4 failed" in r.stderr and "stapdoctor check --deep" in r.stderr  # the advice
    assert "Pass 4: compilation failed" in r.stderr  # stap's last lines
    assert "x.ko was not written" in r.stderr
