"""Profiler commands. Plain functions with Typer annotations; doctor/cli.py registers them.

Only typer and the standard library are imported at module level so `stapdoctor check` starts fast.
"""

from __future__ import annotations

import enum
import os
import sys
from pathlib import Path
from typing import Optional

import typer


class OutFormat(str, enum.Enum):
    svg = "svg"
    folded = "folded"
    speedscope = "speedscope"


class InFormat(str, enum.Enum):
    auto = "auto"
    stap = "stap"
    folded = "folded"


class Palette(str, enum.Enum):
    hot = "hot"
    module = "module"


class _Stderr:
    """rich's Console on stderr, made at its first use: a run with nothing to say on stderr never
    imports rich (a fifth of `flamegraph`'s start-up, which is a tenth of its whole run on 60 MB)."""

    def __init__(self) -> None:
        self._console = None

    def print(self, *args, **kwargs) -> None:
        if self._console is None:
            from rich.console import Console

            self._console = Console(stderr=True, highlight=False, soft_wrap=True)
        self._console.print(*args, **kwargs)


def _fail(console, message: str, code: int) -> None:
    """One clear line on stderr and the exit code; never a traceback for a user mistake."""
    from rich.text import Text

    console.print(Text("error: ", style="bold red") + Text(message))
    raise typer.Exit(code)


def _guess_format(output: Optional[str]) -> str:
    if output and output != "-":
        suffix = Path(output).suffix.lower()
        if suffix == ".json":
            return "speedscope"
        if suffix in (".folded", ".txt", ".collapsed"):
            return "folded"
    return "svg"


def _read_input(err, input: str, input_format: "InFormat", demangle: bool, before: dict | None = None):
    """Read stap output or folded stacks from a file or stdin ('-'): (Collapsed, kind, source name).

    With ``before`` (a dict), the first counts of a differential folded file are put there."""
    from .collapse import collapse_stap
    from .folded import collapse_folded, looks_folded

    if input == "-":
        stream = sys.stdin.buffer
        if not hasattr(stream, "peek"):  # e.g. a BytesIO standing in for stdin
            import io

            stream = io.BufferedReader(stream, 1 << 16)
        source_name = "stdin"
    else:
        p = Path(input)
        if not p.exists():
            _fail(err, f"{input}: no such file", 2)
        if p.is_dir():
            _fail(err, f"{input}: is a directory, expected a file of stap output or folded stacks", 2)
        try:
            stream = open(p, "rb", buffering=1 << 20)
        except OSError as e:
            _fail(err, f"{input}: cannot read ({e.strerror})", 2)
        source_name = p.name
    try:
        try:
            sample = stream.peek(1 << 16)[: 1 << 16]
        except (AttributeError, OSError):
            sample = b""
        kind = input_format.value
        if kind == "auto":
            kind = "folded" if looks_folded(sample) else "stap"
        try:
            if kind == "folded":
                collapsed = collapse_folded(stream, demangle=demangle, before=before)
            else:
                collapsed = collapse_stap(stream, demangle=demangle)
        except OSError as e:
            _fail(err, f"{input}: read error ({e.strerror})", 2)
    finally:
        if input != "-":
            stream.close()
    return collapsed, kind, source_name


def _report(err, collapsed, source_name: str, kind: str, label: str = "") -> None:
    """What stap said and what looked wrong; exit 1 when there is no stack at all."""
    if not collapsed.messages and not collapsed.problems and collapsed.stacks:
        return
    from rich.text import Text

    from .summary import terminal_text

    if collapsed.messages:
        err.print(Text(f"{label}stap reported {len(collapsed.messages)} message(s):", style="yellow"))
        for m in collapsed.messages[:5]:
            err.print(Text("  " + terminal_text(m)))
        if len(collapsed.messages) > 5:
            err.print(Text(f"  … and {len(collapsed.messages) - 5} more"))
    for prob in collapsed.problems:
        err.print(Text("warning: ", style="yellow") + Text(label + terminal_text(prob)))
    if not collapsed.stacks:
        hint = (
            "expected folded lines 'a;b;c 42'"
            if kind == "folded"
            else "expected stap print_ustack frames followed by a count line (or folded stacks)"
        )
        _fail(err, f"no stacks found in {terminal_text(source_name)}: {hint}", 1)


