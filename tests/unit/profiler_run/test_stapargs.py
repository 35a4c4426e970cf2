"""The stap argument list: every value is its own argument; limits from the kernel config."""

from __future__ import annotations

import gzip
import os
import shutil
from pathlib import Path

import pytest

from stapdoctor.profiler.advice import Limits
from stapdoctor.profiler.stapargs import (StapPlan, build_argv, kernel_frame_warn, safe_maxstringlen,
                                          script_path)
from stapdoctor.profiler.targets import parse_maps, unwind_modules

from .conftest import DATA


def _pairs(argv, flag):
    return [argv[i + 1] for i, a in enumerate(argv) if a == flag]


def test_seed_shape():
    """The seed's command line: -v --ldd -d EXE -x PID and its four limits, script last."""
    argv = build_argv(StapPlan(stap="/usr/bin/stap", pid=28320, duration_s=20, modules=["/busy"],
                               limits=Limits(10240, 20000, 100, 1024)))
    assert argv[:3] == ["/usr/bin/stap", "-v", "--ldd"]
    assert _pairs(argv, "-d") == ["/busy"]
    assert _pairs(argv, "-x") == ["28320"]
    assert _pairs(argv, "-D") == ["MAXMAPENTRIES=10240", "MAXACTION=20000", "MAXBACKTRACE=100", "MAXSTRINGLEN=1024"]
    assert _pairs(argv, "-G") == ["duration_ms=20000"]
    assert argv[-1] == str(script_path(False)) and argv[-1].endswith("profile.stp")
    assert "-s" not in argv and "-c" not in argv


def test_options_each_reach_stap():
    lim = Limits(maxmapentries=4, maxaction=5, maxbacktrace=6, maxstringlen=512, maxskipped=7, buffer_size=64,
                 no_overload=True)
    argv = build_argv(StapPlan(stap="stap", pid=1, duration_s=0.25, kernel=True, modules=["/a b", "/c;rm -rf /"],
                               limits=lim))
    assert _pairs(argv, "-D") == ["MAXMAPENTRIES=4", "MAXACTION=5", "MAXBACKTRACE=6", "MAXSTRINGLEN=512",
                                  "MAXSKIPPED=7", "STP_NO_OVERLOAD"]
    assert _pairs(argv, "-s") == ["64"]
    # file names with spaces or shell characters stay single arguments (no shell is involved)
    assert _pairs(argv, "-d") == ["/a b", "/c;rm -rf /", "kernel"]
    assert _pairs(argv, "-G") == ["duration_ms=250"]
    assert argv[-1].endswith("profile-kernel.stp")


def test_scripts_are_files_with_no_placeholders():
    for kernel in (False, True):
        text = script_path(kernel).read_text()
        assert "timer.profile" in text and "pid() == target()" in text
        assert "global duration_ms" in text  # set with -G, never by editing the text
        assert "{" in text and "%s" in text  # printf formats are stap's, not Python's
        assert "{duration" not in text and "@@" not in text


def test_frame_warn_from_real_config(tmp_path):
    root = tmp_path / "root"
    (root / "boot").mkdir(parents=True)
    shutil.copy(DATA / "config-7.2.13+deb14-amd64", root / "boot" / "config-7.2.13+deb14-amd64")
    assert kernel_frame_warn("7.2.13+deb14-amd64", str(root)) == 2048
    # the build tree's .config wins: it is what the module is compiled against
    build = root / "lib/modules/7.2.13+deb14-amd64/build"
    build.mkdir(parents=True)
    (build / ".config").write_text("CONFIG_FRAME_WARN=1024\n")
    assert kernel_frame_warn("7.2.13+deb14-amd64", str(root)) == 1024
    assert kernel_frame_warn("9.9.9", str(root)) is None


def test_frame_warn_from_proc_config_gz(tmp_path):
    (tmp_path / "proc").mkdir()
    with gzip.open(tmp_path / "proc" / "config.gz", "wt") as f:
        f.write("# comment\nCONFIG_FRAME_WARN=2048\n")
    assert kernel_frame_warn("x", str(tmp_path)) == 2048


@pytest.mark.parametrize("frame_warn,expected", [(2048, 1024), (None, 1024), (1024, 512), (8192, 4096), (0, 4096)])
def test_maxstringlen_rule(frame_warn, expected):
    """4096 broke pass 4 on FRAME_WARN=2048 (frame of 4112 bytes); 1024 compiled there."""
    assert safe_maxstringlen(frame_warn) == expected


def test_unwind_modules_from_real_maps(busy_proc, busy_exe):
    maps = parse_maps(Path(f"/proc/{busy_proc.pid}/maps").read_text())
    mods = unwind_modules(maps, os.readlink(f"/proc/{busy_proc.pid}/exe"))
    assert mods[0] == str(busy_exe)
    assert any(os.path.basename(m).startswith("libc.so") for m in mods)
    assert all(os.path.isfile(m) for m in mods)
    assert len(mods) == len(set(mods))
    assert not any(m.startswith("[") for m in mods)  # no [vdso], [stack]...


def test_unwind_modules_skip_missing_and_deleted():
    maps = parse_maps("00400000-00401000 r-xp 00000000 08:01 1 /nonexistent/lib.so\n"
                      "00500000-00501000 r-xp 00000000 08:01 1 /bin/sh (deleted)\n"
                      "00600000-00601000 r--p 00000000 08:01 1 /bin/sh\n"
                      "7ffd0000-7ffd1000 r-xp 00000000 00:00 0 [vdso]\n")
    assert unwind_modules(maps, None) == []


def test_frequency_becomes_the_scripts_first_argument():
    argv = build_argv(StapPlan(stap="stap", pid=1, duration_s=1, frequency=250))
    assert argv[-2].endswith("profile.stp") and argv[-1] == "4000000"  # ns between samples
    assert build_argv(StapPlan(stap="stap", pid=1, duration_s=1))[-1].endswith("profile.stp")
