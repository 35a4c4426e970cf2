"""Run a stap profile of one process and write every output, whatever way the run ends.

Sequence (each step's reason is where it happens):
  target (--pid, or a command launched held before its exec)
  -> stap argument list (stapargs) -> stap running in its own session, stdout/stderr streamed to
     files as they arrive
  -> compile passes shown on a status line ("Pass N:" lines of stap -v)
  -> the script's begin record: the sampling window starts; a launched command is released and
     the --while workload is started; a countdown runs
  -> the window ends by the script's own timer (it fires with the target idle), by the target
     exiting (we SIGINT stap so its end probe prints), by Ctrl-C, SIGTERM or a hang-up (same), or by
     our watchdog
  -> raw addresses symbolised (symbols), stacks text, folded, SVG, speedscope, summary, advice
     (missing_symbols names the files without symbols).
With --module a module compiled elsewhere (prebuilt.py) runs under staprun instead: no compile
passes, the same records, window and outputs. The request and its usage checks are in request.py,
how a stap process is run and shown (streams, status line, signals) in stapproc.py.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import json
import queue
import shlex
import signal
import subprocess
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from rich.console import Console
from rich.text import Text

from . import prebuilt as pb
from . import targets
from .advice import Advice, Limits, advise, skipped_count
from .request import ProfileError, ProfileRequest, check_output_dir, check_request
from .request import limits as request_limits
from .stapargs import StapPlan, build_argv
from .stapproc import (NEXT_PASS, Display, clock, interrupt_on_stop_signals, pass_number, printable, resolve_stap,
                       signal_group, start_reader, stap_version, stop_signals)

#: Output file names (the VM test and users rely on these).
FILES = {
    "raw": "stap.out",  # stap's stdout as it streamed (the script's records)
    "stderr": "stap.err",  # stap's stderr as it streamed (-v passes, warnings, errors)
    "stacks": "stacks.txt",  # symbolised, print_ustack shape + TAB count (stackcollapse-stap.pl reads it)
    "folded": "stacks.folded",
    "svg": "flamegraph.svg",
    "speedscope": "profile.speedscope.json",
    "summary": "summary.txt",
    "summary_json": "summary.json",
    "maps": "maps.txt",  # the target's mappings seen during the run (to symbolise again)
    "while_log": "while.log",  # output of the --while workload
}

#: After the window stap gets req.grace (request.GRACE_S) to end by itself before we SIGINT it; then SIGTERM, SIGKILL.
TERM_AFTER_S = 30.0
KILL_AFTER_S = 60.0
#: With no begin record this long after "Pass 5: starting", sampling is assumed to have started
#: (loading a big module under emulation takes seconds, so this is generous; the record should come).
BEGIN_FALLBACK_S = 60.0
#: stap has exited but something still holds its output pipes: stop waiting after this long.
PIPE_LINGER_S = 10.0
#: Files named in the missing-symbols advice (each asks the package database once).
MAX_SYMBOL_ADVICE = 20
NO_SAMPLES = "no samples were taken, so no flame graph was written (summary.txt says what stap saw)"


@dataclass
class ProfileResult:
    exit_code: int
    output: Path
    samples: int = 0
    stored: int = 0
    lost: int = 0
    skipped: int | None = None
    unique_stacks: int = 0
    window_s: float = 0.0
    ended_by: str = ""  # "timer", "target-exit", "interrupt", "watchdog", "stap-exit", "stap-failed"
    stap_status: int | None = None
    advice: list[Advice] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    files: dict[str, str] = field(default_factory=dict)
    stacks: dict[tuple[str, ...], int] = field(default_factory=dict)


# ----------------------------------------------------------------------------------------------
# the run


def run_profile(req: ProfileRequest, console: Console | None = None, *, prebuilt=None) -> ProfileResult:
    """Profile and write all outputs into ``req.output``. Raises ProfileError before stap starts.

    With ``req.module`` the precompiled module runs under staprun (``prebuilt``: its prebuilt.inspect()
    result, when the caller already has it); kernel stacks and the rate are then the module's.
    """
    console = console or Console(stderr=True, highlight=False)
    while_argv = check_request(req)
    if req.compile_only is not None:
        raise ProfileError("--compile-only writes a module, not a profile: use prebuilt.compile_module", 2)
    if req.module is not None:
        prebuilt = prebuilt or pb.inspect(req.module)
        req = prebuilt.request(req)
        stap = pb.resolve_staprun(req.staprun)
    else:
        prebuilt = None
        stap = resolve_stap(req.stap)
    pid_info = None
    if req.pid is not None:
        try:
            pid_info = targets.resolve_pid(int(req.pid))
        except targets.TargetError as e:
            raise ProfileError(str(e), 2) from None
    out = req.output
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ProfileError(f"{out}: cannot create the output directory ({e.strerror})", 2) from None
    check_output_dir(out)  # again: another user may have made it between the first check and mkdir
    paths = {k: out / v for k, v in FILES.items()}
    for k in ("raw", "stderr"):
        paths[k].write_bytes(b"")  # a fresh run: the readers append
    limits, msl_why = prebuilt.limits(req.buffer_size) if prebuilt else request_limits(req)
    problems: list[str] = list(prebuilt.notes) if prebuilt else []

    launched: subprocess.Popen | None = None
    if req.command:
        try:
            targets.resolve_command(req.command[0])
        except targets.TargetError as e:
            raise ProfileError(str(e), 2) from None
        try:
            launched = targets.launch_held(list(req.command))
        except targets.TargetError as e:
            raise ProfileError(str(e), 1) from None
    try:
        return _run_with_target(req, console, stap, paths, limits, msl_why, problems, launched, while_argv, pid_info,
                                prebuilt)
    finally:
        if launched is not None:  # never leave the held (stopped) command behind
            targets.Stopper(launched).finish()


def _run_with_target(req, console, stap, paths, limits, msl_why, problems, launched, while_argv,
                     pid_info, prebuilt=None) -> ProfileResult:
    if launched is not None:
        exe = targets.resolve_command(req.command[0])
        pid = launched.pid
        modules = [exe]  # --ldd adds its libraries
        label = shlex.join(req.command)
    else:
        pid, note = pid_info
        if note:
            problems.append(note)
            console.print(Text(f"note: {note}"))
        exe = targets.exe_of(pid)
        modules = targets.unwind_modules(targets.read_maps(pid), exe)
        label = f"pid {pid}" + (f" ({exe})" if exe else "")
    recorder = targets.MapsRecorder(pid)
    if launched is None:
        recorder.poll()

    # `stap -V` runs while stap compiles, not after the window (a slow VM would lengthen the run);
    # a precompiled module's sidecar names the stap that compiled it, else `staprun -V` answers
    version: list[str | None] = []
    if prebuilt is not None and prebuilt.stap_version:
        version.append(prebuilt.stap_version)
    vthread = None
    if not version:
        vthread = threading.Thread(target=lambda: version.append(stap_version(stap)), daemon=True)
        vthread.start()
    with contextlib.ExitStack() as stack:
        if prebuilt is not None:
            ko = stack.enter_context(pb.staprun_path(prebuilt))  # a symlink NAME.ko if the file is named otherwise
            argv = pb.staprun_argv(stap, pid, ko, req.duration, req.buffer_size)
        else:
            plan = StapPlan(stap=stap, pid=pid, duration_s=req.duration, kernel=req.kernel, modules=modules,
                            limits=limits, frequency=req.frequency)
            argv = build_argv(plan)
        session = _Session(req, argv, paths, console, launched, recorder, while_argv,
                           precompiled=prebuilt is not None)
        session.run()
    if launched is not None:
        targets.Stopper(launched).finish()  # the window is over: the launched command stops with it
    if vthread is not None:
        vthread.join(20)
    # the samples are in: a hang-up or SIGTERM now only detaches the output, the files still get written
    with stop_signals(lambda signum: None, (signal.SIGHUP, signal.SIGTERM)):
        return _finish(req, session, paths, limits, pid, label, exe, problems + session.problems, argv, msl_why,
                       version[0] if version else None, module=prebuilt.summary() if prebuilt else None)


class _Session:
    """The running stap and what happens around it (timers, signals, target, workload)."""

    def __init__(self, req, argv, paths, console, launched, recorder, while_argv, precompiled=False):
        from .rawstacks import RawProfile

        self.req, self.argv, self.paths, self.console = req, argv, paths, console
        self.launched, self.recorder, self.while_argv = launched, recorder, while_argv
        self.raw = RawProfile()
        self.problems: list[str] = []
        self.stderr_lines: list[str] = []
        self.ended_by = ""
        self.interrupts = 0
        self.t_begin: float | None = None
        self.t_end: float | None = None
        # staprun prints no "Pass N:" lines: it starts at stap's pass 5 (loading), timed from its start
        self.precompiled = precompiled
        self.pass_line = "staprun: loading the module" if precompiled else "stap " + NEXT_PASS[0]
        self.t_pass5: float | None = None
        self.begin_fallback = False
        self.shown: set[str] = set()
        self.workload: subprocess.Popen | None = None
        self.workload_stopper: targets.Stopper | None = None
        self.workload_status: int | None = None
        self.signalled: list[tuple[float, int]] = []
        self.proc: subprocess.Popen | None = None
        self.hung_up = False

    # -- signals ----------------------------------------------------------------------------
    def _on_signal(self, signum: int) -> None:
        self.interrupts += 1
        if signum == signal.SIGHUP and not self.hung_up:
            self.hung_up = True  # the output is detached; the files say why the run ended early
            self.problems.append("the terminal hung up (SIGHUP): stopped like Ctrl-C, samples kept")

    def _signal_stap(self, sig: int, why: str) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        if not self.ended_by:
            self.ended_by = why
        self.signalled.append((time.monotonic(), sig))
        signal_group(self.proc, sig)

    # -- main loop ----------------------------------------------------------------------------
    def run(self) -> None:
        from .rawstacks import parse_line

        req = self.req
        with stop_signals(self._on_signal):
            self._run(parse_line)
        self.status = self.proc.returncode if self.proc else None
        if not self.ended_by:
            if self.raw.ended and self.t_begin is not None:
                # Without a begin record the window was started late (BEGIN_FALLBACK_S after pass 5), but
                # stap's own timer started at pass 5: judge "early" from there, or a run that stap's
                # timer ended on time reads as "stap-exit" whenever the fallback was polled a bit late.
                start = self.t_pass5 if self.begin_fallback and self.t_pass5 is not None else self.t_begin
                early = self.t_end < start + req.duration - 0.5
                gone = (self.launched.poll() is not None) if self.launched is not None else not targets.is_alive(self.recorder.pid)
                # some stap versions end a -x run themselves when the target exits
                self.ended_by = ("target-exit" if gone else "stap-exit") if early else "timer"
            else:
                self.ended_by = "stap-failed" if self.status else "stap-exit"

    def _run(self, parse_line) -> None:
        display = Display(self.console)
        t0 = time.monotonic()
        try:
            try:
                # own session: a terminal Ctrl-C reaches only us; we decide what stap gets
                self.proc = subprocess.Popen(self.argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                             stderr=subprocess.PIPE, start_new_session=True)
            except OSError as e:
                raise ProfileError(f"cannot run {self.argv[0]}: {e.strerror}") from None
            if self.precompiled:
                self.t_pass5 = time.monotonic()
            q: queue.Queue = queue.Queue()
            readers = [start_reader(self.proc.stdout, self.paths["raw"], q, "out"),
                       start_reader(self.proc.stderr, self.paths["stderr"], q, "err")]
            open_streams = 2
            handled = 0
            exited_at = None
            display.update(self.pass_line, milestone=True)
            while open_streams or self.proc.poll() is None:
                try:
                    tag, line = q.get(timeout=0.1)
                except queue.Empty:
                    tag, line = None, None
                if tag is not None:
                    if line is None:
                        open_streams -= 1
                    elif tag == "out":
                        kind = parse_line(line, self.raw)
                        if kind == "begin":
                            if self.t_begin is None:
                                self._begin(display)
                            elif self.begin_fallback:  # the record came after all: time from it
                                self.t_begin, self.begin_fallback = time.monotonic(), False
                    else:
                        self._stderr_line(line.decode("utf-8", "replace").rstrip("\n"), display)
                    if q.qsize():
                        continue  # drain before the timing work
                now = time.monotonic()
                if self.interrupts > handled:
                    handled = self.interrupts
                    if handled == 1:
                        self._signal_stap(signal.SIGINT, "interrupt")
                        display.say(Text("interrupted: stopping stap; it prints what it collected…", style="yellow"))
                    else:
                        self._signal_stap(signal.SIGTERM, "interrupt")
                self._timing(now, display, t0)
                if self.proc.poll() is not None and open_streams:
                    exited_at = exited_at or now
                    if now - exited_at > PIPE_LINGER_S:
                        self.problems.append("stap exited but its output stayed open; stopped reading")
                        break
            for r in readers:
                r.join(5)
        finally:
            display.close()
            self.t_end = time.monotonic()
            if self.workload is not None:
                self.workload_status = (self.workload_stopper or targets.Stopper(self.workload)).finish()

    def _begin(self, display: Display) -> None:
        """The sampling window starts: release the held command, start the workload."""
        self.t_begin = time.monotonic()
        if self.launched is not None:
            targets.release(self.launched)
            self.recorder.kick()
        if self.while_argv:
            log = open(self.paths["while_log"], "wb")
            try:
                self.workload = subprocess.Popen(self.while_argv, stdin=subprocess.DEVNULL, stdout=log,
                                                 stderr=subprocess.STDOUT, start_new_session=True)
                self.workload_stopper = targets.Stopper(self.workload)
            except OSError as e:
                self.problems.append(f"--while could not start: {e.strerror}")
            finally:
                log.close()
        display.update(f"sampling {self._target_label()}", milestone=True)

    def _target_label(self) -> str:
        return f"pid {self.recorder.pid}"

    def _stderr_line(self, text: str, display: Display) -> None:
        if len(self.stderr_lines) < 20000:
            self.stderr_lines.append(text)
        n = pass_number(text)
        if n is not None:
            if "failed" in text:
                self.pass_line = printable(text[:90])
            elif text.startswith("Pass 5: starting"):
                self.t_pass5 = time.monotonic()
                self.pass_line = "stap pass 5/5: module loaded, starting the probes"
            elif n in NEXT_PASS:
                self.pass_line = "stap " + NEXT_PASS[n]
            if self.t_begin is None:
                display.update(self.pass_line, milestone=True)
        elif text.startswith(("WARNING:", "ERROR:")) and self.t_begin is not None and text not in self.shown:
            if len(self.shown) < 20:  # each distinct message once; all of them are in stap.err
                self.shown.add(text)
                display.say(Text("stap: " + printable(text), style="yellow"))

    def _timing(self, now: float, display: Display, t0: float) -> None:
        req = self.req
        if self.t_begin is None:
            if self.t_pass5 is not None and now - self.t_pass5 > BEGIN_FALLBACK_S and self.proc.poll() is None:
                self.problems.append("no begin record from the script: the window was timed from "
                                     + ("staprun's start" if self.precompiled else "'Pass 5: starting run.'"))
                self._begin(display)
                self.begin_fallback = True
            else:
                display.update(f"{self.pass_line}  [{clock(now - t0)}]")
                return
        deadline = self.t_begin + req.duration
        if self.launched is not None or self.t_begin is not None:
            self.recorder.poll(now)
        target_gone = (self.launched.poll() is not None) if self.launched is not None else not targets.is_alive(self.recorder.pid)
        if now < deadline:
            if target_gone and not self.ended_by:
                self._signal_stap(signal.SIGINT, "target-exit")
                display.say(Text(f"the target exited after {now - self.t_begin:.1f} s; stopping stap", style="yellow"))
            samples = self.raw.samples or 0
            display.update(f"sampling {self._target_label()}: {deadline - now:4.1f} s left, {samples:,} samples", every=5)
        else:
            if self.workload_stopper is not None:
                self.workload_stopper.stop()
            display.update(f"stap: printing stacks… ({self.raw.samples or 0:,} samples)")
        if self.workload_stopper is not None:
            self.workload_stopper.tick()
        # watchdog: stap should end by itself at the deadline (its timer) or soon after a signal
        if self.proc.poll() is None:
            first_signal = self.signalled[0][0] if self.signalled else None
            if first_signal is None and now > deadline + req.grace:
                self.problems.append(f"stap did not end {req.grace:.0f} s after the window; it was sent SIGINT")
                self._signal_stap(signal.SIGINT, "watchdog")
            elif first_signal is not None:
                sigs = [s for _, s in self.signalled]
                if now > first_signal + KILL_AFTER_S and signal.SIGKILL not in sigs:
                    self.problems.append("stap did not stop within a minute and was killed; "
                                         "check `lsmod | grep stap_` for a module left loaded (remove with staprun -d)")
                    self._signal_stap(signal.SIGKILL, "watchdog")
                elif now > first_signal + TERM_AFTER_S and signal.SIGTERM not in sigs:
                    self._signal_stap(signal.SIGTERM, "watchdog")


# ----------------------------------------------------------------------------------------------
# outputs


def _finish(req, s: _Session, paths, limits: Limits, pid: int, label: str, exe: str | None, problems: list[str],
            argv: list[str], msl_why: str, stap_version: str | None, module: dict | None = None) -> ProfileResult:
    from .collapse import collapse_stap
    from .folded import write_folded
    from .rawstacks import read_raw, write_stacks_text
    from .speedscope import write_speedscope
    from .summary import top_functions
    from .missing_symbols import frame_note
    from .svg import render_svg
    from .symbols import KernelSymbols, Symbolizer

    res = ProfileResult(exit_code=0, output=req.output, ended_by=s.ended_by, stap_status=s.status)
    with open(paths["raw"], "rb") as f:
        prof = read_raw(f)  # the file, not memory: it is what the user keeps
    s.recorder.save(paths["maps"])
    sym = Symbolizer(s.recorder.mappings(), pid=pid)
    ksym = KernelSymbols() if req.kernel else None
    with open(paths["stacks"], "w", encoding="utf-8") as f:
        st = write_stacks_text(prof, f, sym, ksym, limits.maxstringlen)
    with open(paths["stacks"], "rb") as f:
        collapsed = collapse_stap(f)
    stacks = dict(collapsed.stacks)
    if st.empty:
        stacks[("[no stack]",)] = stacks.get(("[no stack]",), 0) + st.empty

    res.stacks = stacks
    res.stored = sum(stacks.values())
    res.samples = prof.samples if prof.samples is not None else res.stored
    res.lost = prof.lost
    res.unique_stacks = len(prof.stacks)
    errors, res.skipped = skipped_count(s.stderr_lines)
    if prof.ended and res.skipped is None:
        # the module prints "Number of errors: E, skipped probes: S" only when one is non-zero
        errors, res.skipped = errors or 0, 0
    if s.t_begin is not None:
        res.window_s = round(max(0.0, min(s.t_end or time.monotonic(), s.t_begin + req.duration) - s.t_begin), 2)

    # advice: what stap said, then what the numbers say
    res.advice = advise(s.stderr_lines, limits, kernel=req.kernel)
    ids = {a.id for a in res.advice}
    if prof.lost and "maxmapentries" not in ids:
        res.advice += advise(["Array overflow, check MAXMAPENTRIES"], limits)
        res.advice[-1].evidence = [f"{prof.lost} samples were not stored: the stacks table was full"]
    if st.truncated:
        res.advice.append(Advice("maxstringlen-truncated", f"{st.truncated} stacks were cut at MAXSTRINGLEN={limits.maxstringlen}",
                                 "their outermost callers are missing; raise --maxstringlen only if the kernel's "
                                 "CONFIG_FRAME_WARN allows it (pass 4 fails otherwise), or lower --maxbacktrace",
                                 [f"MAXSTRINGLEN {msl_why}"]))
    if sym.unresolved_modules:  # once per file, the busiest first: its package, or debuginfod by build-id
        from .missing_symbols import family, how_to_get, owning_packages, this_distro

        distro = this_distro()
        mods = sorted(sym.unresolved_modules.items(), key=lambda kv: -kv[1])[:MAX_SYMBOL_ADVICE]
        pkgs = owning_packages([m for m, _ in mods], family(distro))
        for mod, n in mods:
            res.advice.append(Advice("target-symbols", f"{n} addresses in {mod} have no symbol",
                                     how_to_get(mod, sym.build_id(mod), distro=distro, pkg=pkgs.get(mod), ask=False),
                                     []))
    if s.t_begin is not None and res.samples == 0 and prof.ended:
        res.advice.append(Advice("idle", "no samples: the target did not run on a CPU during the window",
                                 "profile while it is busy (--while runs a workload during the window)", []))

    ok_run = prof.ended and (s.status == 0 or s.ended_by in ("interrupt", "target-exit", "watchdog"))
    if not prof.ended:
        if s.t_begin is None:
            problems.append("stap ended before sampling started")
        else:
            problems.append("stap ended without printing its stacks (see stap.err)")
    elif s.status not in (0, None) and s.ended_by not in ("interrupt", "target-exit", "watchdog"):
        problems.append(f"stap exited with status {s.status}")
    problems += collapsed.problems
    if s.workload is not None:
        problems.append(f"--while workload ended with status {s.workload_status} (its output: {paths['while_log'].name})")
    if not stacks and prof.ended:
        # an empty flame graph looks like a broken tool: say what happened and fail instead
        problems.append(NO_SAMPLES)
    res.problems = problems
    res.exit_code = 0 if ok_run and stacks else 1

    # --- the user's outputs --------------------------------------------------------------------
    now = _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    # the title names the program; the subtitle line (drawn from meta) says pid, window, samples once each
    title = f"stapdoctor profile: {label if s.launched is not None else (exe or f'pid {pid}')}"
    meta = {"target": label, "pid": pid, "duration": f"{res.window_s:g} s", "samples": res.samples,
            "stap_version": stap_version or "?", "date": now}
    subtitle = "kernel stacks on top" if req.kernel else None
    graphs = ("stacks", "folded", "svg", "speedscope")
    if stacks:
        with open(paths["folded"], "w", encoding="utf-8") as f:
            write_folded(stacks, f)
        with open(paths["svg"], "w", encoding="utf-8") as f:
            render_svg(stacks, f, title=title, subtitle=subtitle, meta=meta, modules=collapsed.modules,
                       frame_note=frame_note)
        with open(paths["speedscope"], "w", encoding="utf-8") as f:
            write_speedscope(stacks, f, name=title, modules=collapsed.modules, names=collapsed.names)
    else:
        for k in graphs:  # nothing to draw; and no graph of an earlier run left to be mistaken for this one
            paths[k].unlink(missing_ok=True)
    rows = top_functions(stacks, 20)
    summary = {
        "target": {"pid": pid, "label": label, "exe": exe},
        "duration_requested_s": req.duration, "window_s": res.window_s, "ended_by": res.ended_by,
        "samples": res.samples, "samples_stored": res.stored, "lost": res.lost, "skipped": res.skipped,
        "stap_errors": errors, "unique_stacks": res.unique_stacks, "stacks_truncated": st.truncated,
        "stap_status": s.status, "stap_version": stap_version, "stap_argv": argv,
        "limits": asdict(limits), "maxstringlen_source": msl_why, "kernel_stacks": req.kernel,
        "sampling": f"perf cpu-clock at {req.frequency:g} Hz" if req.frequency else "timer.profile (stap's default rate, every CPU)",
        "while": s.while_argv, "while_status": s.workload_status, "module": module,
        "top": [{"function": r.name, "self": r.self, "total": r.total} for r in rows],
        "advice": [asdict(a) for a in res.advice], "problems": problems, "date": now,
        "files": {k: v for k, v in FILES.items() if (req.output / v).exists() or k in ("summary", "summary_json")},
        "exit_code": res.exit_code,
    }
    with open(paths["summary"], "w", encoding="utf-8") as f:
        f.write(_summary_text(summary))
    with open(paths["summary_json"], "w", encoding="utf-8") as f:
        json.dump(summary, f, indent=2)
        f.write("\n")
    res.files = {k: str(req.output / v) for k, v in summary["files"].items()}
    return res


def _summary_text(sm: dict) -> str:
    lines = [
        f"target:        {sm['target']['label']}",
        f"window:        {sm['window_s']:g} s of {sm['duration_requested_s']:g} s requested (ended by {sm['ended_by']})",
        f"samples:       {sm['samples']:,} ({sm['samples_stored']:,} stored, {sm['lost']:,} lost, "
        f"{'?' if sm['skipped'] is None else format(sm['skipped'], ',')} probes skipped)",
        f"unique stacks: {sm['unique_stacks']:,}" + (f" ({sm['stacks_truncated']} cut at MAXSTRINGLEN)" if sm['stacks_truncated'] else ""),
        f"stap:          {sm['stap_version'] or '?'} exit {sm['stap_status']}"
        + (" (staprun)" if sm.get("module") else ""),
    ]
    if sm.get("module"):
        m = sm["module"]
        lines.append(f"module:        {m['path']} ({m['name']}, compiled for {m['compiled_for']}"
                     + (f" on {m['created']}" if m.get("created") else "") + ")")
    lines += [
        "",
        f"{'self':>8} {'total':>8}  function",
    ]
    for r in sm["top"]:
        lines.append(f"{r['self']:>8} {r['total']:>8}  {r['function']}")
    if sm["advice"]:
        lines += ["", "advice:"]
        for a in sm["advice"]:
            lines.append(f"- {a['title']}: {a['fix']}")
            lines += [f"    stap said: {e}" for e in a["evidence"]]
    if sm["problems"]:
        lines += ["", "notes:"] + [f"- {p}" for p in sm["problems"]]
    return "\n".join(lines) + "\n"


def report(res: ProfileResult, console: Console, *, top: int = 10) -> None:
    """The end-of-run report on the terminal (the files hold everything)."""
    from .summary import print_top, top_functions

    if res.stacks and top:
        print_top(top_functions(res.stacks, top), total_samples=res.stored, console=console,
                  title=f"Top {top} functions by self samples")
    skipped = "?" if res.skipped is None else f"{res.skipped:,}"
    console.print(Text(f"{res.samples:,} samples in {res.window_s:g} s ({res.lost:,} lost, {skipped} skipped), "
                       f"ended by {res.ended_by}"))
    if not res.stacks:
        console.print(Text("error: ", style="bold red") + Text(NO_SAMPLES))
    for a in res.advice:
        console.print(Text("advice: ", style="bold yellow") + Text(printable(f"{a.title}: {a.fix}")))
        for e in a.evidence[:2]:
            console.print(Text(f"        stap said: {printable(e)}", style="dim"))
    for p in res.problems:
        if p != NO_SAMPLES:  # said above, as the error it is
            console.print(Text("note: ", style="yellow") + Text(printable(p)))
    console.print(Text(f"wrote {res.output}/ ({', '.join(sorted(Path(v).name for v in res.files.values()))})"))


# ----------------------------------------------------------------------------------------------
# the command (profiler/cli.py's `profile` maps its options onto this)


def _print_gate(console: Console, failing: list, force: bool) -> None:
    for f in failing:
        console.print(Text("FAIL ", style="bold red") + Text(printable(f"{f.id}: {f.title}")))
        if getattr(f, "evidence", None):
            console.print(Text(f"     {printable(str(f.evidence))}", style="dim"))
        if getattr(f, "remedy", None):
            console.print(Text("     fix: ") + Text(printable(str(f.remedy))))
    ids = ", ".join(f.id for f in failing)
    if force:
        console.print(Text("--force: ignoring the failed checks ", style="yellow") + Text(ids))


def profile_command(req: ProfileRequest, *, force: bool = False, snapshot: str | None = None, top: int = 10) -> int:
    """Gate, profile, report; returns the exit code (0 ok, 1 failure / host not ready, 2 usage)."""

    err = Console(stderr=True, highlight=False, soft_wrap=True)
    try:
        with interrupt_on_stop_signals():
            return _profile_command(req, err, force=force, snapshot=snapshot, top=top)
    except KeyboardInterrupt:  # Ctrl-C before stap runs (during the host check, say): nothing to save
        err.print(Text("interrupted", style="yellow"))
        return 1


def _profile_command(req: ProfileRequest, err: Console, *, force: bool, snapshot: str | None, top: int) -> int:
    from . import gate

    prebuilt = None
    try:
        check_request(req)
        if req.compile_only is not None:  # a build box: no live-host gate, its own kernel does not matter
            return pb.compile_module(req, err)
        if req.module is not None:
            prebuilt = pb.inspect(req.module)
        if req.pid is not None:  # the user's own mistake comes before the host's findings
            try:
                targets.resolve_pid(int(req.pid))
            except targets.TargetError as e:
                raise ProfileError(str(e), 2) from None
    except ProfileError as e:
        err.print(Text("error: ", style="bold red") + Text(str(e)))
        return e.code
    binary = None
    if req.command:
        try:
            binary = targets.resolve_command(req.command[0])
        except targets.TargetError as e:
            err.print(Text("error: ", style="bold red") + Text(str(e)))
            return 2
    if prebuilt is None:
        what = "the probes need uprobes, kernel devel, a stap for this kernel…"
    else:
        what = "loading the module needs uprobes, module loading allowed, staprun…"
    with err.status(f"checking the host ({what})"):
        g = gate.evaluate(kernel_stacks=prebuilt.kernel_stacks if prebuilt else req.kernel, pid=req.pid,
                          binary=binary, snapshot_path=snapshot, compile=prebuilt is None)
    if g.error:
        if not force:
            err.print(Text("error: ", style="bold red") + Text(f"{g.error}; use --force to profile without the check"))
            return 1
        err.print(Text("--force: ", style="yellow") + Text(f"host not checked ({g.error})"))
    if g.failing:
        if not force:
            err.print(Text("this host is not ready for the profile's probes:", style="bold red"))
        _print_gate(err, g.failing, force)
        if not force:
            err.print(Text("fix the above (or run the playbooks: `stapdoctor check` shows the plan); "
                           "--force runs anyway"))
            return 1
    try:
        res = run_profile(req, err, prebuilt=prebuilt)
    except ProfileError as e:
        err.print(Text("error: ", style="bold red") + Text(str(e)))
        return e.code
    if res.exit_code and res.stap_status:
        tail = [l for l in Path(req.output, FILES["stderr"]).read_text(errors="replace").splitlines() if l.strip()][-12:]
        if tail:
            err.print(Text(f"{'staprun' if req.module is not None else 'stap'}'s last messages:", style="bold"))
            for line in tail:
                err.print(Text("  " + printable(line), style="dim"))
    report(res, err, top=top)
    return res.exit_code
