"""`stapdoctor fleet`: check every host of an Ansible inventory; one row per host, the detail on request.

The hosts only run playbooks/check.yml's POSIX-sh collector (no Python on the hosts, so Ubuntu 12.10's 2.7
works; one SSH command per host), by one of two transports:
  ssh (default)  doctor/fleetssh.py: the inventory and each host's connection settings are read once with
                 Ansible's own API, then one `ssh HOST sh -s` per host from a thread pool. Ansible's
                 per-host work on the controller (a fork, templating, callbacks) was the cost of a run:
                 measured with bench/bench_fleet.py (README, "Cost, and a large fleet"), this transport
                 takes less time, controller CPU and memory at every size. Hosts whose settings it cannot
                 honour go through Ansible.
  ansible        ansible-playbook check.yml, one `raw` task per host; each output streams back through the
                 stapdoctor_fleet callback.
Either way each output is read in memory (doctor/collected.py: never extracted, every size capped), then
the same snapshot and checks code as `stapdoctor check` decides here. Ansible and ssh run as argument
lists, never through a shell.

What a host sends is not trusted: it can make its own row lie, but not write, hang or crash the
controller, nor reach the operator's terminal with control characters.
"""
from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any, Iterable, Optional

import typer

from .safeio import printable

FLEET_SCHEMA = "stapdoctor.fleet/1"
GROUP = "stap_hosts"
COLLECT_PLAY = "Collect stapdoctor snapshots"  # check.yml's first play
CONCERNS = ("kernel", "devel", "debuginfo", "systemtap", "policy", "access")
_RANK = {"fail": 3, "warn": 2, "pass": 1, "skip": 0}
_CELL = {"fail": ("FAIL", "bold red"), "warn": ("warn", "yellow"), "pass": ("ok", "green"), "skip": ("-", "dim")}
_REASON_MAX = 4000  # a host's failure message, shown whole up to this (a traceback is ~2 KB)


def default_playbooks() -> Path:
    """The playbooks shipped with this install (site-packages/stapdoctor/playbooks) or the checkout's."""
    return Path(__file__).resolve().parents[1] / "playbooks"


# ---------------------------------------------------------------- one host's output -> report
def check_output(host: str, stdout: str) -> dict[str, Any]:
    """The check report (the `check --json` shape) for one host's collector output."""
    from .collected import CollectedError, decode_output, read_archive
    try:
        root = read_archive(decode_output(stdout), f"collector:{host}")
    except CollectedError as e:
        return _error_report(host, f"its collector output was refused: {e}")
    return _report(host, root)


def check_archive(host: str, raw: bytes) -> dict[str, Any]:
    from .collected import CollectedError, read_archive
    try:
        root = read_archive(raw, f"collector:{host}")
    except CollectedError as e:
        return _error_report(host, f"its snapshot archive was refused: {e}")
    return _report(host, root)


def _report(host: str, root) -> dict[str, Any]:
    from . import checks, report
    from .checks.context import Context
    from .snapshot import SnapshotError, collect
    try:
        snap = collect(root, run_commands=False)
    except SnapshotError as e:
        return _error_report(host, str(e))
    snap.source.update(kind="collector", host=host, root=None)
    findings = checks.run_checks(snap, host_label=host)
    return report.to_dict(snap, Context(snap, host_label=host), findings, checks.is_ready(findings))


def _error_report(host: str, why: str) -> dict[str, Any]:
    return {"schema": "stapdoctor.check/1", "ready": False, "host": host, "error": why, "findings": []}


def collect_reports(collected: Path) -> dict[str, dict]:
    """Check every `<host>.tar.gz` that check.yml's standalone mode (doctor_collect_dest) wrote."""
    from .safeio import read_regular
    from .collected import MAX_ARCHIVE
    out: dict[str, dict] = {}
    for archive in sorted(collected.glob("*.tar.gz")):
        host = archive.name[: -len(".tar.gz")]
        try:
            raw = read_regular(archive, MAX_ARCHIVE)
        except OSError as e:
            out[host] = _error_report(host, f"cannot read {archive}: {e.strerror or e}")
            continue
        out[host] = check_archive(host, raw)
    return out


