"""What a `profile` run was asked to do, and the usage errors found before anything runs.

Shared by the runner (compile and sample here) and prebuilt (compile here, run elsewhere), so both
refuse the same bad input with the same words and exit code 2.
"""

from __future__ import annotations

import math
import os
import shlex
import stat
from dataclasses import dataclass
from pathlib import Path

from . import targets
from .advice import Limits
from .stapargs import (DEFAULT_MAXACTION, DEFAULT_MAXBACKTRACE, DEFAULT_MAXMAPENTRIES, kernel_frame_warn,
                       safe_maxstringlen)

#: The longest sampling window accepted (a day): longer ones are typing mistakes, and stap's
#: aggregates would overflow their MAXMAPENTRIES long before.
MAX_DURATION_S = 86400.0
#: After the window, how long stap gets to end by itself before it is sent SIGINT.
GRACE_S = 5.0


class ProfileError(Exception):
    """A user-facing failure before stap runs: ``code`` 2 for usage, 1 otherwise."""

    def __init__(self, message: str, code: int = 1):
        super().__init__(message)
        self.code = code


@dataclass
class ProfileRequest:
    """One `profile` invocation. Options that go into the compiled module default to None ("not given"),
    so --module can refuse them: they cannot change a module compiled elsewhere."""

    output: Path | None  # None only with compile_only (the module file is the output)
    duration: float
    pid: int | None = None
    command: list[str] | None = None
    while_cmd: str | None = None
    kernel: bool = False
    stap: str | None = None  # None: stap on PATH
    maxmapentries: int | None = None  # None: DEFAULT_MAXMAPENTRIES
    maxaction: int | None = None  # None: DEFAULT_MAXACTION
    maxbacktrace: int | None = None  # None: DEFAULT_MAXBACKTRACE
    maxstringlen: int | None = None  # None: sized from the kernel's CONFIG_FRAME_WARN
    maxskipped: int | None = None
    no_overload: bool = False
    buffer_size: int | None = None
    frequency: float | None = None  # Hz (perf cpu-clock); None: timer.profile (stap's default rate)
    grace: float = GRACE_S
    # compile here, run there (profiler/prebuilt.py)
    compile_only: Path | None = None  # write the compiled module here and stop
    kernel_release: str | None = None  # with compile_only; None: the running kernel
    exe: list[str] | None = None  # with compile_only: executables whose stacks will be unwound
    module: Path | None = None  # run this precompiled module with staprun
    staprun: str | None = None  # with module; None: staprun on PATH


#: Options whose values are compiled into the module (refused with --module, which cannot change them).
_COMPILED_IN = (("maxstringlen", "--maxstringlen"), ("maxmapentries", "--maxmapentries"), ("maxaction", "--maxaction"),
                ("maxbacktrace", "--maxbacktrace"), ("maxskipped", "--maxskipped"), ("no_overload", "--no-overload"),
                ("frequency", "--frequency"), ("kernel", "--kernel"), ("stap", "--stap"),
                ("kernel_release", "--kernel-release/-r"))


def check_modes(req: ProfileRequest) -> None:
    """Which options go with --compile-only (compile here) and --module (run a compiled module)."""
    if req.compile_only is not None and req.module is not None:
        raise ProfileError("--compile-only and --module do not go together: compile with one, run with the other", 2)
    if req.module is not None:
        given = [flag for name, flag in _COMPILED_IN if getattr(req, name) not in (None, False)]
        if given:
            raise ProfileError(f"{', '.join(given)}: compiled into the module; recompile with --compile-only", 2)
    if req.compile_only is None:
        if req.kernel_release:
            raise ProfileError("--kernel-release/-r only goes with --compile-only (a profile runs on this kernel)", 2)
        if req.exe:
            raise ProfileError("--exe only goes with --compile-only (a profile finds the executable from --pid or "
                               "the command)", 2)
    if req.module is None and req.staprun:
        raise ProfileError("--staprun only goes with --module (stap runs its own staprun)", 2)
    if req.compile_only is not None:
        forms = sum([bool(req.exe), req.pid is not None, bool(req.command)])
        if forms != 1:
            raise ProfileError("give exactly one target to compile for: --exe PATH (repeatable), --pid PID, or a "
                               "command after --", 2)
        for flag, given_ in (("--while", req.while_cmd is not None), ("--output", req.output is not None),
                             ("--buffer-size", req.buffer_size is not None)):
            if given_:
                raise ProfileError(f"{flag} is for a run, not for --compile-only (give it with --module)", 2)
    elif (req.pid is None) == (not req.command):
        raise ProfileError("give exactly one target: --pid PID, or a command after --", 2)


