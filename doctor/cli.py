"""The `stapdoctor` command line. Each command imports what it needs when it runs, so `check` starts fast."""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Optional

import typer

app = typer.Typer(
    name="stapdoctor",
    help="Make Linux hosts ready for SystemTap user-space profiling, check them, and profile them.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)

EXIT_READY, EXIT_NOT_READY, EXIT_USAGE = 0, 1, 2


def _err(msg: str, code: int = EXIT_USAGE) -> "typer.Exit":
    from rich.console import Console
    from rich.text import Text

    from .safeio import printable  # messages may quote a sysroot's or a snapshot's contents
    Console(stderr=True, highlight=False).print(Text("stapdoctor: ", style="bold red") + Text(printable(msg)),
                                                soft_wrap=True)
    return typer.Exit(code)


def _version(value: bool) -> None:
    if value:
        from importlib.metadata import PackageNotFoundError, version
        try:
            v = version("stapdoctor")
        except PackageNotFoundError:
            v = "unknown (not installed)"
        print(f"stapdoctor {v}")
        raise typer.Exit(0)


@app.callback()
def _main(version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                       help="Print stapdoctor's version and exit.")) -> None:
    """Make Linux hosts ready for SystemTap user-space profiling, check them, and profile them."""


def _snapshot(root: Optional[Path], snapshot: Optional[Path], pid: Optional[int], binary: Optional[str],
              deep: bool = False, quiet: bool = False, deep_timeout: float = 1800.0, debuginfod: bool = False):
    from .snapshot import SnapshotError, collect, load
    if root is not None and snapshot is not None:
        raise _err("--root and --snapshot are alternatives: give one")
    if snapshot is not None and (pid is not None or binary is not None or deep or debuginfod):
        raise _err("--pid/--binary/--deep/--debuginfod need a host to look at; they cannot be used with --snapshot")
    if root is not None and deep:
        raise _err("--deep compiles a probe on this host; it cannot be used with --root")
    if root is not None and debuginfod:
        raise _err("--debuginfod asks the servers for this host's running kernel; it cannot be used with --root")
    from .target import TargetError, check_pid, resolve_binary
    try:
        if snapshot is not None:
            snap = load(snapshot)
        else:
            where = str(root) if root else "/"
            if pid is not None:
                check_pid(where, pid)
            exe = resolve_binary(where, str(binary)) if binary is not None else None
            snap = collect(where, pid=pid, binary=exe, debuginfod=debuginfod)
    except (SnapshotError, TargetError) as e:
        raise _err(str(e)) from None
    if deep:
        if root is not None:
            raise _err("--deep compiles a probe on this host; it cannot be used with --root")
        _run_deep(snap, quiet, deep_timeout)
    return snap


def _run_deep(snap, quiet: bool, timeout: float) -> None:
    from rich.console import Console

    from .deep import run_deep
    stap = snap.tools.get("stap", {}).get("path")
    if not stap:
        return
    console = Console(stderr=True)
    if quiet or not console.is_terminal:
        snap.commands["stap-deep"] = run_deep(stap, timeout)
        return
    with console.status("stap --deep: pass 1: parsing (compiling a module takes minutes)") as st:
        snap.commands["stap-deep"] = run_deep(stap, timeout, status=lambda s: st.update(f"stap --deep: {s}"))


RootOpt = typer.Option(None, "--root", help="Check a sysroot (image, chroot, collected tree) instead of this host.",
                       file_okay=False)
SnapOpt = typer.Option(None, "--snapshot", help="Check a saved snapshot (from 'stapdoctor snapshot').",
                       dir_okay=False)
PidOpt = typer.Option(None, "--pid", help="Also check that this process's executable and libraries have "
                      "symbols and unwind data.", min=1)
BinOpt = typer.Option(None, "--binary", help="Also check this executable (a path, or a name looked up in PATH) "
                      "and the libraries it needs.")
DebuginfodOpt = typer.Option(False, "--debuginfod", help="Ask the debuginfod servers (DEBUGINFOD_URLS or "
                             "/etc/debuginfod/*.urls) for the running kernel's debuginfo, as stap-prep does "
                             "(network; implied by --deep).")
DeepTimeoutOpt = typer.Option(1800.0, "--deep-timeout", min=1, help="Seconds before --deep gives up on stap "
                              "(a compile under emulation can take 15 minutes).")