# ---------------------------------------------------------------- Ansible's results
def failure_reason(status: str, result: dict[str, Any]) -> str:
    """Why a host has no snapshot, whole: Ansible's message, the module's real error behind
    'MODULE FAILURE', or the collector's exit status and last words."""
    msg = str(result.get("msg") or "").strip()
    if status == "unreachable":
        return f"unreachable: {msg or 'no message from Ansible'}"
    if msg.startswith("MODULE FAILURE"):
        real = str(result.get("module_stderr") or "").strip() or str(result.get("module_stdout") or "").strip()
        return f"MODULE FAILURE: {real or msg}"
    rc = result.get("rc")
    if rc is not None and rc != 0:
        # over SSH with a tty the collector's stderr arrives in stdout; ssh's own words in stderr
        lines = [ln.strip() for key in ("stdout", "stderr")
                 for ln in str(result.get(key) or "").replace("\r", "").splitlines()
                 if ln.strip() and not _SSH_CLOSED.match(ln.strip())]
        said = "\n".join(lines[-8:])
        return f"the collector failed (exit {rc})" + (f": {said}" if said else "")
    return f"failed: {msg or 'no message from Ansible'}"


_SSH_CLOSED = re.compile(r"(Shared c|C)onnection to \S+ closed\.$")


def _safe_name(host: str) -> str:
    name = re.sub(r"[^A-Za-z0-9._-]", "_", host)[:200]
    return name if name.strip(".") else f"_{name}"


def _write_kept(keep: Path, host: str, stdout: str) -> None:
    """keep/<host>.tar.gz: written beside, then renamed over (never through a link); nothing else touched."""
    from .collected import CollectedError, decode_output
    try:
        raw = decode_output(stdout)
    except CollectedError:
        return
    fd, tmp = tempfile.mkstemp(prefix=".stapdoctor-", suffix=".part", dir=keep)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(raw)
        os.replace(tmp, keep / f"{_safe_name(host)}.tar.gz")
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


class Run:
    """What one ansible-playbook run of check.yml said, host by host."""

    def __init__(self) -> None:
        self.reports: dict[str, dict] = {}
        self.failed: dict[str, str] = {}
        self.seen: set[str] = set()
        self.no_hosts = False

    def feed(self, lines: Iterable[str], keep: Path | None = None, progress=None) -> None:
        for line in lines:
            if not line.startswith("{"):
                continue
            try:
                ev = json.loads(line)
            except json.JSONDecodeError:
                continue
            if not isinstance(ev, dict):
                continue
            kind = ev.get("event")
            if kind == "no_hosts_matched" and ev.get("play") == COLLECT_PLAY:
                self.no_hosts = True
            elif kind == "stats":
                self.seen.update(h for h in (ev.get("hosts") or {}) if h != "localhost")
            elif kind == "result" and ev.get("play") == COLLECT_PLAY:
                host = str(ev.get("host"))
                self.seen.add(host)
                res = ev.get("result") if isinstance(ev.get("result"), dict) else {}
                if ev.get("status") == "ok" and isinstance(res.get("stdout"), str):
                    self.reports[host] = check_output(host, res["stdout"])
                    if keep is not None:
                        _write_kept(keep, host, res["stdout"])
                elif ev.get("status") in ("failed", "unreachable"):
                    self.failed[host] = failure_reason(ev["status"], res)
                if progress is not None:
                    progress(len(self.reports) + len(self.failed))

    def missing(self) -> dict[str, str]:
        return {h: "no result came back from Ansible" for h in sorted(self.seen)
                if h not in self.reports and h not in self.failed}


# ---------------------------------------------------------------- presentation
def concern_status(rep: dict[str, Any]) -> dict[str, str | None]:
    """concern -> its worst finding status (fail > warn > pass > skip), None when it had no findings."""
    out: dict[str, str | None] = {c: None for c in CONCERNS}
    for f in rep.get("findings", []):
        c = f.get("concern")
        if c in out and (out[c] is None or _RANK.get(f["status"], 0) > _RANK.get(out[c], 0)):
            out[c] = f["status"]
    return out


def verdict(rep: dict[str, Any] | None) -> str:
    if rep is None:
        return "unreachable"
    if rep.get("error"):
        return "error"
    return "ready" if rep.get("ready") else "NOT READY"


def table_rows(reports: dict[str, dict], failed: dict[str, str]) -> list[dict[str, Any]]:
    rows = [{"host": h, "verdict": verdict(r), **concern_status(r)} for h, r in reports.items()]
    rows += [{"host": h, "verdict": "unreachable" if why.startswith("unreachable") else "failed",
              **{c: None for c in CONCERNS}} for h, why in failed.items()]
    return sorted(rows, key=lambda r: r["host"])


