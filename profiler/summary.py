"""Terminal top-N: which functions burn samples themselves (self) and under them (total)."""

from __future__ import annotations

import re
from typing import NamedTuple

from stapdoctor.doctor.safeio import TERMINAL_UNSAFE

# the doctor's rule (escape sequences, bidi controls, lone surrogates), tab and newline too: one line
_UNPRINTABLE = re.compile(f"[\t\n{TERMINAL_UNSAFE}]")
#: characters of one name shown in the terminal (Rich wraps a 10 MB name for a minute)
TERMINAL_NAME_MAX = 300


def terminal_text(s: str, limit: int = 2000) -> str:
    """Text safe to print: control characters (escape sequences) shown as U+FFFD, length capped."""
    if len(s) > limit:
        s = s[:limit] + f"… ({len(s) - limit:,} more characters)"
    return _UNPRINTABLE.sub("\ufffd", s)


class Row(NamedTuple):
    name: str
    self: int
    total: int


def top_functions(stacks: dict[tuple[str, ...], int], n: int = 20) -> list[Row]:
    """Rows sorted by self samples, then total; recursion counts a stack once in ``total``."""
    self_c: dict[str, int] = {}
    total_c: dict[str, int] = {}
    for stack, count in stacks.items():
        if not stack or count <= 0:
            continue
        leaf = stack[-1]
        self_c[leaf] = self_c.get(leaf, 0) + count
        for f in set(stack) if len(stack) > 1 else stack:
            total_c[f] = total_c.get(f, 0) + count
    rows = [Row(f, self_c.get(f, 0), t) for f, t in total_c.items()]
    rows.sort(key=lambda r: (-r.self, -r.total, r.name))
    return rows[:n] if n and n > 0 else rows


def print_top(rows: list[Row], *, total_samples: int | None = None, console=None, title: str | None = None) -> None:
    """Render rows as a Rich table (names are printed as text, never as Rich markup, and without control
    characters: a frame name must not drive the terminal)."""
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    console = console or Console()
    table = Table(title=terminal_text(title or "Top functions"), title_justify="left")
    table.add_column("Self", justify="right")
    table.add_column("Self %", justify="right")
    table.add_column("Total", justify="right")
    table.add_column("Total %", justify="right")
    table.add_column("Function", overflow="fold")
    for r in rows:
        sp = f"{100 * r.self / total_samples:.2f}" if total_samples else ""
        tp = f"{100 * r.total / total_samples:.2f}" if total_samples else ""
        table.add_row(f"{r.self:,}", sp, f"{r.total:,}", tp, Text(terminal_text(r.name, TERMINAL_NAME_MAX)))
    console.print(table)