def flamegraph(
    input: str = typer.Argument(
        ..., help="stap output (print_ustack + count lines) or folded stacks; '-' reads stdin. "
                  "With --diff: the BEFORE profile", metavar="INPUT"
    ),
    after: Optional[str] = typer.Argument(
        None, help="with --diff: the AFTER profile (stap output or folded)", metavar="[AFTER]", show_default=False
    ),
    output: Optional[str] = typer.Option(
        None, "--output", "-o", help="file to write ('-' or absent: stdout)", metavar="FILE"
    ),
    fmt: Optional[OutFormat] = typer.Option(
        None, "--format", "-f", help="svg, folded or speedscope (default: from the -o suffix, else svg)"
    ),
    input_format: InFormat = typer.Option(InFormat.auto, "--input-format", help="auto, stap or folded"),
    title: str = typer.Option("Flame Graph", "--title", help="title of the SVG"),
    subtitle: Optional[str] = typer.Option(None, "--subtitle", help="second line under the title"),
    width: int = typer.Option(1200, "--width", min=200, max=100000, help="SVG width in pixels"),
    minwidth: float = typer.Option(
        0.1, "--minwidth", min=0.0, help="frames narrower than this many pixels are left out of the SVG"
    ),
    palette: Palette = typer.Option(Palette.hot, "--palette", help="hot, or module (a colour per library)"),
    reverse: bool = typer.Option(False, "--reverse", help="merge stacks from the leaves (callers of hot code)"),
    inverted: bool = typer.Option(False, "--inverted", help="icicle graph: root at the top"),
    top: int = typer.Option(10, "--top", min=0, help="print the top-N functions table (0: none)"),
    diff: bool = typer.Option(
        False, "--diff", help="differential graph of INPUT (before) and AFTER: AFTER's widths, red where a "
                              "frame grew, blue where it shrank; --format folded writes 'stack before after'"),
    normalise: bool = typer.Option(
        False, "--normalise", "--normalize", help="with --diff: scale BEFORE to AFTER's sample total"),
    raw_names: bool = typer.Option(
        False, "--raw-names", help="keep C++/Rust names mangled (default: demangled with binutils' c++filt)"),
) -> None:
    """Render SystemTap stack samples (or folded stacks) as a flame graph, folded text or speedscope JSON."""
    import datetime

    err = _Stderr()
    out_format = fmt.value if fmt else _guess_format(output)
    if diff and after is None:
        _fail(err, "--diff needs two profiles: BEFORE AFTER", 2)
    if after is not None and not diff:
        _fail(err, f"unexpected second input {after!r} (two inputs make a differential graph: add --diff)", 2)
    if diff and out_format == "speedscope":
        _fail(err, "speedscope has no differential form: use --format svg or folded with --diff", 2)
    if normalise and not diff:
        _fail(err, "--normalise only applies to --diff", 2)

    before_stacks = None
    if diff:
        before_c, kind_b, name_b = _read_input(err, input, input_format, not raw_names)
        _report(err, before_c, name_b, kind_b, label="before: ")
        before_stacks = before_c.stacks
        collapsed, kind, source_name = _read_input(err, after, input_format, not raw_names)
        _report(err, collapsed, source_name, kind, label="after: ")
        if normalise:
            from .diff import normalised

            before_stacks = normalised(before_stacks, collapsed.total)
    else:
        collapsed, kind, source_name = _read_input(err, input, input_format, not raw_names)
        _report(err, collapsed, source_name, kind)

    pal = palette.value
    if pal == "module" and not diff and not collapsed.modules:
        from rich.text import Text

        from .summary import terminal_text

        err.print(Text("warning: ", style="yellow") + Text(
            f"--palette module: {terminal_text(source_name)} names no modules (folded stacks carry none); "
            "using the hot palette"))
        pal = "hot"

    total = collapsed.total
    meta = {
        "source": source_name if not diff else f"{Path(input).name} → {source_name}",
        "samples": total,
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
    }
    if diff and subtitle is None:
        from .diff import change_summary

        subtitle = change_summary(before_stacks, collapsed.stacks) + (
            " (before normalised to after's total)" if normalise else "")

    # --- write ----------------------------------------------------------------------------
    to_stdout = output in (None, "-")
    tmp_path = None
    try:
        if to_stdout:
            sink = sys.stdout.buffer
        else:
            target = Path(output)
            if target.is_dir():
                _fail(err, f"{output}: is a directory", 2)
            if not target.parent.exists():
                _fail(err, f"{output}: directory {target.parent} does not exist", 2)
            tmp_path = target.with_name(f".{target.name}.tmp{os.getpid()}")
            sink = open(tmp_path, "wb")
        try:
            if out_format == "folded":
                from .folded import write_folded

                if diff:
                    from .diff import write_diff_folded

                    write_diff_folded(before_stacks, collapsed.stacks, sink)
                else:
                    write_folded(collapsed.stacks, sink)
            elif out_format == "speedscope":
                from .speedscope import write_speedscope

                write_speedscope(collapsed.stacks, sink, name=title if title != "Flame Graph" else source_name,
                                 modules=collapsed.modules, names=collapsed.names)
            else:
                from .svg import render_svg

                render_svg(
                    collapsed.stacks,
                    sink,
                    title=title,
                    subtitle=subtitle,
                    meta=meta,
                    width=width,
                    minwidth=minwidth,
                    palette=pal,
                    reverse=reverse,
                    inverted=inverted,
                    modules=collapsed.modules,
                    before=before_stacks,
                )
        finally:
            if not to_stdout:
                sink.close()
            else:
                sink.flush()
        if tmp_path is not None:
            os.replace(tmp_path, output)
            tmp_path = None
    except BrokenPipeError:
        if not to_stdout:
            _fail(err, f"{output}: cannot write (broken pipe)", 1)
        # the reader went away (`| head`): stop quietly, as a filter does
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        raise typer.Exit(0)
    except OSError as e:
        _fail(err, f"{output or 'stdout'}: cannot write ({e.strerror})", 1)
    finally:
        if tmp_path is not None and tmp_path.exists():
            tmp_path.unlink()

    from .summary import terminal_text

    done = None if to_stdout else f"wrote {terminal_text(output)} ({out_format}{', differential' if diff else ''})"
    if top:
        from rich.console import Console
        from rich.text import Text

        from .summary import print_top, top_functions

        console = err if to_stdout else Console(highlight=False)
        print_top(
            top_functions(collapsed.stacks, top),
            total_samples=total,
            console=console,
            title=f"Top {top} functions by self samples ({total:,} samples, {len(collapsed.stacks):,} unique stacks)"
            + (" after" if diff else ""),
        )
        if diff:
            console.print(Text(subtitle or ""))
        if done:
            console.print(Text(done))
    elif done:
        print(done)  # no table: plain text, without importing rich for one line