def print_table(console, reports: dict[str, dict], failed: dict[str, str]) -> None:
    """One row per host (fits 100 columns), then why hosts have no row of facts, then the fixes."""
    from rich import box
    from rich.table import Table
    from rich.text import Text

    table = Table(title="stapdoctor fleet", box=box.SIMPLE_HEAD, pad_edge=False, title_justify="left")
    table.add_column("host", style="bold", overflow="fold", ratio=1)
    table.add_column("verdict", no_wrap=True)
    for c in CONCERNS:
        table.add_column(c, justify="center", no_wrap=True)
    styles = {"ready": "green", "NOT READY": "bold red", "unreachable": "bold red", "error": "bold red",
              "failed": "bold red"}
    for row in table_rows(reports, failed):
        cells = [Text(_CELL[row[c]][0], style=_CELL[row[c]][1]) if row[c] else Text("") for c in CONCERNS]
        table.add_row(Text(printable(row["host"])), Text(row["verdict"], style=styles[row["verdict"]]), *cells)
    console.print(table)
    problems = [(h, r["error"]) for h, r in sorted(reports.items()) if r.get("error")] + sorted(failed.items())
    if problems:
        console.print(Text("No snapshot:", style="bold"))
        for host, why in problems:
            console.print(Text(f"  {printable(host)}: ", style="bold")
                          + Text(printable(why[:_REASON_MAX], newlines=True)))
    fixes = [(h, f) for h, r in sorted(reports.items()) for f in r.get("findings", [])
             if f["status"] in ("fail", "warn") and f.get("remedy")]
    if fixes:
        console.print(Text("Fixes:", style="bold"))
        for host, f in fixes:
            label = "FAIL" if f["status"] == "fail" else "warn"
            console.print(Text(f"  {printable(host)} {f['id']} ({label}): ", style="bold")
                          + Text(printable(f["remedy"])))
    if reports or failed:
        console.print(Text("Details of one host: stapdoctor fleet ... --host HOST", style="dim"))


def print_host(console, host: str, rep: dict[str, Any] | None, why: str | None) -> None:
    """One host as `stapdoctor check` shows it: a header, one line per check, the fixes, the verdict."""
    from rich.text import Text

    from .report import _STYLE
    if rep is None or rep.get("error"):
        console.print(Text(f"{printable(host)}: ", style="bold")
                      + Text(printable((why if rep is None else rep["error"]) or "", newlines=True)), soft_wrap=True)
        return
    dist = rep.get("distribution", {})
    console.print(Text("stapdoctor fleet — ", style="bold") + Text(printable(
        f"{host}: kernel {rep.get('kernel_release')} ({rep.get('kernel_version')}), "
        f"{dist.get('name') or dist.get('id') or 'unknown distribution'}")), soft_wrap=True)
    findings = rep.get("findings", [])
    width = max((len(f["id"]) for f in findings), default=10)
    concern = None
    for f in findings:
        if f.get("concern") != concern:
            concern = f.get("concern")
            console.print(Text(f"{concern}:", style="bold"))
        label, style = _STYLE.get(f["status"], (f["status"].upper(), ""))
        line = Text("  ")
        line.append(f"{label:4}", style=style)
        line.append(f"  {f['id']:<{width}}  ")
        line.append(f"{f['title']}: ", style="bold")
        line.append(printable(f["evidence"]))
        console.print(line, soft_wrap=True)
    fixes = [f for f in findings if f["status"] in ("fail", "warn") and f.get("remedy")]
    if fixes:
        console.print(Text("\nFixes:", style="bold"))
        for f in fixes:
            console.print(Text(f"  {f['id']}: ", style="bold") + Text(printable(f["remedy"])), soft_wrap=True)
    ready = rep.get("ready")
    console.print(Text("\nREADY" if ready else "\nNOT READY", style="bold green" if ready else "bold red"))


# ---------------------------------------------------------------- the command
def fleetssh_timeout() -> float:
    from .fleetssh import DEFAULT_TIMEOUT
    return DEFAULT_TIMEOUT


def default_forks() -> int:
    return max(1, min(20, 4 * len(os.sched_getaffinity(0))))


def _ansible_tool(name: str) -> str | None:
    beside = Path(sys.executable).with_name(name)  # the venv stapdoctor runs from: its pinned ansible-core
    if beside.exists():
        return str(beside)
    return shutil.which(name)


def _inventory_hosts(inventory: Path, env: dict) -> tuple[list[str], dict[str, list[str]]] | None:
    """(hosts, group -> hosts) of the inventory, from ansible-inventory; None if it cannot tell."""
    tool = _ansible_tool("ansible-inventory")
    if tool is None:
        return None
    p = subprocess.run([tool, "-i", str(inventory), "--list"], capture_output=True, text=True, env=env,
                       stdin=subprocess.DEVNULL, timeout=300)
    try:
        data = json.loads(p.stdout)
    except json.JSONDecodeError:
        return None
    if not isinstance(data, dict):
        return None
    groups = {g: list(v.get("hosts") or []) for g, v in data.items() if isinstance(v, dict) and g != "_meta"}
    hosts = set((data.get("_meta") or {}).get("hostvars") or {})
    for members in groups.values():
        hosts.update(members)
    return sorted(hosts), groups


