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


def flamegraph(
    input: str = typer.Argument(
        ..., help="stap output (print_ustack + count lines) or folded stacks; '-' reads stdin", metavar="INPUT"
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
) -> None:
    """Render SystemTap stack samples (or folded stacks) as a flame graph, folded text or speedscope JSON."""
    import datetime

    from rich.console import Console
    from rich.text import Text

    from .collapse import collapse_stap
    from .folded import collapse_folded, looks_folded, write_folded
    from .speedscope import write_speedscope
    from .summary import print_top, top_functions
    from .svg import render_svg

    err = Console(stderr=True, highlight=False, soft_wrap=True)
    out_format = fmt.value if fmt else _guess_format(output)

    # --- open the input -------------------------------------------------------------------
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
            collapsed = collapse_folded(stream) if kind == "folded" else collapse_stap(stream)
        except OSError as e:
            _fail(err, f"{input}: read error ({e.strerror})", 2)
    finally:
        if input != "-":
            stream.close()

    # --- what stap said, what looked wrong ------------------------------------------------
    if collapsed.messages:
        err.print(Text(f"stap reported {len(collapsed.messages)} message(s):", style="yellow"))
        for m in collapsed.messages[:5]:
            err.print(Text("  " + m))
        if len(collapsed.messages) > 5:
            err.print(Text(f"  … and {len(collapsed.messages) - 5} more"))
    for prob in collapsed.problems:
        err.print(Text("warning: ", style="yellow") + Text(prob))
    if not collapsed.stacks:
        hint = (
            "expected folded lines 'a;b;c 42'"
            if kind == "folded"
            else "expected stap print_ustack frames followed by a count line (or folded stacks)"
        )
        _fail(err, f"no stacks found in {source_name}: {hint}", 1)

    total = collapsed.total
    meta = {
        "source": source_name,
        "samples": total,
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
    }

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
                write_folded(collapsed.stacks, sink)
            elif out_format == "speedscope":
                write_speedscope(collapsed.stacks, sink, name=title if title != "Flame Graph" else source_name,
                                 modules=collapsed.modules)
            else:
                render_svg(
                    collapsed.stacks,
                    sink,
                    title=title,
                    subtitle=subtitle,
                    meta=meta,
                    width=width,
                    minwidth=minwidth,
                    palette=palette.value,
                    reverse=reverse,
                    inverted=inverted,
                    modules=collapsed.modules,
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

    if top:
        console = err if to_stdout else Console(highlight=False)
        print_top(
            top_functions(collapsed.stacks, top),
            total_samples=total,
            console=console,
            title=f"Top {top} functions by self samples ({total:,} samples, {len(collapsed.stacks):,} unique stacks)",
        )
        if not to_stdout:
            console.print(Text(f"wrote {output} ({out_format})"))


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
    code = profile_command(req, force=force, snapshot=str(snapshot) if snapshot else None, top=top)
    if code:
        raise typer.Exit(code)
