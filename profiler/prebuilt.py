"""Compile the profile's module on one machine, run it on another.

Compiling costs minutes and needs the kernel's headers and a compiler; loading does not. So
`profile --compile-only FILE.ko -r KREL` runs stap's passes 1-4 for kernel release KREL (stap -p4 -r
KREL -m NAME, no -x: the target is given at load time) and writes FILE.ko plus FILE.ko.json, a
sidecar saying what was compiled in; `profile --module FILE.ko` then runs it with staprun, whose
output records are the script's, so the runner's window, signals and outputs stay the same.

staprun names a module after the path it is given (the file name up to its last dot) and then opens
the control files the module registered under the name it was compiled with; if the two differ, the
module loads but staprun can neither talk to it nor unload it. So the name is read from the module
itself, and a file named otherwise (nginx-profile.ko holds module nginx_profile) is given to staprun
through a symlink named NAME.ko.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import json
import os
import queue
import re
import shlex
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path

from rich.console import Console
from rich.text import Text

from . import targets
from .advice import Limits, advise
from .request import ProfileError, ProfileRequest, limits as request_limits
from . import stapproc
from .stapproc import (NEXT_PASS, Display, clock, pass_number, printable, resolve_stap, signal_group, start_reader,
                       stop_signals)
from .stapargs import StapPlan, build_argv, duration_ms

SIDECAR_FORMAT = "stapdoctor.module/1"
#: stap's module names are [A-Za-z0-9_]; the kernel allows 55 characters. 40 leaves room for
#: staprun -R, which appends _PID when it renames a module.
NAME_MAX = 40
#: A name the kernel (MODULE_NAME_LEN - 1) and staprun accept for a module compiled elsewhere.
MODULE_NAME_MAX = 55
MODULE_NAME = re.compile(r"[A-Za-z0-9_]{1,%d}" % MODULE_NAME_MAX)


# ----------------------------------------------------------------------------------------------
# names and files


def module_name_for(path: Path | str) -> str:
    """The module name for a file: its stem lowercased, [a-z0-9_] only, starting with a letter."""
    stem = Path(path).name
    if stem.endswith(".ko"):
        stem = stem[:-3]
    name = re.sub(r"[^a-z0-9_]", "_", stem.lower())
    if not name[:1].isalpha():
        name = "sd_" + name
    return name[:NAME_MAX]


def sidecar_path(path: Path) -> Path:
    return path.with_name(path.name + ".json")


def stap_err_path(path: Path) -> Path:
    return path.with_name(path.name + ".stap.err")


def staprun_name(path: Path | str) -> str:
    """The module name staprun derives from a path: the file name up to its last dot."""
    return Path(path).name.rsplit(".", 1)[0]


def _check_target_file(path: Path, shown: str) -> str:
    """Usage errors for --compile-only FILE (``shown`` as the user gave it); returns the module name."""
    if path.name in ("", ".ko") or not path.name.endswith(".ko"):
        raise ProfileError(f"--compile-only {shown}: the file name must end in .ko (a kernel module's)", 2)
    name = module_name_for(path)
    if path.is_dir():
        raise ProfileError(f"--compile-only {shown}: is a directory", 2)
    if not path.parent.is_dir():
        raise ProfileError(f"--compile-only {shown}: directory {Path(shown).parent} does not exist", 2)
    return name


def read_modinfo(path: Path) -> dict[str, str]:
    """The key=value strings of a kernel module's .modinfo section (the first of each key)."""
    return read_module(path)[0]


