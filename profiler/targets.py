"""The process being profiled: find it, watch its memory maps, launch it held, stop helpers.

The runner symbolises user addresses in Python (see scripts/profile.stp for why), so it needs
the target's /proc/PID/maps while the target lives; :class:`MapsRecorder` keeps the union of
every snapshot so libraries that were unmapped or a target that exited can still be resolved.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path


class TargetError(Exception):
    """A user-facing problem with the target (no such process, command not found...)."""


@dataclass(frozen=True, order=True)
class Mapping:
    """One line of /proc/PID/maps."""

    start: int
    end: int
    perms: str
    offset: int
    path: str

    @property
    def executable(self) -> bool:
        return "x" in self.perms

    @property
    def is_file(self) -> bool:
        """A real file (not [heap], [vdso], anonymous or a deleted file)."""
        return self.path.startswith("/") and not self.path.endswith(" (deleted)")


def parse_maps(text: str) -> list[Mapping]:
    """Parse /proc/PID/maps text; lines that do not fit are ignored."""
    out = []
    for line in text.splitlines():
        parts = line.split(None, 5)
        if len(parts) < 5:
            continue
        try:
            lo, _, hi = parts[0].partition("-")
            start, end, offset = int(lo, 16), int(hi, 16), int(parts[2], 16)
        except ValueError:
            continue
        path = parts[5].strip() if len(parts) > 5 else ""
        out.append(Mapping(start, end, parts[1], offset, path))
    return out


def read_maps(pid: int) -> list[Mapping]:
    """The target's current maps ([] when it is gone or unreadable)."""
    try:
        with open(f"/proc/{pid}/maps", encoding="utf-8", errors="replace") as f:
            return parse_maps(f.read())
    except OSError:
        return []


