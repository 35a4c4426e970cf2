"""Presenting findings: one line per check (as moby's check-config.sh does), the fixes, and JSON."""
from __future__ import annotations

import json
from typing import Any

from .safeio import printable

REPORT_SCHEMA = "stapdoctor.check/1"
_STYLE = {"pass": ("PASS", "green"), "warn": ("WARN", "yellow"), "fail": ("FAIL", "bold red"),
          "skip": ("SKIP", "dim")}


def header(snap, ctx) -> str:
    kver, _ = ctx.kernel_version
    os_name = ctx.os.get("name") or ctx.os.get("id") or "unknown distribution"
    where = snap.source.get("host") or snap.source.get("root") or snap.source.get("loaded_from") or ""
    return f"{where}: kernel {snap.kernel_release} ({kver}), {os_name}"


def to_dict(snap, ctx, findings, ready: bool) -> dict[str, Any]:
    counts = {s: sum(1 for f in findings if f.status == s) for s in _STYLE}
    return {
        "schema": REPORT_SCHEMA,
        "ready": ready,
        "host": ctx.host,
        "kernel_release": snap.kernel_release,
        "kernel_version": ctx.kernel_version[0],
        "distribution": {k: ctx.os.get(k, "") for k in ("id", "version_id", "name")},
        "source": snap.source,
        "summary": counts,
        "findings": [f.to_dict() for f in findings],
    }


def print_json(data: dict[str, Any]) -> None:
    print(json.dumps(data, indent=2, sort_keys=False))


def print_text(console, snap, ctx, findings, ready: bool) -> None:
    from rich.text import Text

    # Host facts (PRETTY_NAME, osrelease, file contents in evidence) may carry terminal escapes: printable().
    console.print(Text("stapdoctor check — ", style="bold") + Text(printable(header(snap, ctx))), soft_wrap=True)
    width = max((len(f.id) for f in findings), default=10)
    concern = None
    for f in findings:
        if f.concern != concern:
            concern = f.concern
            console.print(Text(f"{concern}:", style="bold"))
        label, style = _STYLE.get(f.status, (f.status.upper(), ""))
        line = Text("  ")
        line.append(f"{label:4}", style=style)
        line.append(f"  {f.id:<{width}}  ")
        line.append(f"{f.title}: ", style="bold")
        line.append(printable(f.evidence))  # Text.append never interprets markup; printable() drops escapes
        console.print(line, soft_wrap=True)
    fixes = [f for f in findings if f.status in ("fail", "warn") and f.remedy]
    if fixes:
        console.print(Text("\nFixes:", style="bold"))
        for f in fixes:
            console.print(Text(f"  {f.id}: ", style="bold") + Text(printable(f.remedy)), soft_wrap=True)
    counts = {s: sum(1 for f in findings if f.status == s) for s in _STYLE}
    verdict = "READY" if ready else "NOT READY"
    tail = ", ".join(f"{n} {s}" for s, n in counts.items() if n)
    console.print(Text(f"\n{verdict}", style="bold green" if ready else "bold red") +
                  Text(f" for SystemTap user-space profiling ({tail})"))