def profile(
    command: Optional[list[str]] = typer.Argument(
        None, metavar="[-- COMMAND [ARGS]...]",
        help="launch COMMAND and profile it (put it after --); it is stopped when the window ends. "
             "With --compile-only: compile for COMMAND's executable, without launching it"),
    pid: Optional[int] = typer.Option(None, "--pid", "-p", help="profile this running process"),
    duration: float = typer.Option(10.0, "--duration", help="sampling window in seconds (at most 86400)"),
    output: Optional[Path] = typer.Option(
        None, "--output", "-o", help="directory for the outputs (default: stapdoctor-profile-DATE-TIME)"),
    while_: Optional[str] = typer.Option(
        None, "--while", metavar="COMMAND",
        help="run this workload during the window and stop it after (split like a shell, but run without "
             "one: no pipes, redirections or variables)"),
    kernel: bool = typer.Option(False, "--kernel", help="add kernel stacks on top of the user stacks"),
    force: bool = typer.Option(False, "--force", help="run even if the host fails checks the probes need"),
    stap: Optional[str] = typer.Option(None, "--stap", help="the stap to run (default: stap on PATH)", metavar="PATH"),
    maxmapentries: Optional[int] = typer.Option(
        None, "--maxmapentries", help="-D MAXMAPENTRIES: unique stacks kept (default: 10240)"),
    maxaction: Optional[int] = typer.Option(None, "--maxaction", help="-D MAXACTION (default: 20000)"),
    maxbacktrace: Optional[int] = typer.Option(
        None, "--maxbacktrace", help="-D MAXBACKTRACE: frames per stack (default: 100)"),
    maxstringlen: Optional[int] = typer.Option(
        None, "--maxstringlen", help="-D MAXSTRINGLEN (default: the largest the kernel's CONFIG_FRAME_WARN allows)"),
    maxskipped: Optional[int] = typer.Option(None, "--maxskipped", help="-D MAXSKIPPED (stap's default: 100)"),
    no_overload: bool = typer.Option(False, "--no-overload", help="-D STP_NO_OVERLOAD: do not stop on probe overhead"),
    buffer_size: Optional[int] = typer.Option(
        None, "--buffer-size", "-s", help="stap -s (staprun -b with --module): buffer size in MB"),
    frequency: Optional[float] = typer.Option(
        None, "--frequency", metavar="HZ",
        help="sample at HZ with a perf cpu-clock event (default: timer.profile, 1000 Hz in stap 4.x+)"),
    top: int = typer.Option(10, "--top", min=0, help="print the top-N functions (0: none)"),
    compile_only: Optional[Path] = typer.Option(
        None, "--compile-only", metavar="FILE.ko",
        help="only compile: write the module to FILE.ko (and what it holds to FILE.ko.json), to run later "
             "with --module, e.g. on a host without headers or a compiler. Target: --exe, --pid or -- COMMAND"),
    kernel_release: Optional[str] = typer.Option(
        None, "--kernel-release", "-r", metavar="KREL",
        help="with --compile-only: the kernel release to compile for (default: the running kernel; needs "
             "/lib/modules/KREL/build)"),
    exe: Optional[list[str]] = typer.Option(
        None, "--exe", metavar="PATH",
        help="with --compile-only: an executable whose stacks will be unwound (repeatable; --ldd adds its "
             "libraries)"),
    module: Optional[Path] = typer.Option(
        None, "--module", metavar="FILE.ko",
        help="run this module (from --compile-only) with staprun instead of compiling one"),
    staprun: Optional[str] = typer.Option(
        None, "--staprun", metavar="PATH", help="with --module: the staprun to run (default: staprun on PATH)"),
    snapshot: Optional[Path] = typer.Option(None, "--host-snapshot", hidden=True,
                                            help="decide readiness from a saved host snapshot (tests)"),
    baseline: Optional[Path] = typer.Option(
        None, "--baseline", metavar="DIR",
        help="an earlier profile's output directory: also write flamegraph.diff.svg (and stacks.diff.folded), "
             "this profile coloured by its change since that one (samples normalised)"),
) -> None:
    """Sample a process's user-space stacks with SystemTap; write stacks, flame graph, speedscope and summary.

    Compile on one machine, run on another: --compile-only FILE.ko -r KREL there, --module FILE.ko here.
    """
    import datetime

    from .runner import ProfileRequest, profile_command

    if output is None and compile_only is None:
        output = Path(datetime.datetime.now().strftime("stapdoctor-profile-%Y%m%d-%H%M%S"))
    req = ProfileRequest(
        output=output, duration=duration, pid=pid, command=list(command) if command else None,
        while_cmd=while_, kernel=kernel, stap=stap, maxmapentries=maxmapentries, maxaction=maxaction,
        maxbacktrace=maxbacktrace, maxstringlen=maxstringlen, maxskipped=maxskipped, no_overload=no_overload,
        buffer_size=buffer_size, frequency=frequency, compile_only=compile_only, kernel_release=kernel_release,
        exe=list(exe) if exe else None, module=module, staprun=staprun)
    if baseline is not None:
        from .diff import check_baseline

        why = check_baseline(baseline) if compile_only is None else "--baseline does not go with --compile-only"
        if why:
            from rich.console import Console

            _fail(Console(stderr=True, highlight=False, soft_wrap=True), why, 2)
    code = profile_command(req, force=force, snapshot=str(snapshot) if snapshot else None, top=top)
    if baseline is not None and output is not None and (output / "stacks.folded").is_file():
        _baseline_diff(baseline, output)
    if code:
        raise typer.Exit(code)


def _baseline_diff(baseline: Path, output: Path) -> None:
    """The differential graph of this profile against BASELINE (profile --baseline)."""
    from rich.console import Console
    from rich.text import Text

    from .diff import write_baseline_diff
    from .summary import terminal_text

    console = Console(stderr=True, highlight=False, soft_wrap=True)
    try:
        svg = write_baseline_diff(baseline, output)
    except OSError as e:
        console.print(Text("warning: ", style="yellow") + Text(
            f"no differential graph against {terminal_text(str(baseline))}: {e.strerror or e}"))
        return
    console.print(Text(f"change since {terminal_text(str(baseline))}: {terminal_text(str(svg))}"))
