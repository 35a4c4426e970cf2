"""Presenting findings: one line per check (as moby's check-config.sh does), the fixes, and JSON."""
from __future__ import annotations

import json
import os
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


def _wrap(text: str, width: int, indent: int, first_used: int = 0) -> list[str]:
    """`text` in lines that fit `width` columns, without their indentation: the first continues a line already
    `first_used` wide, the others go after `indent` spaces (long paths are broken rather than overflowing)."""
    import textwrap
    width = max(width, indent + 20, first_used + 20)
    lines = textwrap.wrap(text, width=width, initial_indent=" " * first_used, subsequent_indent=" " * indent,
                          break_on_hyphens=False) or [" " * first_used]
    return [lines[0][first_used:]] + [ln[indent:] for ln in lines[1:]]


def print_text(console, snap, ctx, findings, ready: bool) -> None:
    """One block per check fitted to the terminal (COLUMNS): long evidence continues on indented lines."""
    from rich.text import Text

    # Fitted to a terminal (or to COLUMNS when set); piped into a file or grep, one finding a line.
    cols = max(40, console.width or 80) if console.is_terminal or os.environ.get("COLUMNS") else 1_000_000
    for i, part in enumerate(_wrap("stapdoctor check — " + printable(header(snap, ctx)), cols, 4)):
        console.print(Text(part, style="bold" if i == 0 else "") if i == 0 else Text(" " * 4 + part), soft_wrap=True)
    idw = max((len(f.id) for f in findings), default=10)
    lead = 2 + 4 + 2 + idw + 2
    if lead > cols // 2:        # a narrow terminal: evidence under the id instead of beside it
        lead = 8
    concern = None
    for f in findings:
        if f.concern != concern:
            concern = f.concern
            console.print(Text(f"{concern}:", style="bold"))
        label, style = _STYLE.get(f.status, (f.status.upper(), ""))
        head = Text("  ")
        head.append(f"{label:4}", style=style)
        head.append(f"  {f.id:<{idw}}  " if lead != 8 else f"  {f.id}")
        used = min(len(head.plain), cols - 20) if lead != 8 else len(head.plain)
        # plain text (never read as markup); host facts may carry terminal escapes: printable()
        body = f"{f.title}: {printable(f.evidence)}"
        if lead == 8:
            console.print(head, soft_wrap=True)
            parts, first = _wrap(body, cols, lead, first_used=lead), None
        else:
            parts = _wrap(body, cols, lead, first_used=used)
            first = parts.pop(0)
            bold = len(f.title) + 1 if first.startswith(f.title + ":") else 0
            head.append(first[:bold], style="bold")
            head.append(first[bold:])
            console.print(head, soft_wrap=True)
        for part in parts:
            console.print(Text(" " * lead + part), soft_wrap=True)
    fixes = [f for f in findings if f.status in ("fail", "warn") and f.remedy]
    if fixes:
        console.print(Text("\nFixes:", style="bold"))
        for f in fixes:
            lines = _wrap(f"{f.id}: {printable(f.remedy)}", cols, 6, first_used=2)
            first = Text("  ")
            first.append(lines[0][:len(f.id) + 1], style="bold")
            first.append(lines[0][len(f.id) + 1:])
            console.print(first, soft_wrap=True)
            for part in lines[1:]:
                console.print(Text(" " * 6 + part), soft_wrap=True)
    counts = {s: sum(1 for f in findings if f.status == s) for s in _STYLE}
    verdict = "READY" if ready else "NOT READY"
    tail = ", ".join(f"{n} {s}" for s, n in counts.items() if n)
    lines = _wrap(f"{verdict} for SystemTap user-space profiling ({tail})", cols, 4)  # first line: full width
    console.print()
    console.print(Text(verdict, style="bold green" if ready else "bold red") + Text(lines[0][len(verdict):]),
                  soft_wrap=True)
    for part in lines[1:]:
        console.print(Text(" " * 4 + part), soft_wrap=True)