def proc_state(pid: int) -> str | None:
    """The state letter from /proc/PID/stat (R, S, T, Z...), None when the process is gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
    except OSError:
        return None
    # the command name is in parentheses and may contain spaces or ')'
    rp = data.rfind(b")")
    fields = data[rp + 2 :].split()
    return fields[0].decode() if fields else None


def is_alive(pid: int) -> bool:
    """True while the process exists and is not a zombie (a zombie's stacks can no longer change)."""
    return proc_state(pid) not in (None, "Z", "X", "x")


def resolve_pid(pid: int) -> tuple[int, str | None]:
    """The thread-group id for ``pid`` (stap's pid() is the tgid) and a note when they differ."""
    if pid <= 0:
        raise TargetError(f"--pid {pid}: not a process id")
    try:
        status = Path(f"/proc/{pid}/status").read_text(errors="replace")
    except OSError:
        raise TargetError(f"--pid {pid}: no such process") from None
    tgid = pid
    for line in status.splitlines():
        if line.startswith("Tgid:"):
            tgid = int(line.split()[1])
            break
    if not is_alive(tgid):
        raise TargetError(f"--pid {pid}: the process has exited (zombie)")
    note = None
    if tgid != pid:
        note = f"{pid} is a thread of process {tgid}; profiling the whole process {tgid}"
    return tgid, note


def exe_of(pid: int) -> str | None:
    """The target's executable path (None for kernel threads or when unreadable)."""
    try:
        path = os.readlink(f"/proc/{pid}/exe")
    except OSError:
        return None
    return None if path.endswith(" (deleted)") else path


def resolve_command(argv0: str) -> str:
    """The path of a command to launch, as execvp would find it; TargetError when there is none."""
    path = argv0 if "/" in argv0 else shutil.which(argv0)
    if not path or not os.path.isfile(path) or not os.access(path, os.X_OK):
        raise TargetError(f"command not found or not executable: {argv0}")
    return os.path.abspath(path)


def unwind_modules(maps: list[Mapping], exe: str | None) -> list[str]:
    """Files stap needs unwind/symbol data for (its ``-d`` list): the executable and every
    executable file mapping, in map order, existing regular files only (a deleted or
    namespace-private file would make stap fail)."""
    seen: dict[str, None] = {}
    if exe and os.path.isfile(exe):
        seen[exe] = None
    for m in maps:
        if m.executable and m.is_file and m.path not in seen and os.path.isfile(m.path):
            seen[m.path] = None
    return list(seen)


class MapsRecorder:
    """Union of the target's maps over time (libraries come and go; the target may exit).

    ``poll()`` is cheap to call often; it reads /proc at most every ``interval`` seconds, more
    often right after :meth:`kick` (the first instants after a launched target execs).
    """

    def __init__(self, pid: int, interval: float = 1.0):
        self.pid = pid
        self.interval = interval
        self._seen: dict[Mapping, int] = {}  # mapping -> generation last seen
        self._gen = 0
        self._next = 0.0
        self._fast = 0

    def kick(self) -> None:
        """Poll at short intervals for a while (after exec, mappings change quickly)."""
        self._fast = 8
        self._next = 0.0

    def poll(self, now: float | None = None) -> bool:
        """Read the maps if due; True when something was read."""
        now = time.monotonic() if now is None else now
        if now < self._next:
            return False
        maps = read_maps(self.pid)
        if self._fast:
            self._fast -= 1
            self._next = now + 0.05
        else:
            self._next = now + self.interval
        if not maps:
            return False
        self._gen += 1
        for m in maps:
            self._seen[m] = self._gen
        return True

    def mappings(self) -> list[tuple[Mapping, int]]:
        """Every mapping seen with the generation it was last seen in (newer wins on overlap)."""
        return sorted(self._seen.items(), key=lambda kv: kv[0].start)

    def save(self, path: Path) -> None:
        """Write the union in /proc/PID/maps format (so the stacks can be symbolised again)."""
        with open(path, "w", encoding="utf-8") as f:
            for m, _gen in self.mappings():
                f.write(f"{m.start:x}-{m.end:x} {m.perms} {m.offset:08x} 00:00 0 {m.path}\n")


# The launched command is first a tiny /bin/sh that stops itself; the runner lets it continue once
# stap's begin probe has run, and it then execs the real command in the same process (same pid, so
# `stap -x PID` and pid() == target() follow it through the exec). The script is a constant: the
# user's command reaches exec as "$@", never as text for the shell to parse. sh rather than Python:
# stap adds the target's executable at start (/proc/PID/exe) to the module's unwind data, and a
# small shell keeps that cheap.
_HOLD_AND_EXEC = 'kill -STOP $$; exec "$@"'


def launch_held(argv: list[str]) -> subprocess.Popen:
    """Start ``argv`` stopped before its exec; it shares our terminal (stdin/stdout/stderr).

    Why not ``stap -c``: stap would start the command itself with stap's stdout, which the runner
    reads as profile data, so the program's output would mix into it; and stap -c takes one string
    that stap splits again. Holding the process here keeps its output apart and needs no quoting.
    """
    proc = subprocess.Popen(["/bin/sh", "-c", _HOLD_AND_EXEC, "stapdoctor-held", *argv], start_new_session=True)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        state = proc_state(proc.pid)
        if state == "T" or state == "t":
            return proc
        if proc.poll() is not None:
            raise TargetError(f"the command exited before it could be profiled (status {proc.returncode})")
        time.sleep(0.005)
    proc.kill()
    raise TargetError("the command did not reach its start point within 10 s")


def release(proc: subprocess.Popen) -> None:
    """Let a held command continue into its exec."""
    try:
        os.kill(proc.pid, signal.SIGCONT)
    except ProcessLookupError:
        pass


class Stopper:
    """Stop a process group politely: SIGTERM, then SIGKILL after ``grace`` seconds, without
    blocking the caller (``tick()`` is called from the runner's loop)."""

    def __init__(self, proc: subprocess.Popen, grace: float = 3.0, group: bool = True):
        self.proc = proc
        self.grace = grace
        self.group = group
        self._kill_at: float | None = None

    def _send(self, sig: int) -> None:
        try:
            if self.group:
                os.killpg(self.proc.pid, sig)
            else:
                os.kill(self.proc.pid, sig)
        except (ProcessLookupError, PermissionError):
            pass

    @property
    def started(self) -> bool:
        return self._kill_at is not None

    def stop(self) -> None:
        if self._kill_at is not None or self.proc.poll() is not None:
            return
        if proc_state(self.proc.pid) in ("T", "t"):
            self._send(signal.SIGKILL)  # a stopped process would not see SIGTERM
            self._kill_at = time.monotonic()
            return
        self._send(signal.SIGTERM)
        self._kill_at = time.monotonic() + self.grace

    def tick(self) -> None:
        if self._kill_at is not None and self.proc.poll() is None and time.monotonic() >= self._kill_at:
            self._send(signal.SIGKILL)
            self._kill_at = float("inf")

    def finish(self, timeout: float | None = None) -> int | None:
        """Stop (if not yet) and wait until the process is gone; returns its status."""
        self.stop()
        end = time.monotonic() + (self.grace if timeout is None else timeout)
        while self.proc.poll() is None and time.monotonic() < end:
            time.sleep(0.02)
        if self.proc.poll() is None:
            self._send(signal.SIGKILL)
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                pass
        return self.proc.returncode
