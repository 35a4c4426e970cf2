"""A stap (or staprun) process while it runs: its streamed output, the status line, the signals.

Both ways of running one share this: the runner (compile and sample, or staprun a module) and
prebuilt's --compile-only (passes 1-4). What the lines mean is theirs; here is how they arrive,
how progress is shown, and how Ctrl-C, SIGTERM and a hang-up reach the caller instead of killing it.
"""

from __future__ import annotations

import contextlib
import os
import queue
import re
import shutil
import signal
import subprocess
import threading
import time
from pathlib import Path

from rich.console import Console
from rich.text import Text

from .request import ProfileError

#: What stap is doing once "Pass N: ..." (pass N finished) has been printed.
NEXT_PASS = {
    0: "pass 1/5: parsing the script and tapsets",
    1: "pass 2/5: analysing the probes",
    2: "pass 3/5: translating to C",
    3: "pass 4/5: compiling the kernel module (minutes on a slow or emulated machine)",
    4: "pass 5/5: loading the module",
}

#: The signals that end a run early but keep what it collected: Ctrl-C, a polite kill, and the
#: terminal or SSH session going away (SIGHUP would otherwise kill us with the target held stopped).
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


def printable(text: str, limit: int = 1000) -> str:
    """``text`` safe to print on a terminal (stap's messages name symbols and paths: an escape sequence in
    a WARNING must not drive it): the flame graph's one rule, summary.terminal_text."""
    from .summary import terminal_text

    return terminal_text(text, limit)


def clock(s: float) -> str:
    s = max(0, int(s))
    return f"{s // 60:02d}:{s % 60:02d}"


class Display:
    """One status line: the compile pass while stap builds, a countdown while it samples.
    On a terminal it is a live line; otherwise (logs, the VM test) a plain line per change."""

    def __init__(self, console: Console):
        self.console = console
        self.live = None
        self._last_plain = ""
        self._last_plain_t = 0.0
        if console.is_terminal:
            from rich.live import Live

            self.live = Live(Text(""), console=console, transient=True, refresh_per_second=8)
            self.live.start()

    def update(self, text: str, *, milestone: bool = False, every: float = 15.0) -> None:
        if self.live is not None:
            self.live.update(Text(text))
            return
        now = time.monotonic()
        if milestone or (text != self._last_plain and now - self._last_plain_t >= every):
            if text != self._last_plain:
                self.console.print(Text(text), highlight=False)
            self._last_plain, self._last_plain_t = text, now

    def say(self, text: Text | str) -> None:
        self.console.print(text if isinstance(text, Text) else Text(text), highlight=False)

    def close(self) -> None:
        if self.live is not None:
            self.live.stop()
            self.live = None


def read_stream(stream, sink_path: Path, q: queue.Queue, tag: str) -> None:
    """Copy a pipe to a file line by line (flushed, so Ctrl-C or a crash keeps it) and queue lines;
    ``(tag, None)`` when the pipe closes."""
    with open(sink_path, "ab", buffering=0) as sink:
        for line in iter(stream.readline, b""):
            sink.write(line)
            q.put((tag, line))
    q.put((tag, None))


def start_reader(stream, sink_path: Path, q: queue.Queue, tag: str) -> threading.Thread:
    t = threading.Thread(target=read_stream, args=(stream, sink_path, q, tag), daemon=True)
    t.start()
    return t


def pass_number(text: str) -> int | None:
    """N for stap -v's "Pass N: ..." lines."""
    if text.startswith("Pass ") and text[5:6].isdigit():
        return int(text[5])
    return None


def detach_from_terminal() -> None:
    """After a hang-up nobody reads our stdout/stderr any more, and writing to a closed terminal or
    pipe fails (EIO, EPIPE): point both at /dev/null so the run can still end and write its files."""
    try:
        fd = os.open(os.devnull, os.O_WRONLY)
    except OSError:
        return
    for target in (1, 2):
        with contextlib.suppress(OSError):
            os.dup2(fd, target)
    os.close(fd)


@contextlib.contextmanager
def stop_signals(on_signal, signals=STOP_SIGNALS):
    """While inside, ``signals`` call ``on_signal(signum)`` instead of ending the process (only in
    the main thread: elsewhere Python cannot install handlers). A hang-up also detaches the output."""

    def handler(signum, frame):
        if signum == signal.SIGHUP:
            detach_from_terminal()
        on_signal(signum)

    saved = {}
    if threading.current_thread() is threading.main_thread():
        for s in signals:
            saved[s] = signal.signal(s, handler)
    try:
        yield
    finally:
        for s, h in saved.items():
            signal.signal(s, h)


def _raise_interrupt(signum: int) -> None:
    raise KeyboardInterrupt


def interrupt_on_stop_signals():
    """SIGTERM and SIGHUP end the command as Ctrl-C does (KeyboardInterrupt, so every ``finally`` runs:
    a launched command held stopped is killed, not left behind); a run in progress overrides this
    with :func:`stop_signals` to keep its samples."""
    return stop_signals(_raise_interrupt, (signal.SIGTERM, signal.SIGHUP))


def signal_group(proc: subprocess.Popen, sig: int) -> None:
    """Send ``sig`` to the process group of ``proc`` (stap, staprun, stapio; gcc during pass 4), as a
    terminal's Ctrl-C on a foreground stap would: the path stap's own signal handling expects."""
    try:
        os.killpg(proc.pid, sig)
    except (ProcessLookupError, PermissionError):
        with contextlib.suppress(ProcessLookupError):
            os.kill(proc.pid, sig)


def resolve_stap(stap: str | None) -> str:
    stap = stap or "stap"
    path = stap if "/" in stap else shutil.which(stap)
    if not path or not os.access(path, os.X_OK):
        raise ProfileError(f"stap not found ({stap}): install systemtap (`stapdoctor check` says how) or pass --stap PATH")
    return path


def stap_version(stap: str) -> str | None:
    """``stap -V``'s first line, shortened to the version (it printed on stderr before 2.7)."""
    try:
        r = subprocess.run([stap, "-V"], capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired):
        return None
    text = (r.stdout or "") + (r.stderr or "")
    m = re.search(r"\(version ([^\s,)]+)", text)
    return m.group(1) if m else None
