"""`stapdoctor fleet`: check every host of an Ansible inventory and print one hosts × checks table.

The hosts only run playbooks/check.yml's POSIX-sh collector (so Python-2.7 hosts such as Ubuntu 12.10 work);
the tarballs come back to this controller, where the same snapshot and checks code as `stapdoctor check`
decides. Ansible runs as an argument list, never through a shell.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path
from typing import Optional

import typer

FLEET_SCHEMA = "stapdoctor.fleet/1"
_MARK = {"pass": ("ok", "green"), "warn": ("warn", "yellow"), "fail": ("FAIL", "bold red"), "skip": ("-", "dim")}


def default_playbooks() -> Path:
    return Path(__file__).resolve().parents[1] / "playbooks"


def _extract(archive: Path, dest: Path) -> None:
    """Unpack a collector tarball; the 'data' filter refuses links or paths that leave `dest`."""
    with tarfile.open(archive) as tf:
        tf.extractall(dest, filter="data")


def collect_reports(collected: Path, hosts: list[str] | None = None) -> dict[str, dict]:
    """Check every `<host>.tar.gz` in `collected`; host -> check report (the `check --json` shape)."""
    from . import checks, report
    from .checks.context import Context
    from .snapshot import SnapshotError, collect

    out: dict[str, dict] = {}
    for archive in sorted(collected.glob("*.tar.gz")):
        host = archive.name[: -len(".tar.gz")]
        if hosts is not None and host not in hosts:
            continue
        tree = collected / host
        shutil.rmtree(tree, ignore_errors=True)
        tree.mkdir()
        try:
            _extract(archive, tree)
            snap = collect(str(tree), run_commands=False)
        except (tarfile.TarError, OSError, SnapshotError) as e:
            out[host] = {"schema": "stapdoctor.check/1", "ready": False, "host": host, "error": str(e), "findings": []}
            continue
        snap.source.update(kind="collector", host=host, root=None, archive=str(archive))
        findings = checks.run_checks(snap, host_label=host)
        ctx = Context(snap, host_label=host)
        out[host] = report.to_dict(snap, ctx, findings, checks.is_ready(findings))
    return out


def print_table(console, reports: dict[str, dict], unreachable: dict[str, str]) -> None:
    from rich.table import Table
    from rich.text import Text

    ids: list[str] = []
    for rep in reports.values():
        for f in rep.get("findings", []):
            if f["id"] not in ids:
                ids.append(f["id"])
    table = Table(title="stapdoctor fleet", show_lines=False)
    table.add_column("host", style="bold")
    table.add_column("kernel")
    table.add_column("ready")
    for i in ids:
        table.add_column(i.replace(".", "\n", 1), justify="center")
    for host, rep in reports.items():
        by = {f["id"]: f["status"] for f in rep.get("findings", [])}
        cells = [Text(_MARK[by[i]][0], style=_MARK[by[i]][1]) if i in by else Text("") for i in ids]
        ready = Text("yes", style="green") if rep.get("ready") else Text("no", style="bold red")
        table.add_row(Text(host), Text(rep.get("kernel_release", rep.get("error", "?"))), ready, *cells)
    for host, why in unreachable.items():
        table.add_row(Text(host), Text(why[:60]), Text("unreachable", style="bold red"), *[Text("") for _ in ids])
    console.print(table)
    fixes = [(h, f) for h, rep in reports.items() for f in rep.get("findings", []) if f["status"] == "fail" and f["remedy"]]
    if fixes:
        console.print(Text("Fixes:", style="bold"))
        for host, f in fixes:
            console.print(Text(f"  {host} {f['id']}: ", style="bold") + Text(f["remedy"]), soft_wrap=True)


def _targets(ansible: str, argv_tail: list[str], env: dict) -> list[str]:
    """The hosts the play will run on (inventory, play pattern and --limit applied), from --list-hosts."""
    p = subprocess.run([ansible, *argv_tail, "--list-hosts"], capture_output=True, text=True, env=env,
                       stdin=subprocess.DEVNULL)
    hosts, seen = [], False
    for line in p.stdout.splitlines():
        if line.strip().startswith("hosts ("):
            seen = True
            continue
        if seen and line.startswith("      ") and line.strip():
            hosts.append(line.strip())
        elif seen and line.strip():
            seen = False
    return hosts


def _failures(stdout: str) -> dict[str, str]:
    """host -> first line of Ansible's message, from the default callback's 'fatal: [h]: ... => {json}' lines."""
    out: dict[str, str] = {}
    for line in stdout.splitlines():
        if not line.startswith("fatal: ["):
            continue
        host = line[len("fatal: ["):].split("]", 1)[0]
        kind = "unreachable" if "UNREACHABLE!" in line else "collector failed"
        msg = kind
        if "=> " in line:
            try:
                msg = str(json.loads(line.split("=> ", 1)[1]).get("msg") or kind)
            except (json.JSONDecodeError, AttributeError):
                pass
        out.setdefault(host, f"{kind}: {msg.splitlines()[0] if msg else ''}")
    return out


def fleet(
    inventory: Path = typer.Option(..., "-i", "--inventory", help="Ansible inventory of the hosts to check."),
    limit: Optional[str] = typer.Option(None, "-l", "--limit", help="Ansible host pattern to limit to."),
    json_out: bool = typer.Option(False, "--json", help="Print every host's findings as JSON (stapdoctor.fleet/1)."),
    keep: Optional[Path] = typer.Option(None, "--keep", help="Keep the collected snapshots in this directory.",
                                        file_okay=False),
    playbooks: Path = typer.Option(default_playbooks(), "--playbooks", help="The playbooks directory.",
                                   file_okay=False),
) -> None:
    """Check every host of an inventory (collecting with a POSIX-sh script, deciding here) and print one table.

    Exit status: 0 when every host is ready, 1 when one is not or is unreachable, 2 usage error.
    """
    from rich.console import Console

    from .cli import _err

    if not inventory.exists():
        raise _err(f"inventory {inventory} does not exist")
    playbook = playbooks / "check.yml"
    if not playbook.is_file():
        raise _err(f"{playbook} not found: pass --playbooks DIR (the repository's playbooks/)")
    ansible = shutil.which("ansible-playbook") or str(Path(sys.executable).with_name("ansible-playbook"))
    if not os.path.exists(ansible):
        raise _err("ansible-playbook not found (pip install 'ansible-core>=2.16,<2.17')")
    dest = keep or Path(tempfile.mkdtemp(prefix="stapdoctor-fleet-"))
    dest.mkdir(parents=True, exist_ok=True)
    tail = ["-i", str(inventory), str(playbook), "-e", json.dumps({"doctor_collect_dest": str(dest.resolve())})]
    if limit:
        tail += ["-l", limit]
    env = dict(os.environ, ANSIBLE_NOCOLOR="1", ANSIBLE_CONFIG=str(playbooks / "ansible.cfg"))
    console = Console(stderr=True)
    try:
        with console.status("collecting snapshots with playbooks/check.yml …"):
            targets = _targets(ansible, tail, env)
            proc = subprocess.run([ansible, *tail], capture_output=True, text=True, env=env, stdin=subprocess.DEVNULL)
        failures = _failures(proc.stdout)
        unreachable = {h: failures.get(h, "no snapshot came back") for h in targets
                       if not (dest / f"{h}.tar.gz").exists()}
        if proc.returncode not in (0, 2, 4) and not any(dest.glob("*.tar.gz")):
            raise _err(f"ansible-playbook failed (exit {proc.returncode}): "
                       + (proc.stderr.strip().splitlines() or ["no output"])[-1], 1)
        reports = collect_reports(dest)
    finally:
        if keep is None:
            shutil.rmtree(dest, ignore_errors=True)
    for host in list(unreachable):
        if host in reports:
            unreachable.pop(host)
    all_ready = bool(reports) and all(r.get("ready") for r in reports.values()) and not unreachable
    if json_out:
        print(json.dumps({"schema": FLEET_SCHEMA, "ready": all_ready, "hosts": reports,
                          "unreachable": unreachable}, indent=2))
    else:
        print_table(Console(highlight=False), reports, unreachable)
    raise typer.Exit(0 if all_ready else 1)