def check_request(req: ProfileRequest) -> list[str] | None:
    """Usage errors (exit 2) before anything runs; returns the --while argv."""
    check_modes(req)
    d = req.duration
    if not isinstance(d, (int, float)) or not math.isfinite(d) or d <= 0:
        raise ProfileError(f"--duration {d}: must be a positive, finite number of seconds", 2)
    if d > MAX_DURATION_S:
        raise ProfileError(f"--duration {d:g}: at most {MAX_DURATION_S:g} s (a day) per profile", 2)
    for name in ("maxmapentries", "maxaction", "maxbacktrace"):
        if getattr(req, name) is not None and getattr(req, name) <= 0:
            raise ProfileError(f"--{name} must be positive", 2)
    if req.maxskipped is not None and req.maxskipped < 0:
        raise ProfileError(f"--maxskipped {req.maxskipped}: must be 0 or more", 2)
    if req.maxstringlen is not None and req.maxstringlen < 64:
        raise ProfileError("--maxstringlen must be at least 64", 2)
    if req.frequency is not None and not 1 <= req.frequency <= 100000:
        raise ProfileError("--frequency must be 1..100000 Hz", 2)
    if req.buffer_size is not None and not 1 <= req.buffer_size <= 4095:
        raise ProfileError("--buffer-size must be 1..4095 (MB)", 2)
    if req.output is not None:
        check_output_dir(req.output)
    while_argv = None
    if req.while_cmd is not None:
        # Split like a shell would, but no shell runs it: no pipes, redirections or variables.
        try:
            while_argv = shlex.split(req.while_cmd)
        except ValueError as e:
            raise ProfileError(f"--while: {e}", 2) from None
        if not while_argv:
            raise ProfileError("--while: empty command", 2)
        try:
            targets.resolve_command(while_argv[0])
        except targets.TargetError as e:
            raise ProfileError(f"--while: {e}", 2) from None
    return while_argv


def check_output_dir(out: Path) -> None:
    """Refuse an output directory another user controls: a profile often runs as root, and root writing
    into a directory someone else made (or can write to) follows their symlinks and lets them swap
    the files before they are read. A new directory is ours; an existing one must be too."""
    try:
        lst = os.lstat(out)
    except FileNotFoundError:
        return
    except OSError as e:
        raise ProfileError(f"{out}: cannot use as the output directory ({e.strerror})", 2) from None
    me = os.geteuid()
    if stat.S_ISLNK(lst.st_mode) and lst.st_uid != me:
        raise ProfileError(f"{out}: a symbolic link owned by another user (uid {lst.st_uid}); give a directory "
                           "of your own", 2)
    try:
        st = os.stat(out)
    except OSError as e:
        raise ProfileError(f"{out}: cannot use as the output directory ({e.strerror})", 2) from None
    if not stat.S_ISDIR(st.st_mode):
        raise ProfileError(f"{out}: exists and is not a directory", 2)
    if st.st_uid != me:
        raise ProfileError(f"{out}: the directory belongs to another user (uid {st.st_uid}); give a new or "
                           "your own directory", 2)
    if st.st_mode & stat.S_IWOTH:
        raise ProfileError(f"{out}: the directory is writable by every user; give a new or private directory", 2)


def limits(req: ProfileRequest, release: str | None = None) -> tuple[Limits, str]:
    """The -D limits; MAXSTRINGLEN from the config of the kernel compiled for (``release``, default running)."""
    if req.maxstringlen is not None:
        msl, why = req.maxstringlen, "as given"
    else:
        running = release is None or release == os.uname().release
        fw = kernel_frame_warn(release, proc_config=running)
        msl = safe_maxstringlen(fw)
        of = "" if running else f" of {release}"
        why = f"from CONFIG_FRAME_WARN={fw}{of}" if fw is not None else f"kernel config{of} not found"

    def given(v, default):
        return default if v is None else v

    return Limits(given(req.maxmapentries, DEFAULT_MAXMAPENTRIES), given(req.maxaction, DEFAULT_MAXACTION),
                  given(req.maxbacktrace, DEFAULT_MAXBACKTRACE), msl, req.maxskipped, req.buffer_size,
                  req.no_overload), why