def read_module(path: Path) -> tuple[dict[str, str], str | None]:
    """A kernel module's .modinfo strings and the name it registers under: the string in
    .gnu.linkonce.this_module (struct module, all zeros but the name, as staprun -R also relies on)."""
    from elftools.common.exceptions import ELFError
    from elftools.elf.elffile import ELFFile

    try:
        with open(path, "rb") as f:
            elf = ELFFile(f)
            kind = elf.header["e_type"]
            sec = elf.get_section_by_name(".modinfo")
            data = sec.data() if sec is not None else None
            this = elf.get_section_by_name(".gnu.linkonce.this_module")
            this_data = this.data() if this is not None and this["sh_type"] != "SHT_NOBITS" else b"\0"
    except OSError as e:
        raise ProfileError(f"{path}: cannot read ({e.strerror})", 1) from None
    except (ELFError, ValueError, KeyError, AssertionError) as e:
        raise ProfileError(f"{path}: not a kernel module (not a readable ELF file: {e})", 1) from None
    except Exception as e:  # noqa: BLE001 - pyelftools raises assorted errors on garbage
        raise ProfileError(f"{path}: not a kernel module (not a readable ELF file: {type(e).__name__})", 1) from None
    if kind != "ET_REL":
        raise ProfileError(f"{path}: not a kernel module (an ELF file of type {kind}, a module is ET_REL)", 1)
    if data is None:
        raise ProfileError(f"{path}: not a kernel module (no .modinfo section)", 1)
    info: dict[str, str] = {}
    for raw in data.split(b"\0"):
        key, eq, value = raw.decode("utf-8", "replace").partition("=")
        if eq and key:
            info.setdefault(key, value)
    m = re.search(rb"[A-Za-z0-9_]+", this_data)
    return info, (m.group().decode() if m else None)


# ----------------------------------------------------------------------------------------------
# --module: what the file is, what it was compiled with


@dataclass
class Prebuilt:
    """A compiled module checked against this host, with what its sidecar says was compiled in."""

    path: Path  # absolute, symlinks kept (staprun takes the module's name from this path)
    name: str
    vermagic: str
    sidecar: dict | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def needs_alias(self) -> bool:
        """staprun would derive another name from the file's."""
        return staprun_name(self.path) != self.name

    @property
    def built_for(self) -> str:
        return self.vermagic.split()[0] if self.vermagic.split() else ""

    @property
    def kernel_stacks(self) -> bool:
        return bool((self.sidecar or {}).get("kernel_stacks", False))

    @property
    def frequency(self) -> float | None:
        f = (self.sidecar or {}).get("frequency")
        return float(f) if isinstance(f, (int, float)) and f > 0 else None

    @property
    def stap_version(self) -> str | None:
        v = (self.sidecar or {}).get("stap_version")
        return v if isinstance(v, str) else None

    def limits(self, buffer_size: int | None) -> tuple[Limits, str]:
        """The -D limits compiled in (for advice and stack cutting); the buffer is staprun's -b."""
        known = {f.name for f in fields(Limits)} - {"buffer_size"}
        given = (self.sidecar or {}).get("limits")
        if isinstance(given, dict):
            ok = {k: v for k, v in given.items()
                  if k in known and (isinstance(v, int) or (v is None and k == "maxskipped"))}
            return Limits(**ok, buffer_size=buffer_size), f"compiled into the module ({sidecar_path(self.path).name})"
        return Limits(buffer_size=buffer_size), "unknown (no sidecar): stapdoctor's defaults assumed"

    def request(self, req: ProfileRequest) -> ProfileRequest:
        """The request as the module was compiled: kernel stacks and the sampling rate come from it."""
        return replace(req, kernel=self.kernel_stacks, frequency=self.frequency)

    def summary(self) -> dict:
        sc = self.sidecar or {}
        return {"path": str(self.path), "name": self.name, "vermagic": self.vermagic,
                "compiled_for": sc.get("kernel_release", self.built_for), "stap_version": self.stap_version,
                "created": sc.get("created"),
                "sidecar": str(sidecar_path(self.path)) if self.sidecar is not None else None}