@app.command()
def check(
    root: Optional[Path] = RootOpt,
    snapshot: Optional[Path] = SnapOpt,
    json_out: bool = typer.Option(False, "--json", help="Print the findings as JSON (schema stapdoctor.check/1)."),
    deep: bool = typer.Option(False, "--deep", help="Also compile and run a hello probe (takes minutes)."),
    pid: Optional[int] = PidOpt,
    binary: Optional[str] = BinOpt,
    debuginfod: bool = DebuginfodOpt,
    host: Optional[str] = typer.Option(None, "--host", help="Host name to put in the playbook remedies (-l HOST)."),
    deep_timeout: float = DeepTimeoutOpt,
) -> None:
    """Say whether SystemTap user-space profiling works here: one line per check, and the fix for each failure.

    Exit status: 0 ready, 1 not ready, 2 usage error.
    """
    from . import checks, report
    from .checks.context import Context

    snap = _snapshot(root, snapshot, pid, binary, deep=deep, quiet=json_out, deep_timeout=deep_timeout,
                     debuginfod=debuginfod or deep)
    findings = checks.run_checks(snap, host_label=host)
    ready = checks.is_ready(findings)
    ctx = Context(snap, host_label=host)
    if json_out:
        report.print_json(report.to_dict(snap, ctx, findings, ready))
    else:
        from rich.console import Console
        report.print_text(Console(highlight=False), snap, ctx, findings, ready)
    raise typer.Exit(EXIT_READY if ready else EXIT_NOT_READY)


@app.command("snapshot")
def snapshot_cmd(
    output: Path = typer.Option(..., "-o", "--output", help="Where to write the JSON snapshot ('-' for stdout).",
                                dir_okay=False),
    root: Optional[Path] = RootOpt,
    pid: Optional[int] = PidOpt,
    binary: Optional[str] = BinOpt,
    deep: bool = typer.Option(False, "--deep", help="Include a real compile-and-run of a hello probe."),
    deep_timeout: float = DeepTimeoutOpt,
    debuginfod: bool = DebuginfodOpt,
) -> None:
    """Save what the checks read about this host (or a sysroot) as JSON, for bug reports and fleets."""
    snap = _snapshot(root, None, pid, binary, deep=deep, deep_timeout=deep_timeout, debuginfod=debuginfod or deep)
    text = snap.to_json()
    if str(output) == "-":
        sys.stdout.write(text + "\n")
        return
    try:
        output.write_text(text + "\n", encoding="utf-8")
    except OSError as e:
        raise _err(f"cannot write {output}: {e.strerror or e}") from None
    from .safeio import printable
    print(f"wrote {output} ({len(snap.files)} files, {len(snap.commands)} commands, "
          f"kernel {printable(snap.kernel_release)})", file=sys.stderr)


#: commands whose modules live elsewhere in the tree, by the module that defines them
_OPTIONAL = {"flamegraph": "profiler", "profile": "profiler", "fleet": "fleet"}


def _register_optional(group: str | None = None) -> None:
    """Register the commands of profiler/ and of the fleet module, or only those of ``group`` (a value
    of _OPTIONAL): Typer builds every registered command at each start, and the fleet's imports were
    a tenth of the start-up of `flamegraph` and `check`."""
    if group in (None, "profiler"):
        try:
            from stapdoctor.profiler import cli as pcli
        except ImportError:
            pcli = None
        if pcli is not None:
            for name in ("flamegraph", "profile"):
                fn = getattr(pcli, name, None)
                if fn is not None:
                    app.command(name, context_settings={"allow_interspersed_args": name != "profile"})(fn)
    if group in (None, "fleet"):
        try:
            from . import fleet
        except ImportError:
            fleet = None
        if fleet is not None and hasattr(fleet, "fleet"):
            app.command("fleet")(fleet.fleet)


def main() -> None:
    # a command of this module (check, snapshot) needs none of the others; help, a typo or no
    # command at all gets every command, so the listing and click's suggestions stay whole
    first = sys.argv[1] if len(sys.argv) > 1 else None
    if first in _OPTIONAL:
        _register_optional(_OPTIONAL[first])
    elif first not in {c.name or c.callback.__name__ for c in app.registered_commands}:
        _register_optional()
    try:
        app()
    except KeyboardInterrupt:
        print("stapdoctor: interrupted", file=sys.stderr)
        sys.exit(130)
