"""The packaged scripts and the argument list, given to the real stap (passes 1-3: parse,
elaborate against the tapsets, translate to C). Pass 4/5 need a kernel that loads the module:
that is the real-kernel VM test's part."""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from stapdoctor.profiler.advice import Limits
from stapdoctor.profiler.stapargs import StapPlan, build_argv
from stapdoctor.profiler.targets import parse_maps, unwind_modules

INSTALL_HINT = "apt-get install systemtap linux-headers-amd64 (tests/apt-packages.txt)"


def _release_with_headers() -> str:
    for cfg in sorted(glob.glob("/lib/modules/*/build/.config")):
        return Path(cfg).parts[3]
    pytest.fail(f"no kernel build tree under /lib/modules: {INSTALL_HINT}")


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