def inspect(path: Path | str, running: str | None = None) -> Prebuilt:
    """Check a module before staprun sees it: a kernel module, for this kernel; its name and the sidecar."""
    p = Path(path)
    if not p.exists():
        raise ProfileError(f"--module {path}: no such file", 2)
    if p.is_dir():
        raise ProfileError(f"--module {path}: is a directory, expected a .ko file", 2)
    info, this_name = read_module(p)
    vermagic = printable(info.get("vermagic", "").strip(), 200)
    if not vermagic:
        raise ProfileError(f"{path}: not a kernel module (its .modinfo has no vermagic)", 1)
    running = running or os.uname().release
    built_for = vermagic.split()[0]
    if built_for != running:
        cmd = shlex.join(["stapdoctor", "profile", "--compile-only", str(path), "-r", running])
        raise ProfileError(f"{path} was built for kernel {built_for}; this host runs {running}: compile it for "
                           f"{running} with `{cmd} ...` on a machine with {running}'s headers", 1)
    sc = sidecar_path(p)
    data, note = _read_sidecar(sc)
    # the module's own word first; a sidecar or the file name only when the module does not say
    name = this_name or info.get("name") or (data or {}).get("module") or module_name_for(p)
    for said in (name, info.get("name", name)):
        if not isinstance(said, str) or not MODULE_NAME.fullmatch(said):
            # the name becomes a file name (staprun's NAME.ko symlink) and staprun's argument: a name
            # with '/' or '..' would point outside the scratch directory
            raise ProfileError(f"{path}: not a usable module: its name {printable(repr(said), 80)} is not a kernel "
                               f"module name ([A-Za-z0-9_], at most {MODULE_NAME_MAX} characters)", 1)
    if data is not None and data.get("module") not in (None, name):
        data, note = None, f"{sc.name} describes module {data.get('module')}, not {name}; assuming the defaults"
    pre = Prebuilt(Path(os.path.abspath(p)), name, vermagic, data)  # not resolved: staprun names it after a symlink
    if note:
        pre.notes.append(note)
    return pre


