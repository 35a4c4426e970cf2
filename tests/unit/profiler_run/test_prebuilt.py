"""Compile here, run there: `profile --compile-only FILE.ko` and `profile --module FILE.ko`, with the
stand-in as `stap -p4` (it writes a real ELF relocatable with a .modinfo) and as `staprun`.

What this proves: the argument lists, the module and sidecar files, the checks before stap or
staprun run, and that a staprun run goes through the same window and outputs as a stap run. It is
not proof that a module compiled on one machine loads on another: the real-kernel VM test is.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

import pytest

from stapdoctor.doctor import knowledge
from stapdoctor.profiler.prebuilt import module_name_for
from stapdoctor.profiler.stapargs import kernel_frame_warn, safe_maxstringlen

from .conftest import DATA, FAKE_STAP, interrupt, ubuntu_1204_snapshot, make_module, release_with_headers, run_cli

RUNNING = os.uname().release


def _pairs(argv, flag):
    return [argv[i + 1] for i, a in enumerate(argv) if a == flag]


def _no_traceback(r):
    assert "Traceback" not in r.stderr and "Traceback" not in r.stdout, r.stderr


def _modinfo(path: Path) -> str:
    """.modinfo as binutils sees it (independent of stapdoctor's ELF reader)."""
    return subprocess.run(["readelf", "-p", ".modinfo", str(path)], capture_output=True, text=True, check=True).stdout


def _compile(tmp_path, *args, release=None, cwd=None):
    release = release or release_with_headers()
    return run_cli(["--stap", str(FAKE_STAP), "--compile-only", *args[:1], "-r", release, *args[1:]], cwd=cwd)


def _argv(tmp_path) -> list[str]:
    return json.loads((tmp_path / "stap-argv.json").read_text())


# ----------------------------------------------------------------------------------------------
# --compile-only


def test_compile_only_argv_module_and_sidecar(tmp_path, fake_stap, busy_exe):
    rel = release_with_headers()
    work = tmp_path / "work"
    work.mkdir()
    os.symlink(busy_exe, work / "busy")
    r = _compile(tmp_path, "nginx.ko", "--exe", "busy", "--duration", "7", cwd=work)  # relative paths
    _no_traceback(r)
    assert r.returncode == 0, r.stderr
    argv = _argv(tmp_path)
    assert argv[:6] == ["-v", "-p4", "-r", rel, "-m", "nginx"] and "--ldd" in argv
    assert "-x" not in argv  # the pid is staprun's, at run time
    assert _pairs(argv, "-d") == [str(work / "busy")]  # absolute: stap runs in a scratch directory
    assert "duration_ms=7000" in _pairs(argv, "-G")
    fw = kernel_frame_warn(rel, proc_config=False)
    assert f"MAXSTRINGLEN={safe_maxstringlen(fw)}" in _pairs(argv, "-D")
    ko = work / "nginx.ko"
    assert ko.is_file() and f"vermagic={rel} " in _modinfo(ko) and "name=nginx" in _modinfo(ko)
    sc = json.loads((work / "nginx.ko.json").read_text())
    assert sc["format"] == "stapdoctor.module/1" and sc["module"] == "nginx" and sc["kernel_release"] == rel
    assert sc["stap_version"] == "5.6/0.193" and sc["kernel_stacks"] is False and sc["frequency"] is None
    assert sc["unwind_modules"] == [str(work / "busy")] and sc["stap_argv"][1:] == argv
    assert sc["limits"]["maxstringlen"] == safe_maxstringlen(fw) and sc["created"]
    if fw is not None:
        assert sc["maxstringlen_source"] == f"from CONFIG_FRAME_WARN={fw} of {rel}"
    assert not (work / "nginx.ko.stap.err").exists()
    assert sorted(p.name for p in work.iterdir()) == ["busy", "nginx.ko", "nginx.ko.json"]  # scratch removed
    assert f"wrote nginx.ko (module nginx for kernel {rel}, stap 5.6/0.193)" in r.stderr
    assert "stapdoctor profile --module nginx.ko --pid PID" in r.stderr


def test_compile_only_options_are_compiled_in(tmp_path, fake_stap, busy_exe):
    r = _compile(tmp_path, str(tmp_path / "k.ko"), "--exe", str(busy_exe), "--exe", str(busy_exe), "--kernel",
                 "--frequency", "250", "--maxstringlen", "512", "--maxmapentries", "99", "--no-overload")
    _no_traceback(r)
    assert r.returncode == 0, r.stderr
    argv = _argv(tmp_path)
    assert _pairs(argv, "-d") == [str(busy_exe), "kernel"]  # repeated --exe once
    assert argv[-2].endswith("profile-kernel.stp") and argv[-1] == "4000000"
    assert {"MAXSTRINGLEN=512", "MAXMAPENTRIES=99", "STP_NO_OVERLOAD"} <= set(_pairs(argv, "-D"))
    sc = json.loads((tmp_path / "k.ko.json").read_text())
    assert sc["kernel_stacks"] is True and sc["frequency"] == 250
    assert sc["limits"]["maxmapentries"] == 99 and sc["maxstringlen_source"] == "as given"


def test_compile_only_for_a_pid_takes_its_mapped_files(tmp_path, fake_stap, busy_proc, busy_exe):
    r = _compile(tmp_path, str(tmp_path / "p.ko"), "--pid", str(busy_proc.pid))
    _no_traceback(r)
    assert r.returncode == 0, r.stderr
    argv = _argv(tmp_path)
    ds = _pairs(argv, "-d")
    assert ds[0] == str(busy_exe) and any("libc.so" in d for d in ds)
    assert "-x" not in argv


def test_compile_only_for_a_command_does_not_launch_it(tmp_path, fake_stap):
    marker = tmp_path / "ran"
    prog = tmp_path / "prog.sh"
    prog.write_text(f"#!/bin/sh\ntouch {marker}\n")
    prog.chmod(0o755)
    r = _compile(tmp_path, str(tmp_path / "c.ko"), "--", str(prog), "--flag")
    _no_traceback(r)
    assert r.returncode == 0, r.stderr
    assert _pairs(_argv(tmp_path), "-d") == [str(prog)]
    time.sleep(0.2)
    assert not marker.exists()


@pytest.mark.parametrize("file,name", [("nginx.ko", "nginx"), ("My-Prof.v2.ko", "my_prof_v2"),
                                       ("2fast.ko", "sd_2fast"), ("_x.ko", "sd__x"), ("a" * 60 + ".ko", "a" * 40),
                                       ("dir/Ü-x.ko", "sd___x")])
def test_module_name_sanitising(file, name):
    assert module_name_for(file) == name
    assert len(name) <= 40


def test_compile_only_any_file_name_gets_a_valid_module_name(tmp_path, fake_stap, busy_exe):
    r = _compile(tmp_path, str(tmp_path / "Nginx-Profile.ko"), "--exe", str(busy_exe))
    _no_traceback(r)
    assert r.returncode == 0, r.stderr
    assert _pairs(_argv(tmp_path), "-m") == ["nginx_profile"]
    ko = tmp_path / "Nginx-Profile.ko"
    assert "name=nginx_profile" in _modinfo(ko)
    assert json.loads((tmp_path / "Nginx-Profile.ko.json").read_text())["module"] == "nginx_profile"
    assert "(module nginx_profile for kernel" in r.stderr


@pytest.mark.parametrize("file,needle", [("prof", "must end in .ko"), ("nodir/x.ko", "does not exist")])
def test_compile_only_file_name_errors(tmp_path, fake_stap, busy_exe, file, needle):
    r = _compile(tmp_path, str(tmp_path / file), "--exe", str(busy_exe))
    _no_traceback(r)
    assert r.returncode == 2, r.stderr
    assert needle.format(dir=tmp_path) in r.stderr
    assert not (tmp_path / "stap-argv.json").exists()


@pytest.mark.parametrize("release", ["../../etc", "6.1 x", " "])
def test_compile_only_release_must_look_like_one(tmp_path, fake_stap, busy_exe, release):
    r = _compile(tmp_path, str(tmp_path / "x.ko"), "--exe", str(busy_exe), release=release)
    _no_traceback(r)
    assert r.returncode == 2 and "not a kernel release" in r.stderr, r.stderr


def test_compile_only_without_headers_names_the_package(tmp_path, fake_stap, busy_exe):
    r = _compile(tmp_path, str(tmp_path / "x.ko"), "--exe", str(busy_exe), release="0.0.1-nothere-amd64")
    _no_traceback(r)
    assert r.returncode == 1, r.stderr
    assert "/lib/modules/0.0.1-nothere-amd64/build" in r.stderr
    assert "linux-headers-0.0.1-nothere-amd64" in r.stderr or "kernel-devel-0.0.1-nothere-amd64" in r.stderr
    assert not (tmp_path / "stap-argv.json").exists() and not (tmp_path / "x.ko").exists()


def test_compile_only_pass4_failure_keeps_the_log_and_no_module(tmp_path, fake_stap, busy_exe):
    fake_stap[1](pass4_fail_stderr=str(DATA / "stap-pass4-frame-larger-than.stderr"))
    out = tmp_path / "out"
    out.mkdir()
    r = _compile(tmp_path, str(out / "x.ko"), "--exe", str(busy_exe), "--maxstringlen", "4096")
    _no_traceback(r)
    assert r.returncode == 1, r.stderr
    assert sorted(p.name for p in out.iterdir()) == ["x.ko.stap.err"]  # no module, no sidecar, no scratch
    log = (out / "x.ko.stap.err").read_text()
    assert "frame size of 4112 bytes" in log and "Pass 3:" in log
    assert "frame size of 4112 bytes" in r.stderr  # stap's last lines
    assert "stapdoctor check --deep" in r.stderr and "MAXSTRINGLEN=4096" in r.stderr  # the advice
    assert "x.ko was not written" in r.stderr and "x.ko.stap.err" in r.stderr


def test_compile_only_ctrl_c_stops_stap_and_writes_no_module(tmp_path, fake_stap, busy_exe):
    import sys

    from .conftest import CLI, wait_for

    fake_stap[1](compile_s=240)
    out = tmp_path / "out"
    out.mkdir()
    p = subprocess.Popen([sys.executable, "-c", CLI, "--stap", str(FAKE_STAP), "--compile-only", str(out / "i.ko"),
                          "-r", release_with_headers(), "--exe", str(busy_exe)],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    log = out / "i.ko.stap.err"
    try:
        assert wait_for(lambda: log.exists() and (tmp_path / "stap-argv.json").exists(), 60)  # stap is in pass 1
    except BaseException:
        p.kill()
        raise
    _stdout, stderr, took = interrupt(p)
    assert took < 30
    assert "Traceback" not in stderr and p.returncode == 1, stderr
    assert "interrupted" in stderr and "i.ko was not written" in stderr
    assert sorted(x.name for x in out.iterdir()) == ["i.ko.stap.err"]
    assert not [d for d in Path("/proc").iterdir() if d.name.isdigit() and _cmdline_has(d, str(out / "i.ko"))]


def _cmdline_has(d: Path, needle: str) -> bool:
    try:
        return needle.encode() in (d / "cmdline").read_bytes()
    except OSError:
        return False


@pytest.mark.parametrize("args,needle", [
    ([], "exactly one target to compile for"),
    (["--exe", "/bin/sh", "--pid", "1"], "exactly one target to compile for"),
    (["--exe", "/bin/sh", "--", "true"], "exactly one target to compile for"),
    (["--exe", "/no/such/exe"], "--exe /no/such/exe: no such file"),
    (["--exe", "/bin/sh", "--while", "true"], "--while is for a run"),
    (["--exe", "/bin/sh", "-o", "outdir"], "--output is for a run"),
    (["--exe", "/bin/sh", "--buffer-size", "8"], "--buffer-size is for a run"),
    (["--pid", "999999999"], "no such process"),
    (["--", "no-such-command-xyz"], "command not found"),
    (["--exe", "/bin/sh", "--module", "m.ko"], "do not go together"),
])
def test_compile_only_usage_errors(tmp_path, fake_stap, args, needle):
    r = _compile(tmp_path, str(tmp_path / "u.ko"), *args)
    _no_traceback(r)
    assert r.returncode == 2, r.stderr
    assert needle in r.stderr


@pytest.mark.parametrize("args,needle", [
    (["-r", "6.1.0-1-amd64", "--pid", "1"], "--kernel-release/-r only goes with --compile-only"),
    (["--exe", "/bin/sh", "--pid", "1"], "--exe only goes with --compile-only"),
    (["--staprun", "/bin/true", "--pid", "1"], "--staprun only goes with --module"),
])
def test_new_options_outside_their_mode(tmp_path, args, needle):
    r = run_cli(["-o", str(tmp_path / "o"), "--force", *args])
    _no_traceback(r)
    assert r.returncode == 2, r.stderr
    assert needle in r.stderr


# ----------------------------------------------------------------------------------------------
# --module


def _module(tmp_path, *, release=RUNNING, name="prof", sidecar: dict | None = None) -> Path:
    ko = make_module(tmp_path / f"{name}.ko", release)
    if sidecar is not None:
        base = {"format": "stapdoctor.module/1", "module": name, "kernel_release": release,
                "stap_version": "4.8/0.188", "kernel_stacks": False, "frequency": None,
                "limits": {"maxmapentries": 4096, "maxaction": 20000, "maxbacktrace": 100, "maxstringlen": 1024,
                           "maxskipped": None, "buffer_size": None, "no_overload": False},
                "created": "2026-01-02T03:04:05Z"}
        base.update(sidecar)
        (tmp_path / f"{name}.ko.json").write_text(json.dumps(base))
    return ko


def _run_module(tmp_path, staprun, ko, *args, timeout=120):
    return run_cli(["--module", str(ko), "--staprun", staprun, "-o", str(tmp_path / "out"), "--force", *args],
                   timeout=timeout)


def test_module_run_of_busy_pid_writes_every_output(tmp_path, fake_stap, fake_staprun, busy_proc):
    fake_stap[1](staprun_argv_log=str(tmp_path / "staprun-argv.json"))
    ko = _module(tmp_path, sidecar={})
    t0 = time.monotonic()
    r = _run_module(tmp_path, fake_staprun, ko, "--pid", str(busy_proc.pid), "--duration", "2", "-s", "8")
    elapsed = time.monotonic() - t0
    _no_traceback(r)
    assert r.returncode == 0, r.stderr
    out = tmp_path / "out"
    folded = (out / "stacks.folded").read_text()
    assert "__libc_start_main;main;func_a;func_b;func_c" in folded
    assert "<svg" in (out / "flamegraph.svg").read_text()[:2000] and "func_c" in (out / "flamegraph.svg").read_text()
    sm = json.loads((out / "summary.json").read_text())
    assert sm["ended_by"] == "timer" and sm["samples"] > 0 and sm["exit_code"] == 0
    assert 1.5 <= sm["window_s"] <= 2.5 and elapsed < 2 + 25
    argv = [fake_staprun, "-x", str(busy_proc.pid), "-b", "8", str(ko), "duration_ms=2000"]
    assert sm["stap_argv"] == argv and json.loads((tmp_path / "staprun-argv.json").read_text()) == argv[1:]
    assert not (tmp_path / "stap-argv.json").exists()  # no stap ran
    assert sm["stap_version"] == "4.8/0.188" and sm["limits"]["maxmapentries"] == 4096
    assert sm["module"]["path"] == str(ko) and sm["module"]["compiled_for"] == RUNNING
    assert sm["module"]["name"] == "prof" and sm["module"]["created"] == "2026-01-02T03:04:05Z"
    assert "module:" in (out / "summary.txt").read_text() and "staprun" in (out / "summary.txt").read_text()
    assert "staprun: loading the module" in r.stderr and "sampling pid" in r.stderr


def test_module_run_of_a_launched_command_holds_it_until_begin(tmp_path, fake_stap, fake_staprun, busy_exe):
    state_log = tmp_path / "state-at-begin"
    fake_stap[1](state_log=str(state_log))
    ko = _module(tmp_path, sidecar={})
    r = _run_module(tmp_path, fake_staprun, ko, "--duration", "2", "--", str(busy_exe))
    _no_traceback(r)
    assert r.returncode == 0, r.stderr
    assert state_log.read_text() == "T"
    sm = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert sm["samples"] > 0 and "func_c" in (tmp_path / "out" / "stacks.folded").read_text()


def test_module_without_sidecar_runs_with_defaults_and_says_so(tmp_path, fake_stap, fake_staprun, busy_proc):
    ko = _module(tmp_path)
    r = _run_module(tmp_path, fake_staprun, ko, "--pid", str(busy_proc.pid), "--duration", "1")
    _no_traceback(r)
    assert r.returncode == 0, r.stderr
    sm = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert any("no prof.ko.json" in p for p in sm["problems"]) and "no prof.ko.json" in r.stderr
    assert sm["stap_version"] == "5.6/0.193"  # staprun -V
    assert sm["kernel_stacks"] is False and sm["module"]["sidecar"] is None


def test_module_without_begin_record_times_the_window_from_staprun(tmp_path, fake_stap, fake_staprun, busy_proc,
                                                                   monkeypatch):
    from rich.console import Console

    from stapdoctor.profiler import runner

    monkeypatch.setattr(runner, "BEGIN_FALLBACK_S", 0.5)
    fake_stap[1](no_begin=True)
    ko = _module(tmp_path, sidecar={})
    res = runner.run_profile(runner.ProfileRequest(output=tmp_path / "api", duration=2, pid=busy_proc.pid,
                                                   module=ko, staprun=fake_staprun), Console(stderr=True))
    assert res.exit_code == 0 and res.samples > 0 and res.ended_by == "timer"
    assert any("timed from staprun's start" in p for p in res.problems)


def test_module_for_another_kernel_is_refused(tmp_path, fake_stap, fake_staprun):
    ko = _module(tmp_path, release="5.10.0-99-amd64", sidecar={})
    r = _run_module(tmp_path, fake_staprun, ko, "--pid", "1")
    _no_traceback(r)
    assert r.returncode == 1, r.stderr
    assert f"{ko} was built for kernel 5.10.0-99-amd64; this host runs {RUNNING}" in r.stderr
    assert f"stapdoctor profile --compile-only {ko} -r {RUNNING}" in r.stderr
    assert not (tmp_path / "out").exists()


def test_module_named_otherwise_than_its_file_runs_through_a_symlink(tmp_path, fake_stap, fake_staprun, busy_proc):
    """staprun names a module after its path; this one registers as nginx_profile."""
    ko = make_module(tmp_path / "nginx-profile.ko", RUNNING, "nginx_profile")
    direct = subprocess.run([fake_staprun, "-x", str(busy_proc.pid), str(ko), "duration_ms=100"],
                            capture_output=True, text=True, timeout=60)
    assert direct.returncode == 1 and "not a zombie" in direct.stderr  # the stand-in fails as staprun does
    fake_stap[1](staprun_realpath_log=str(tmp_path / "realpath"))
    r = _run_module(tmp_path, fake_staprun, ko, "--pid", str(busy_proc.pid), "--duration", "1")
    _no_traceback(r)
    assert r.returncode == 0, r.stderr
    sm = json.loads((tmp_path / "out" / "summary.json").read_text())
    loaded = Path(sm["stap_argv"][-2])
    assert loaded.name == "nginx_profile.ko" and (tmp_path / "realpath").read_text() == str(ko)
    assert not loaded.parent.exists()  # the symlink's directory is gone after the run
    assert sm["module"]["name"] == "nginx_profile" and sm["module"]["path"] == str(ko) and sm["samples"] > 0


def test_read_module_of_a_real_kernel_module(tmp_path):
    """The name and vermagic of a distribution's module, as binutils shows them."""
    import glob
    import lzma

    from stapdoctor.profiler.prebuilt import read_module

    found = sorted(glob.glob("/lib/modules/*/kernel/net/key/af_key.ko*") + glob.glob("/lib/modules/*/kernel/**/*.ko",
                                                                                        recursive=True))[:1]
    if not found:
        pytest.fail("no kernel module under /lib/modules/*/kernel: apt-get install linux-image-amd64 "
                    "(tests/apt-packages.txt)")
    ko = tmp_path / "m.ko"
    ko.write_bytes(lzma.decompress(Path(found[0]).read_bytes()) if found[0].endswith(".xz") else
                   Path(found[0]).read_bytes())
    info, name = read_module(ko)
    shown = _modinfo(ko)
    assert f"name={name}" in shown and f"vermagic={info['vermagic']}" in shown
    assert info["vermagic"].split()[0] == found[0].split("/")[3]


def test_module_that_is_not_a_module(tmp_path, fake_stap, fake_staprun, busy_exe):
    text = tmp_path / "text.ko"
    text.write_text("not an ELF file\n")
    src = tmp_path / "plain.c"
    src.write_text("int f(void) { return 1; }\n")
    plain = tmp_path / "plain.ko"
    subprocess.run(["gcc", "-c", "-o", str(plain), str(src)], check=True)
    exe = tmp_path / "exe.ko"
    exe.write_bytes(busy_exe.read_bytes())
    for ko, needle in ((text, "not a readable ELF file"), (plain, "no .modinfo section"), (exe, "ET_DYN")):
        r = _run_module(tmp_path, fake_staprun, ko, "--pid", "1")
        _no_traceback(r)
        assert r.returncode == 1, r.stderr
        assert f"{ko}: not a kernel module" in r.stderr and needle in r.stderr
    r = _run_module(tmp_path, fake_staprun, tmp_path / "missing.ko", "--pid", "1")
    assert r.returncode == 2 and "no such file" in r.stderr


@pytest.mark.parametrize("args", [["--maxstringlen", "512"], ["--maxmapentries", "5"], ["--maxaction", "5"],
                                  ["--maxbacktrace", "5"], ["--maxskipped", "5"], ["--no-overload"],
                                  ["--frequency", "99"], ["--kernel"], ["--stap", "/usr/bin/stap"],
                                  ["-r", RUNNING]])
def test_module_refuses_options_compiled_into_it(tmp_path, fake_stap, fake_staprun, args):
    ko = _module(tmp_path, sidecar={})
    r = _run_module(tmp_path, fake_staprun, ko, "--pid", "1", *args)
    _no_traceback(r)
    assert r.returncode == 2, r.stderr
    assert "compiled into the module; recompile with --compile-only" in r.stderr
    assert not (tmp_path / "out").exists()


def test_module_without_staprun(tmp_path, fake_stap, busy_proc):
    ko = _module(tmp_path, sidecar={})
    r = _run_module(tmp_path, str(tmp_path / "nostaprun"), ko, "--pid", str(busy_proc.pid))
    _no_traceback(r)
    assert r.returncode == 1 and "install systemtap-runtime" in r.stderr


def test_gate_for_a_precompiled_module_has_no_compile_checks():
    load = knowledge.gate_checks(False, compile=False)
    assert not {c for c in load if c.startswith(("devel.", "stap.", "debuginfo."))}
    assert {"kernel.uprobes", "kernel.modules", "kernel.module_unload", "kernel.relay", "policy.lockdown",
            "policy.sig_enforce", "access.user", "access.staprun", "transport"} == load
    assert knowledge.gate_checks(False) == load | {"devel.build", "devel.uts", "stap.installed", "stap.kernel_range"}
    assert knowledge.gate_checks(True, compile=False) == load | {"kernel.kprobes"}  # kernel symbols: compiled in


def test_module_gate_checks_loading_not_compiling(tmp_path, fake_stap, fake_staprun, busy_proc):
    """An Ubuntu 12.04 host (no uprobes, no headers, no stap): only the loading failures block."""
    snap_file = ubuntu_1204_snapshot(tmp_path)
    ko = _module(tmp_path, sidecar={})
    r = run_cli(["--module", str(ko), "--staprun", fake_staprun, "--pid", str(busy_proc.pid), "--duration", "1",
                 "--host-snapshot", str(snap_file), "-o", str(tmp_path / "blocked")])
    _no_traceback(r)
    assert r.returncode == 1, r.stderr
    assert "FAIL kernel.uprobes" in r.stderr
    assert "devel." not in r.stderr and "stap.installed" not in r.stderr
    assert not (tmp_path / "blocked" / "stap.out").exists()


def test_frame_warn_for_another_release_ignores_the_running_kernels_proc_config(tmp_path):
    import gzip

    (tmp_path / "proc").mkdir()
    with gzip.open(tmp_path / "proc" / "config.gz", "wt") as f:
        f.write("CONFIG_FRAME_WARN=8192\n")
    assert kernel_frame_warn("9.9.9", str(tmp_path)) == 8192
    assert kernel_frame_warn("9.9.9", str(tmp_path), proc_config=False) is None
    build = tmp_path / "lib/modules/9.9.9/build"
    build.mkdir(parents=True)
    (build / ".config").write_text("CONFIG_FRAME_WARN=1024\n")
    assert kernel_frame_warn("9.9.9", str(tmp_path), proc_config=False) == 1024


def test_help_lists_the_new_options():
    r = run_cli(["--help"], env={**os.environ, "COLUMNS": "200", "TERM": "dumb"})
    assert r.returncode == 0
    for opt in ("--compile-only", "--kernel-release", "-r", "--exe", "--module", "--staprun"):
        assert opt in r.stdout, opt


def test_inspect_keeps_a_symlinks_name_and_ignores_bad_sidecar_values(tmp_path):
    """staprun names the module after the path it is given, so a symlink is not resolved."""
    from stapdoctor.profiler.prebuilt import inspect

    store = tmp_path / "store"
    store.mkdir()
    make_module(store / "0123abcd.ko", RUNNING, "prof")
    (tmp_path / "prof.ko").symlink_to(store / "0123abcd.ko")
    (tmp_path / "prof.ko.json").write_text(json.dumps({
        "format": "stapdoctor.module/1", "module": "prof", "kernel_stacks": True, "frequency": 99,
        "limits": {"maxmapentries": "lots", "maxaction": 7, "maxskipped": None, "unknown": 1}}))
    pre = inspect(tmp_path / "prof.ko")
    assert pre.path == tmp_path / "prof.ko" and pre.name == "prof" and pre.built_for == RUNNING
    lim, why = pre.limits(16)
    assert lim.maxmapentries == 10240 and lim.maxaction == 7 and lim.buffer_size == 16 and "prof.ko.json" in why
    assert pre.kernel_stacks is True and pre.frequency == 99.0 and not pre.notes
