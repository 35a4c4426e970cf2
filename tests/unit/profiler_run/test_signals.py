"""Signals and the terminal: a hang-up is Ctrl-C (issue 13.7); stap's text cannot drive the terminal (13.8)."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import uuid
from pathlib import Path

from .conftest import CLI, FAKE_STAP, wait_for
from .test_runner import OUTPUTS, _held_stubs, _procs_running


def _cmdline_pids(marker: str) -> list[int]:
    out = []
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                if marker.encode() in (d / "cmdline").read_bytes():
                    out.append(int(d.name))
            except OSError:
                pass
    return out


def _start(out: Path, *args) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", CLI, "--stap", str(FAKE_STAP), "-o", str(out), "--force", *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _finish(p: subprocess.Popen, sig: int) -> str:
    try:
        p.send_signal(sig)
        _stdout, stderr = p.communicate(timeout=60)
    finally:
        if p.poll() is None:
            p.kill()
    return stderr


def test_hangup_while_sampling_ends_like_ctrl_c(tmp_path, fake_stap, busy_exe):
    out = tmp_path / "hup"
    marker = f"sighup-workload-{uuid.uuid4().hex}"
    workload = f"{sys.executable} -c 'import time; time.sleep(300)' {marker}"
    p = _start(out, "--duration", "120", "--while", workload, "--", str(busy_exe))
    try:
        assert wait_for(lambda: (out / "stap.out").exists() and "tick" in (out / "stap.out").read_text(), 60)
        assert wait_for(lambda: _cmdline_pids(marker), 10)  # the workload runs
    except BaseException:
        p.kill()
        raise
    stderr = _finish(p, signal.SIGHUP)
    assert p.returncode == 0, stderr  # not killed by the signal (-1): the run ended and wrote its files
    sm = json.loads((out / "summary.json").read_text())
    assert sm["ended_by"] == "interrupt" and sm["samples"] > 0
    assert any("SIGHUP" in n for n in sm["problems"])
    for name in OUTPUTS:
        assert (out / name).is_file(), name
    assert _procs_running(busy_exe) == []  # the launched command was stopped, not left behind
    assert not [pid for pid in _cmdline_pids(marker) if "Z" not in Path(f"/proc/{pid}/stat").read_text()[-60:]]


def test_hangup_during_compile_reaps_the_held_command(tmp_path, fake_stap, busy_exe):
    out = tmp_path / "hupc"
    fake_stap[1](compile_s=120)
    p = _start(out, "--duration", "5", "--", str(busy_exe))
    try:
        assert wait_for(lambda: (out / "stap.err").exists() and "Pass 1" in (out / "stap.err").read_text(), 60)
        assert _held_stubs(str(busy_exe))
    except BaseException:
        p.kill()
        raise
    _finish(p, signal.SIGHUP)
    assert p.returncode == 1
    assert json.loads((out / "summary.json").read_text())["ended_by"] == "interrupt"
    assert _held_stubs(str(busy_exe)) == [] and _procs_running(busy_exe) == []


def test_stap_warnings_reach_the_terminal_without_escapes(tmp_path, fake_stap, busy_proc):
    evil = "WARNING: probe in \x1b]0;owned\x07/tmp/\x1b[2Jlib.so \x9b31m"
    fake_stap[1](end_stderr=[evil, "WARNING: Number of errors: 0, skipped probes: 3"])
    r = subprocess.run([sys.executable, "-c", CLI, "--stap", str(FAKE_STAP), "-o", str(tmp_path / "w"), "--force",
                        "--pid", str(busy_proc.pid), "--duration", "1"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert "/tmp/" in r.stderr and "lib.so" in r.stderr  # the message is shown...
    assert "\x1b" not in r.stderr and "\x07" not in r.stderr and "\x9b" not in r.stderr  # ...without its controls
    assert evil in (tmp_path / "w" / "stap.err").read_text()  # the file keeps what stap said


def test_top_table_prints_names_without_control_characters():
    import io

    from rich.console import Console

    from stapdoctor.profiler.summary import print_top, top_functions

    buf = io.StringIO()
    print_top(top_functions({("main", "evil\x1b[2J\x9b1m\x07"): 3}), total_samples=3,
              console=Console(file=buf, width=200))
    text = buf.getvalue()
    assert "evil" in text and not any(c in text for c in "\x1b\x9b\x07")