def _read_sidecar(sc: Path) -> tuple[dict | None, str | None]:
    """The sidecar's content, or None and a note saying why it is not used."""
    if not sc.exists():
        return None, (f"no {sc.name} next to the module: kernel stacks, sampling rate and -D limits are unknown; "
                      "assuming user stacks, timer.profile and stapdoctor's default limits")
    try:
        data = json.loads(sc.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        return None, f"{sc.name} is unreadable ({e}); assuming stapdoctor's defaults"
    if not isinstance(data, dict) or data.get("format") != SIDECAR_FORMAT:
        return None, f"{sc.name} is not a {SIDECAR_FORMAT} file; assuming stapdoctor's defaults"
    return data, None


@contextlib.contextmanager
def staprun_path(pre: Prebuilt):
    """The path to give staprun: the file itself, or a symlink named NAME.ko when the file is named
    otherwise (staprun resolves it to open the file, so signature and stapusr path checks see the file)."""
    if not pre.needs_alias:
        yield pre.path
        return
    d = Path(tempfile.mkdtemp(prefix="stapdoctor-module-"))
    try:
        link = d / f"{pre.name}.ko"
        link.symlink_to(pre.path)
        yield link
    finally:
        shutil.rmtree(d, ignore_errors=True)


def staprun_argv(staprun: str, pid: int, module: Path, duration_s: float, buffer_size: int | None) -> list[str]:
    """staprun's argument list (``module``: from staprun_path); -G duration_ms is a module parameter,
    so it is set at load time."""
    argv = [staprun, "-x", str(pid)]
    if buffer_size:
        argv += ["-b", str(buffer_size)]  # stap -s is staprun -b
    return argv + [str(module), f"duration_ms={duration_ms(duration_s)}"]


def resolve_staprun(staprun: str | None) -> str:
    staprun = staprun or "staprun"
    path = staprun if "/" in staprun else shutil.which(staprun)
    if not path or not os.path.isfile(path) or not os.access(path, os.X_OK):
        raise ProfileError(f"staprun not found ({staprun}): install systemtap-runtime (the package with staprun), "
                           "or pass --staprun PATH", 1)
    return path


# ----------------------------------------------------------------------------------------------
# --compile-only


def _unwind_targets(req: ProfileRequest) -> tuple[list[str], str]:
    """The -d files (the executable first; --ldd adds its libraries) and a label for them."""
    if req.exe:
        mods: dict[str, None] = {}
        for e in req.exe:
            if not os.path.isfile(e):
                raise ProfileError(f"--exe {e}: no such file", 2)
            mods[os.path.abspath(e)] = None  # stap runs in a scratch directory
        return list(mods), ", ".join(mods)
    if req.pid is not None:
        try:
            pid, _note = targets.resolve_pid(int(req.pid))
        except targets.TargetError as e:
            raise ProfileError(str(e), 2) from None
        exe = targets.exe_of(pid)
        mods_l = targets.unwind_modules(targets.read_maps(pid), exe)
        if not mods_l:
            raise ProfileError(f"--pid {req.pid}: no executable files are mapped (a kernel thread?)", 2)
        return mods_l, f"pid {pid}" + (f" ({exe})" if exe else "")
    try:
        exe = targets.resolve_command(req.command[0])
    except targets.TargetError as e:
        raise ProfileError(str(e), 2) from None
    return [exe], exe


def _headers_hint(release: str) -> str:
    from stapdoctor.doctor import knowledge

    distro = {"id": "", "version_id": ""}
    try:
        from stapdoctor.doctor import parsers

        for path in ("/etc/os-release", "/usr/lib/os-release"):
            if os.path.isfile(path):
                distro = parsers.os_release({"/etc/os-release": Path(path).read_text(errors="replace")})
                break
    except Exception:  # noqa: BLE001 - an unknown distribution gets every family's package name
        pass
    return knowledge.headers_hint(release, distro.get("id", ""), distro.get("version_id", ""))


def compile_module(req: ProfileRequest, console: Console) -> int:
    """stap passes 1-4 for req.kernel_release in a scratch directory; the module moved to the FILE.

    Returns the exit code; raises ProfileError for problems found before stap runs.
    """
    target = Path(os.path.abspath(req.compile_only))
    shown = str(req.compile_only)
    name = _check_target_file(target, shown)
    release = req.kernel_release or os.uname().release
    if "/" in release or not release.strip() or release.split() != [release]:
        raise ProfileError(f"--kernel-release {release!r}: not a kernel release (as `uname -r` prints it)", 2)
    build = Path("/lib/modules", release, "build")
    if not build.exists():
        raise ProfileError(f"no kernel build tree for {release} ({build} is missing): {_headers_hint(release)}", 1)
    stap = os.path.abspath(resolve_stap(req.stap or "stap"))
    modules, label = _unwind_targets(req)
    limits, msl_why = request_limits(req, release)
    plan = StapPlan(stap=stap, pid=None, duration_s=req.duration, kernel=req.kernel, modules=modules, limits=limits,
                    frequency=req.frequency, release=release, module_name=name)
    argv = build_argv(plan)
    log = stap_err_path(target)
    try:
        log.write_bytes(b"")
    except OSError as e:
        raise ProfileError(f"{log}: cannot write ({e.strerror})", 1) from None
    try:
        scratch = Path(tempfile.mkdtemp(prefix=f".{name}.", dir=target.parent))  # same filesystem: atomic move
    except OSError as e:
        log.unlink(missing_ok=True)
        raise ProfileError(f"{target.parent}: cannot write ({e.strerror})", 1) from None

    version: list[str | None] = []
    vthread = threading.Thread(target=lambda: version.append(stapproc.stap_version(stap)), daemon=True)
    vthread.start()
    console.print(Text(f"compiling {name}.ko for kernel {release} ({label}, "
                       + ("kernel + user stacks" if req.kernel else "user stacks") + ")"))
    try:
        status, lines, interrupted = _run_stap(argv, scratch, log, console)
        vthread.join(20)
        stap_version = version[0] if version else None
        ko = scratch / f"{name}.ko"
        advice = advise(lines, limits, kernel=req.kernel)
        if status == 0 and not interrupted and ko.is_file():
            vermagic = read_modinfo(ko).get("vermagic", "").strip()
            if vermagic.split()[:1] != [release]:
                console.print(Text("warning: ", style="yellow")
                              + Text(f"the module's vermagic is '{vermagic}', not {release}"))
            sidecar = {
                "format": SIDECAR_FORMAT, "module": name, "file": target.name, "kernel_release": release,
                "vermagic": vermagic, "stap_version": stap_version, "kernel_stacks": req.kernel,
                "frequency": req.frequency,
                "sampling": f"perf cpu-clock at {req.frequency:g} Hz" if req.frequency else "timer.profile",
                "limits": asdict(limits), "maxstringlen_source": msl_why, "unwind_modules": modules,
                "duration_ms_default": plan.duration_ms, "stap_argv": argv,
                "created": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
            }
            sc = sidecar_path(target)
            tmp = scratch / "sidecar.json"
            try:
                tmp.write_text(json.dumps(sidecar, indent=2) + "\n", encoding="utf-8")
                os.replace(ko, target)
                os.replace(tmp, sc)
            except OSError as e:
                raise ProfileError(f"{shown}: cannot write ({e.strerror})", 1) from None
            log.unlink(missing_ok=True)  # everything worked; its warnings are shown below
            for a in advice:
                console.print(Text("advice: ", style="bold yellow") + Text(printable(f"{a.title}: {a.fix}")))
            console.print(Text(f"wrote {shown} (module {name} for kernel {release}, stap {stap_version or '?'})"))
            console.print(Text("run it on a host running that kernel (with systemtap-runtime) with: ")
                          + Text(shlex.join(["stapdoctor", "profile", "--module", shown, "--pid", "PID"]), style="bold")
                          + Text(" (or -- COMMAND)"))
            return 0
        tail = [line for line in lines if line.strip()][-12:]
        if tail:
            console.print(Text("stap's last messages:", style="bold"))
            for line in tail:
                console.print(Text("  " + printable(line), style="dim"))
        for a in advice:
            console.print(Text("advice: ", style="bold yellow") + Text(printable(f"{a.title}: {a.fix}")))
        why = ("interrupted" if interrupted else f"stap exited with status {status}" if status
               else f"stap wrote no {name}.ko")
        keep = " (the existing file is unchanged)" if target.exists() else ""
        console.print(Text("error: ", style="bold red") + Text(f"{why}: {shown} was not written{keep}; stap's "
                                                              f"messages are in {stap_err_path(Path(shown))}"))
        return 1
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _run_stap(argv: list[str], cwd: Path, log: Path, console: Console) -> tuple[int | None, list[str], bool]:
    """Run stap with its stderr streamed to ``log`` and the pass on a status line; Ctrl-C, SIGTERM or a
    hang-up is passed on to stap's process group, as a terminal would. Returns (status, stderr lines,
    interrupted)."""
    stop: list[int] = []
    with stop_signals(stop.append):
        return _run_stap_loop(argv, cwd, log, console, stop)


def _run_stap_loop(argv, cwd: Path, log: Path, console: Console, stop: list[int]):
    display = Display(console)
    lines: list[str] = []
    proc = None
    try:
        with open(cwd / "stap.stdout", "wb") as out:
            try:
                proc = subprocess.Popen(argv, cwd=cwd, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.PIPE,
                                        start_new_session=True)
            except OSError as e:
                raise ProfileError(f"cannot run {argv[0]}: {e.strerror}", 1) from None
        q: queue.Queue = queue.Queue()
        reader = start_reader(proc.stderr, log, q, "err")
        t0 = time.monotonic()
        pass_line = "stap " + NEXT_PASS[0].replace("/5", "/4")
        display.update(pass_line, milestone=True)
        sent: list[tuple[float, int]] = []
        closed = False
        exited_at = None
        while not closed or proc.poll() is None:
            try:
                _tag, raw = q.get(timeout=0.2)
            except queue.Empty:
                raw = b""
            if raw is None:
                closed = True
            elif raw:
                text = raw.decode("utf-8", "replace").rstrip("\n")
                if len(lines) < 20000:
                    lines.append(text)
                n = pass_number(text)
                if n is not None:
                    if "failed" in text:
                        pass_line = printable(text[:90])
                    elif n < 4:  # stap prints "Pass 4: compiled C into ..." even before "compilation failed"
                        pass_line = "stap " + NEXT_PASS[n].replace("/5", "/4")
                    display.update(pass_line, milestone=True)
                continue
            now = time.monotonic()
            if proc.poll() is not None and not closed:
                exited_at = exited_at or now
                if now - exited_at > 10:  # a leftover child holds stderr open: stap's part is over
                    break
            if stop and not sent:
                display.say(Text("interrupted: stopping stap…", style="yellow"))
            for after, sig in ((0, signal.SIGINT), (30, signal.SIGKILL)):
                if stop and sig not in [s for _, s in sent] and (not sent or now > sent[0][0] + after):
                    sent.append((now, sig))
                    signal_group(proc, sig)
            display.update(f"{pass_line}  [{clock(now - t0)}]", every=30)
        reader.join(5)
        return proc.returncode, lines, bool(stop)
    finally:
        display.close()
        if proc is not None and proc.poll() is None:
            signal_group(proc, signal.SIGKILL)
            proc.wait(10)
