"""The profile command end to end with a stand-in stap (fake_stap.py) and real target processes.

What this proves: the runner's logic (arguments, the window, idle/exiting targets, Ctrl-C, the
watchdog, launched commands, --while, error translation, every output file). What it cannot prove
is that stap samples a real kernel: the real-kernel VM test runs this same command for that.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from .conftest import DATA, FAKE_STAP, interrupt, ubuntu_1204_snapshot, run_cli, wait_for

OUTPUTS = ["stap.out", "stap.err", "stacks.txt", "stacks.folded", "flamegraph.svg", "profile.speedscope.json",
           "summary.txt", "summary.json", "maps.txt"]


def _profile(out: Path, *args, timeout=120, stap=str(FAKE_STAP)):
    return run_cli(["--stap", stap, "-o", str(out), "--force", *args], timeout=timeout)


def _summary(out: Path) -> dict:
    return json.loads((out / "summary.json").read_text())


def _no_traceback(r):
    assert "Traceback" not in r.stderr and "Traceback" not in r.stdout, r.stderr


def _folded(out: Path) -> dict[str, int]:
    lines = (out / "stacks.folded").read_text().splitlines()
    return {l.rsplit(" ", 1)[0]: int(l.rsplit(" ", 1)[1]) for l in lines}


def test_busy_pid_writes_every_output(tmp_path, fake_stap, busy_proc, busy_exe):
    out = tmp_path / "prof"
    r = _profile(out, "--pid", str(busy_proc.pid), "--duration", "2")
    _no_traceback(r)
    assert r.returncode == 0, r.stderr
    for name in OUTPUTS:
        assert (out / name).is_file(), name
    sm = _summary(out)
    assert sm["samples"] > 0 and sm["samples"] == sm["samples_stored"] and sm["lost"] == 0
    assert sm["ended_by"] == "timer" and sm["exit_code"] == 0
    folded = _folded(out)
    assert "__libc_start_main;main;func_a;func_b;func_c" in folded
    assert "__libc_start_main;main;func_a;func_c" in folded
    assert sum(folded.values()) == sm["samples"]
    # the stap command line: -x PID, --ldd, -d for the executable and its mapped libraries
    argv = json.loads((tmp_path / "stap-argv.json").read_text())
    assert argv[argv.index("-x") + 1] == str(busy_proc.pid) and "--ldd" in argv
    ds = [argv[i + 1] for i, a in enumerate(argv) if a == "-d"]
    assert ds[0] == str(busy_exe) and any("libc.so" in d for d in ds)
    assert "duration_ms=2000" in argv
    assert sm["stap_argv"][1:] == argv
    # raw output is the script's records; the stacks file has stap's print_ustack shape
    assert (out / "stap.out").read_text().startswith(f"stapdoctor:begin {busy_proc.pid} 2000")
    assert ": func_c+0x4/" in (out / "stacks.txt").read_text()
    assert "<svg" in (out / "flamegraph.svg").read_text()[:2000]
    assert json.loads((out / "profile.speedscope.json").read_text())["$schema"].startswith("https://www.speedscope.app")
    assert "func_c" in (out / "summary.txt").read_text()
    assert "Pass 4" in (out / "stap.err").read_text()
    assert "func_c" in r.stderr  # the top-N table


def test_idle_target_finishes_on_time(tmp_path, fake_stap, idle_proc):
    out = tmp_path / "idle"
    t0 = time.monotonic()
    r = _profile(out, "--pid", str(idle_proc.pid), "--duration", "2")
    elapsed = time.monotonic() - t0
    _no_traceback(r)
    assert r.returncode == 1, r.stderr  # no sample: a failure said in words, not an empty flame graph
    sm = _summary(out)
    assert sm["samples"] == 0 and sm["ended_by"] == "timer" and sm["exit_code"] == 1
    assert any(a["id"] == "idle" for a in sm["advice"])
    assert elapsed < 2 + 25, elapsed  # the window plus gate/compile/teardown on a loaded machine
    assert "error: no samples were taken, so no flame graph was written" in r.stderr
    assert "no samples were taken" in (out / "summary.txt").read_text()
    for name in ("flamegraph.svg", "stacks.folded", "profile.speedscope.json", "stacks.txt"):
        assert not (out / name).exists(), name
    assert set(sm["files"].values()) == {p.name for p in out.iterdir()} - {"stap-argv.json"}


def test_profile_svg_says_pid_window_and_samples_once(tmp_path, fake_stap, busy_proc, busy_exe):
    import re
    from html import unescape

    out = tmp_path / "sub"
    r = _profile(out, "--pid", str(busy_proc.pid), "--duration", "1")
    assert r.returncode == 0, r.stderr
    svg = (out / "flamegraph.svg").read_text()
    title = unescape(re.search(r'<text id="title"[^>]*>([^<]*)<', svg).group(1))
    sub = unescape(re.search(r'<text id="subtitle"[^>]*>([^<]*)<', svg).group(1))
    assert title == f"stapdoctor profile: {busy_exe}"
    sm = _summary(out)
    parts = sub.split("  ·  ")
    assert sub.count(str(busy_proc.pid)) == 1 and f"pid {busy_proc.pid}" in parts, sub
    assert sub.count("samples") == 1 and f"{sm['samples']:,} samples" in parts, sub
    assert [p for p in parts if p.endswith(" s")] == [f"{sm['window_s']:g} s"], sub


def test_target_exit_ends_the_window_and_keeps_samples(tmp_path, fake_stap, busy_proc):
    out = tmp_path / "exits"

    def kill_once_sampled():  # 2 s into the window, however long the start took on a loaded machine
        if wait_for(lambda: (out / "stap.out").exists() and "stapdoctor:begin" in (out / "stap.out").read_text(), 60):
            time.sleep(2.0)
        busy_proc.kill()

    killer = threading.Thread(target=kill_once_sampled, daemon=True)
    killer.start()
    t0 = time.monotonic()
    r = _profile(out, "--pid", str(busy_proc.pid), "--duration", "60")
    killer.join(5)
    elapsed = time.monotonic() - t0
    _no_traceback(r)
    assert r.returncode == 0, r.stderr
    sm = _summary(out)
    assert sm["ended_by"] == "target-exit", sm
    assert sm["samples"] > 0 and sum(_folded(out).values()) == sm["samples"]
    assert elapsed < 40, elapsed
    assert "exited" in r.stderr


def test_ctrl_c_stops_early_and_writes_everything(tmp_path, fake_stap, busy_proc):
    out = tmp_path / "intr"
    p = subprocess.Popen([sys.executable, "-c", "import typer; from stapdoctor.profiler.cli import profile; "
                          "typer.run(profile)", "--stap", str(FAKE_STAP), "-o", str(out), "--force",
                          "--pid", str(busy_proc.pid), "--duration", "120"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert wait_for(lambda: (out / "stap.out").exists() and "tick" in (out / "stap.out").read_text(), 60)
    except BaseException:
        p.kill()
        raise
    stdout, stderr, took = interrupt(p)
    assert took < 30
    assert "Traceback" not in stderr
    assert p.returncode == 0, stderr
    sm = _summary(out)
    assert sm["ended_by"] == "interrupt" and sm["samples"] > 0
    assert sm["window_s"] < 100
    for name in OUTPUTS:
        assert (out / name).is_file(), name
    assert "interrupted" in stderr


def test_launched_command_is_held_until_sampling_starts(tmp_path, fake_stap, busy_exe):
    out = tmp_path / "launch"
    state_log = tmp_path / "state-at-begin"
    fake_stap[1](state_log=str(state_log))
    r = _profile(out, "--duration", "2", "--", str(busy_exe), "an arg", "x;y")
    _no_traceback(r)
    assert r.returncode == 0, r.stderr
    assert state_log.read_text() == "T"  # stopped before its exec while stap was starting
    sm = _summary(out)
    assert sm["samples"] > 0 and "func_c" in (out / "stacks.folded").read_text()
    argv = json.loads((tmp_path / "stap-argv.json").read_text())
    assert "-c" not in argv and argv[argv.index("-d") + 1] == str(busy_exe)
    pid = sm["target"]["pid"]
    assert not Path(f"/proc/{pid}").exists() or "Z" in Path(f"/proc/{pid}/stat").read_text().split(")")[-1][:3]
    assert sm["target"]["label"] == f"{busy_exe} 'an arg' 'x;y'"


def test_launched_command_output_stays_out_of_stap_output(tmp_path, fake_stap):
    out = tmp_path / "echo"
    r = _profile(out, "--duration", "10", "--", "echo", "hello-from-target")
    _no_traceback(r)
    sm = _summary(out)
    # echo is usually gone before a sample: then the run fails, saying so
    assert r.returncode == (0 if sm["samples"] else 1), r.stderr
    assert "hello-from-target" in r.stdout
    assert "hello-from-target" not in (out / "stap.out").read_text()
    assert sm["ended_by"] == "target-exit"


def test_while_starts_after_begin_and_is_stopped(tmp_path, fake_stap, busy_proc):
    out = tmp_path / "while"
    raw = out / "stap.out"
    workload = f"{sys.executable} -c 'import sys, time; print(open(sys.argv[1]).read(), flush=True); time.sleep(300)' {raw}"
    t0 = time.monotonic()
    r = _profile(out, "--pid", str(busy_proc.pid), "--duration", "2", "--while", workload)
    _no_traceback(r)
    assert r.returncode == 0, r.stderr
    assert time.monotonic() - t0 < 60
    assert "stapdoctor:begin" in (out / "while.log").read_text()  # started once sampling had begun
    sm = _summary(out)
    assert sm["while"][0] == sys.executable and sm["while_status"] == -signal.SIGTERM


def test_pass4_failure_explained_and_held_target_reaped(tmp_path, fake_stap, busy_exe):
    out = tmp_path / "p4"
    fake_stap[1](pass4_fail_stderr=str(DATA / "stap-pass4-frame-larger-than.stderr"))
    r = _profile(out, "--duration", "2", "--maxstringlen", "4096", "--", str(busy_exe))
    _no_traceback(r)
    assert r.returncode == 1
    assert "stapdoctor check --deep" in r.stderr and "MAXSTRINGLEN=4096" in r.stderr
    assert "frame size of 4112 bytes" in r.stderr  # stap's own last lines are shown
    sm = _summary(out)
    assert sm["exit_code"] == 1 and {a["id"] for a in sm["advice"]} >= {"pass4", "maxstringlen"}
    assert "before sampling started" in " ".join(sm["problems"])
    assert not _procs_running(busy_exe)


def _procs_running(exe: Path) -> list[int]:
    pids = []
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                if os.readlink(d / "exe") == str(exe) and "Z" not in (d / "stat").read_text().split(")")[-1][:3]:
                    pids.append(int(d.name))
            except OSError:
                pass
    return pids


def test_watchdog_stops_a_stap_that_does_not_end(tmp_path, fake_stap, busy_proc):
    out = tmp_path / "wd"
    fake_stap[1](ignore_timer=True)
    t0 = time.monotonic()
    r = _profile(out, "--pid", str(busy_proc.pid), "--duration", "1")
    _no_traceback(r)
    assert r.returncode == 0, r.stderr
    assert time.monotonic() - t0 < 45
    sm = _summary(out)
    assert sm["ended_by"] == "watchdog" and sm["samples"] > 0
    assert any("did not end" in p for p in sm["problems"])


def test_stap_messages_become_advice_in_the_summary(tmp_path, fake_stap, busy_proc):
    out = tmp_path / "adv"
    fake_stap[1](end_stderr=["WARNING: Number of errors: 0, skipped probes: 3",
                             "WARNING: There were 2 transport failures. Try stap -s to increase the buffer size from 16."])
    r = _profile(out, "--pid", str(busy_proc.pid), "--duration", "1", "-s", "32")
    _no_traceback(r)
    sm = _summary(out)
    assert sm["skipped"] == 3
    ids = {a["id"] for a in sm["advice"]}
    assert {"skipped", "transport"} <= ids
    assert "now 32 MB" in (out / "summary.txt").read_text()
    assert "transport failures" in r.stderr


def test_kernel_stacks_go_on_top_of_user_stacks(tmp_path, fake_stap, busy_proc):
    syms = []
    for line in open("/proc/kallsyms"):
        p = line.split()
        if p[1] == "T" and int(p[0], 16) and len(p) == 3 and p[2].startswith("do_"):
            syms.append(p[2])
        if len(syms) == 2:
            break
    assert len(syms) == 2
    fake_stap[1](kstack=syms)
    out = tmp_path / "k"
    r = _profile(out, "--pid", str(busy_proc.pid), "--duration", "1", "--kernel")
    _no_traceback(r)
    assert r.returncode == 0, r.stderr
    argv = json.loads((tmp_path / "stap-argv.json").read_text())
    assert argv[-1].endswith("profile-kernel.stp") and "kernel" in argv
    folded = _folded(out)
    assert any(k.endswith(f"func_c;{syms[1]};{syms[0]}") for k in folded), folded


@pytest.mark.parametrize("args,needle", [
    ([], "exactly one target"),
    (["--pid", "1", "--", "true"], "exactly one target"),
    (["--pid", "999999999"], "no such process"),
    (["--pid", "1", "--duration", "0"], "--duration"),
    (["--pid", "1", "--frequency", "0"], "--frequency"),
    (["--pid", "1", "--while", "no-such-command-xyz --flag"], "--while: command not found"),
    (["--pid", "1", "--while", "'unclosed"], "--while"),
    (["--", "no-such-command-xyz"], "command not found"),
])
def test_usage_errors_are_one_line(tmp_path, fake_stap, args, needle):
    r = run_cli(["--stap", str(FAKE_STAP), "-o", str(tmp_path / "u"), "--force", *args])
    _no_traceback(r)
    assert r.returncode == 2, r.stderr
    assert needle in r.stderr


def test_missing_stap(tmp_path, busy_proc):
    r = run_cli(["--stap", str(tmp_path / "nostap"), "-o", str(tmp_path / "o"), "--force", "--pid", str(busy_proc.pid)])
    _no_traceback(r)
    assert r.returncode == 1 and "stap not found" in r.stderr


def test_gate_blocks_an_unready_host_and_force_overrides(tmp_path, fake_stap, busy_proc):
    """An Ubuntu 12.04 host (its real kernel config: no uprobes/utrace; no headers, no stap)."""
    snap_file = ubuntu_1204_snapshot(tmp_path)
    base = ["--stap", str(FAKE_STAP), "--pid", str(busy_proc.pid), "--duration", "1", "--host-snapshot", str(snap_file)]
    r = run_cli([*base, "-o", str(tmp_path / "blocked")])
    _no_traceback(r)
    assert r.returncode == 1, r.stderr
    assert "not ready" in r.stderr and "FAIL kernel.uprobes" in r.stderr and "fix:" in r.stderr
    assert not (tmp_path / "blocked" / "stap.out").exists()  # stap never ran
    r = run_cli([*base, "-o", str(tmp_path / "forced"), "--force"])
    _no_traceback(r)
    assert r.returncode == 0, r.stderr
    assert "--force: ignoring the failed checks" in r.stderr and "kernel.uprobes" in r.stderr
    assert _summary(tmp_path / "forced")["samples"] > 0


def test_gate_decision_only_fails_block():
    from types import SimpleNamespace as F

    from stapdoctor.profiler.gate import decide

    fs = [F(id="kernel.uprobes", status="fail"), F(id="kernel.uprobes", status="pass"),
          F(id="debuginfo.vmlinux", status="fail"), F(id="stap.kernel_range", status="warn")]
    assert [f.id for f in decide(fs, {"kernel.uprobes", "stap.kernel_range"})] == ["kernel.uprobes"]
    assert [f.id for f in decide(fs, {"debuginfo.vmlinux"})] == ["debuginfo.vmlinux"]


def test_ctrl_c_during_compile_stops_stap_and_reaps_the_held_command(tmp_path, fake_stap, busy_exe):
    out = tmp_path / "cc"
    fake_stap[1](compile_s=120)
    p = subprocess.Popen([sys.executable, "-c", "import typer; from stapdoctor.profiler.cli import profile; "
                          "typer.run(profile)", "--stap", str(FAKE_STAP), "-o", str(out), "--force",
                          "--duration", "5", "--", str(busy_exe)],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert wait_for(lambda: (out / "stap.err").exists() and "Pass 1" in (out / "stap.err").read_text(), 60)
        assert _procs_running(busy_exe) == []  # held before its exec: still the sh stub
        assert _held_stubs(str(busy_exe))
        p.send_signal(signal.SIGINT)
        stdout, stderr = p.communicate(timeout=60)
    finally:
        if p.poll() is None:
            p.kill()
    assert "Traceback" not in stderr
    assert p.returncode == 1, stderr
    sm = _summary(out)
    assert sm["ended_by"] == "interrupt" and sm["samples"] == 0
    assert "before sampling started" in " ".join(sm["problems"])
    assert _procs_running(busy_exe) == []
    assert not [pid for pid in _held_stubs(str(busy_exe))]


def _held_stubs(arg: str) -> list[int]:
    out = []
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                cmd = (d / "cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if arg.encode() in cmd and b"stapdoctor-held" in cmd:
                out.append(int(d.name))
    return out


def test_registered_command_passes_option_like_args_to_the_launched_command(tmp_path, fake_stap, busy_exe):
    """Through the `stapdoctor` entry point: everything after the command belongs to it."""
    entry = Path(sys.executable).with_name("stapdoctor")
    out = tmp_path / "entry"
    r = subprocess.run([str(entry), "profile", "--stap", str(FAKE_STAP), "-o", str(out), "--force", "--duration", "1",
                        str(busy_exe), "-x", "--pid", "7"], capture_output=True, text=True, timeout=120)
    _no_traceback(r)
    assert r.returncode == 0, r.stderr
    sm = _summary(out)
    assert sm["target"]["label"] == f"{busy_exe} -x --pid 7" and sm["samples"] > 0


def test_api_without_begin_record_times_the_window_from_pass5(tmp_path, fake_stap, busy_proc, monkeypatch):
    """In-process through the API the VM test could also use (run_profile). The fallback starts the window
    1 s after pass 5, while stap's own 2-s timer runs from pass 5: ended by that timer, not "stap-exit"
    (judged from the late window, a loaded machine made this a coin toss in CI)."""
    from rich.console import Console

    from stapdoctor.profiler import runner

    monkeypatch.setattr(runner, "BEGIN_FALLBACK_S", 1.0)
    fake_stap[1](no_begin=True, stdout_noise=["a line that is not ours"])
    res = runner.run_profile(runner.ProfileRequest(output=tmp_path / "api", duration=2, pid=busy_proc.pid,
                                                   stap=str(FAKE_STAP)), Console(stderr=True))
    assert res.exit_code == 0 and res.samples > 0 and res.ended_by == "timer"
    assert any("no begin record" in p for p in res.problems)
    assert Path(res.files["svg"]).is_file() and Path(res.files["summary_json"]).is_file()


def test_lost_samples_are_counted_and_explained(tmp_path, fake_stap, busy_proc):
    fake_stap[1](lost=17)
    out = tmp_path / "lost"
    r = _profile(out, "--pid", str(busy_proc.pid), "--duration", "1", "--maxmapentries", "64")
    _no_traceback(r)
    assert r.returncode == 0, r.stderr
    sm = _summary(out)
    assert sm["lost"] == 17 and sm["samples"] == sm["samples_stored"] + 17
    adv = [a for a in sm["advice"] if a["id"] == "maxmapentries"]
    assert adv and "now 64" in adv[0]["fix"] and "17 samples were not stored" in adv[0]["evidence"][0]
    assert "17 lost" in r.stderr
