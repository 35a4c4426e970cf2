"""The stap command line of a profile, as an argument list (never a shell string).

User values reach the script only as stap's own arguments (-G name=value, -D NAME=value),
never by editing the script text.
"""

from __future__ import annotations

import gzip
import os
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from .advice import Limits

#: The seed's limits (and openresty's sample-bt): enough for deep C/C++ stacks of busy servers.
DEFAULT_MAXMAPENTRIES = 10240
DEFAULT_MAXACTION = 20000
DEFAULT_MAXBACKTRACE = 100


def script_path(kernel: bool) -> Path:
    """The packaged script file (profile-kernel.stp adds kernel stacks)."""
    name = "profile-kernel.stp" if kernel else "profile.stp"
    return Path(str(resources.files("stapdoctor.profiler") / "scripts" / name))


def kernel_config_candidates(release: str, root: str = "/", proc_config: bool = True) -> list[str]:
    """Where a kernel's config is; the build tree's .config first, since it is the one the module is
    compiled against. /proc/config.gz describes only the running kernel: proc_config=False when
    compiling for another release."""
    r = root.rstrip("/")
    out = [f"{r}/lib/modules/{release}/build/.config", f"{r}/boot/config-{release}"]
    return out + [f"{r}/proc/config.gz"] if proc_config else out


def kernel_frame_warn(release: str | None = None, root: str = "/", proc_config: bool = True) -> int | None:
    """CONFIG_FRAME_WARN of the kernel stap compiles for; None when no config can be read.
    (0 means the kernel does not warn about frame sizes.)"""
    release = release or os.uname().release
    for path in kernel_config_candidates(release, root, proc_config):
        try:
            if path.endswith(".gz"):
                with gzip.open(path, "rt", errors="replace") as f:
                    text = f.read()
            else:
                text = Path(path).read_text(errors="replace")
        except (OSError, EOFError):
            continue
        for line in text.splitlines():
            if line.startswith("CONFIG_FRAME_WARN="):
                try:
                    return int(line.split("=", 1)[1])
                except ValueError:
                    return None
        return 0 if "CONFIG_FRAME_WARN" not in text else None
    return None


def safe_maxstringlen(frame_warn: int | None) -> int:
    """MAXSTRINGLEN that compiles on a kernel with this CONFIG_FRAME_WARN.

    The rule lives in the doctor's knowledge (one place); an unknown limit is taken as 2048 there.
    """
    from stapdoctor.doctor import knowledge

    return knowledge.safe_maxstringlen(frame_warn)


@dataclass
class StapPlan:
    """Everything that goes on a profile's stap command line."""

    stap: str
    pid: int | None  # None: a module compiled for later (`staprun -x PID` gives the target)
    duration_s: float
    kernel: bool = False
    modules: list[str] = field(default_factory=list)  # files for -d (the executable first)
    limits: Limits = field(default_factory=Limits)
    verbose: bool = True  # -v: the "Pass N:" lines drive the status line
    frequency: float | None = None  # Hz; None: timer.profile (stap's default rate)
    # compile only (stap -p4 -r RELEASE -m NAME): the module is written to the cwd as NAME.ko
    release: str | None = None
    module_name: str | None = None

    @property
    def period_ns(self) -> int | None:
        return None if not self.frequency else max(1000, int(round(1e9 / self.frequency)))

    @property
    def duration_ms(self) -> int:
        return duration_ms(self.duration_s)


def duration_ms(seconds: float) -> int:
    """The script's -G duration_ms (also staprun's module parameter of the same name)."""
    return max(1, int(round(seconds * 1000)))


def build_argv(plan: StapPlan) -> list[str]:
    """The argument list for subprocess (no shell involved)."""
    lim = plan.limits
    argv = [plan.stap]
    if plan.verbose:
        argv.append("-v")
    if plan.module_name:
        argv += ["-p4", "-r", plan.release or os.uname().release, "-m", plan.module_name]
    argv.append("--ldd")  # also -d every shared library the -d executables link against
    for mod in plan.modules:
        argv += ["-d", mod]
    if plan.kernel:
        argv += ["-d", "kernel"]
    if plan.pid is not None:
        argv += ["-x", str(plan.pid)]
    argv += ["-D", f"MAXMAPENTRIES={lim.maxmapentries}", "-D", f"MAXACTION={lim.maxaction}",
             "-D", f"MAXBACKTRACE={lim.maxbacktrace}", "-D", f"MAXSTRINGLEN={lim.maxstringlen}"]
    if lim.maxskipped is not None:
        argv += ["-D", f"MAXSKIPPED={lim.maxskipped}"]
    if lim.no_overload:
        argv += ["-D", "STP_NO_OVERLOAD"]
    if lim.buffer_size:
        argv += ["-s", str(lim.buffer_size)]
    argv += ["-G", f"duration_ms={plan.duration_ms}"]
    argv.append(str(script_path(plan.kernel)))
    if plan.period_ns:
        argv.append(str(plan.period_ns))  # the script's $1 (a probe-point literal, so not -G)
    return argv