def _no_hosts_message(inventory: Path, pattern: str, limit: str | None, env: dict) -> str:
    found = _inventory_hosts(inventory, env)
    if found is None or not found[0]:
        return f"the inventory {inventory} has no hosts"
    hosts, groups = found
    if limit:
        return f"no host of group/pattern {pattern!r} matches -l {limit!r}"
    named = sorted(g for g, hs in groups.items() if hs and g not in ("all", "ungrouped"))
    shown = ", ".join(hosts[:5]) + (f" and {len(hosts) - 5} more" if len(hosts) > 5 else "")
    where = f"groups {', '.join(named[:8])}" if named else "no group"
    return (f"no host of {inventory} is in {pattern!r}, the group check.yml runs on (the inventory has "
            f"{len(hosts)} hosts: {shown}; in {where}): put them in group [{GROUP}], or pass "
            f"--hosts all (or another group or pattern)")


TRANSPORTS = ("ssh", "ansible")


def _ansible_env(playbooks: Path) -> dict:
    env = dict(os.environ, ANSIBLE_NOCOLOR="1", ANSIBLE_CONFIG=str(playbooks / "ansible.cfg"),
               ANSIBLE_STDOUT_CALLBACK="stapdoctor_fleet", ANSIBLE_RETRY_FILES_ENABLED="0")
    # One SSH command per host: a ControlPersist master would only linger (one ssh process per host for
    # 60 s after the run: hundreds on a large fleet). The operator's own ANSIBLE_SSH_ARGS wins.
    env.setdefault("ANSIBLE_SSH_ARGS", "-o ControlMaster=no")
    return env


def run_ansible(ansible: str, inventory: Path, playbook: Path, hosts: str, limit: str | None, forks: int,
                keep: Path | None, env: dict, status) -> tuple[Run, int, str]:
    """check.yml through ansible-playbook: (what it said host by host, its exit status, its stderr)."""
    argv = [ansible, "-i", str(inventory), str(playbook), "--skip-tags", "save",
            "-e", json.dumps({"doctor_hosts": hosts})]
    if limit:
        argv += ["-l", limit]
    # Each fork is a copy of ansible-playbook (~45 MB resident, mostly shared); the fan-out is CPU-bound on
    # the controller, so more than a few forks per CPU only costs memory. -f sets it for a large fleet.
    argv += ["-f", str(forks)]
    run = Run()
    with tempfile.TemporaryFile() as errf:
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=errf, stdin=subprocess.DEVNULL, env=env,
                                text=True, errors="replace")
        try:
            run.feed(proc.stdout, keep, lambda n: status.update(f"collecting snapshots: {n} hosts done …"))
        finally:
            proc.stdout.close()
            rc = proc.wait()
        errf.seek(0)
        stderr = errf.read().decode("utf-8", "replace")
    return run, rc, stderr


def fleet(
    inventory: Path = typer.Option(..., "-i", "--inventory", help="Ansible inventory of the hosts to check."),
    limit: Optional[str] = typer.Option(None, "-l", "--limit", help="Ansible host pattern to limit to."),
    hosts: str = typer.Option(GROUP, "--hosts", help="Which inventory group or host pattern to check."),
    host: Optional[str] = typer.Option(None, "--host", help="Show every check of this one host (limits the run to it "
                                       "unless -l is given)."),
    json_out: bool = typer.Option(False, "--json", help="Print every host's findings as JSON (stapdoctor.fleet/1)."),
    keep: Optional[Path] = typer.Option(None, "--keep", help="Also save each host's snapshot as DIR/HOST.tar.gz "
                                        "(nothing else in DIR is touched).", file_okay=False),
    transport: str = typer.Option("ssh", "--transport", help="ssh: one ssh command per host from this process, "
                                  "connection settings read from the inventory with Ansible (hosts whose settings "
                                  "it cannot honour go through Ansible); ansible: ansible-playbook check.yml."),
    forks: Optional[int] = typer.Option(None, "-f", "--forks", min=1, max=1000,
                                        help="Hosts collected at once (default: ssh 32; ansible 4 per CPU, at "
                                        "most 20)."),
    timeout: float = typer.Option(fleetssh_timeout(), "--timeout", min=1,
                                  help="ssh transport: seconds one host may take (connect, collect, send)."),
    playbooks: Path = typer.Option(default_playbooks(), "--playbooks", help="The playbooks directory.",
                                   file_okay=False),
) -> None:
    """Check every host of an inventory (collecting with a POSIX-sh script, deciding here): one row per host.

    Exit status: 0 when every host is ready, 1 when one is not or is unreachable, 2 usage error.
    """
    from rich.console import Console
    from rich.text import Text

    from .cli import _err

    if transport not in TRANSPORTS:
        raise _err(f"--transport {transport!r}: choose ssh or ansible")
    if not inventory.exists():
        raise _err(f"inventory {inventory} does not exist")
    playbook = playbooks / "check.yml"
    if not playbook.is_file():
        raise _err(f"{playbook} not found: pass --playbooks DIR (the repository's playbooks/)")
    ansible = _ansible_tool("ansible-playbook")
    if ansible is None:
        raise _err("ansible-playbook not found (pip install 'ansible-core>=2.16,<2.17')")
    if keep is not None:
        try:
            keep.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise _err(f"--keep {keep}: {e.strerror or e}") from None
    env = _ansible_env(playbooks)
    console = Console(stderr=True)
    reports: dict[str, dict] = {}
    failed: dict[str, str] = {}
    no_hosts, rc, stderr = False, 0, ""
    with console.status("collecting snapshots …") as status:
        via_ansible: dict[str, str] | None = None  # None: every host
        if transport == "ssh":
            from . import fleetssh
            try:
                targets, via_ansible = fleetssh.resolve(inventory, hosts, limit or host, playbooks)
            except Exception as e:  # noqa: BLE001 - Ansible's inventory errors are many classes
                raise _err(f"--transport ssh: cannot read the inventory {inventory} or the collector: "
                           f"{printable(str(e))[:2000]}") from None
            for name, why in sorted(via_ansible.items()):
                console.print(Text(f"{printable(name)}: collected through Ansible (the ssh transport cannot "
                                   f"honour {printable(why)})", style="yellow"))
            no_hosts = not targets and not via_ansible
            reports, failed = fleetssh.collect(
                targets, forks or fleetssh.DEFAULT_FORKS, timeout, keep,
                lambda n: status.update(f"collecting snapshots over ssh: {n} hosts done …"))
        if via_ansible is None or via_ansible:
            with contextlib.ExitStack() as stack:
                lim = limit or host
                if via_ansible:  # only these hosts, by name (a file: names are not read as patterns)
                    f = stack.enter_context(tempfile.NamedTemporaryFile("w", suffix=".hosts"))
                    f.write("".join(f"{n}\n" for n in sorted(via_ansible)))
                    f.flush()
                    lim = f"@{f.name}"
                run, rc, stderr = run_ansible(ansible, inventory, playbook, hosts, lim,
                                              forks or default_forks(), keep, env, status)
            reports.update(run.reports)
            failed.update({**run.failed, **run.missing()})
            tail = " / ".join([ln for ln in stderr.strip().splitlines() if ln.strip()][-3:])
            for name in via_ansible or ():  # handed to Ansible: never dropped from the table
                if name not in reports and name not in failed:
                    failed[name] = (f"failed: no result came back from Ansible (exit {rc})"
                                    + (f": {tail}" if tail else ""))
            no_hosts = no_hosts or (run.no_hosts and via_ansible is None)
    if no_hosts and not reports and not failed:
        raise _err(_no_hosts_message(inventory, hosts, limit or host, env))
    if not reports and not failed:
        last = [ln for ln in stderr.strip().splitlines() if ln.strip()][-3:] or ["no output"]
        raise _err(f"ansible-playbook failed (exit {rc}): " + printable(" / ".join(last)), 1)
    if host is not None:
        if host not in reports and host not in failed:
            raise _err(f"host {host!r} was not checked (checked: {', '.join(sorted([*reports, *failed])[:10])})")
        if json_out:
            print(json.dumps(reports.get(host) or {"host": host, "unreachable": failed[host]}, indent=2))
        else:
            print_host(Console(highlight=False), host, reports.get(host), failed.get(host))
        rep = reports.get(host)
        raise typer.Exit(0 if rep and rep.get("ready") else 1)
    all_ready = bool(reports) and all(r.get("ready") for r in reports.values()) and not failed
    if json_out:
        print(json.dumps({"schema": FLEET_SCHEMA, "ready": all_ready, "table": table_rows(reports, failed),
                          "hosts": reports, "unreachable": failed}, indent=2))
    else:
        print_table(Console(highlight=False), reports, failed)
    raise typer.Exit(0 if all_ready else 1)
