"""Differential flame graphs: what changed between two profiles of the same program.

The graph is drawn from the AFTER profile (widths: what the program does now) and coloured by the
change of each frame since BEFORE, as FlameGraph's difffolded.pl + flamegraph.pl and inferno do;
the folded form is difffolded.pl's (``stack before after``).  Used by ``flamegraph --diff`` and by
``profile --baseline`` (against an earlier profile's output directory).
"""

from __future__ import annotations

from pathlib import Path
from typing import IO

#: what ``profile --baseline`` writes beside the normal outputs
DIFF_SVG = "flamegraph.diff.svg"
DIFF_FOLDED = "stacks.diff.folded"
#: the file of a profile's output directory the baseline is read from
BASELINE_FOLDED = "stacks.folded"


def normalised(before: dict[tuple[str, ...], int], after_total: int) -> dict[tuple[str, ...], int]:
    """BEFORE scaled to AFTER's sample total (difffolded.pl -n), so a longer run is no growth."""
    total = sum(before.values())
    if not total or total == after_total:
        return dict(before)
    return {k: v * after_total // total for k, v in before.items()}


def diff_folded_lines(before: dict[tuple[str, ...], int], after: dict[tuple[str, ...], int]) -> list[str]:
    """Sorted ``stack before after`` lines over the stacks of both (0 where a stack is absent)."""
    from .folded import folded_frame

    return sorted(f"{';'.join(map(folded_frame, k))} {before.get(k, 0)} {after.get(k, 0)}"
                  for k in before.keys() | after.keys())


def write_diff_folded(before, after, out: IO) -> None:
    """difffolded.pl's output to a text or binary stream."""
    lines = diff_folded_lines(before, after)
    for i in range(0, len(lines), 4096):
        data = "".join(line + "\n" for line in lines[i : i + 4096])
        try:
            out.write(data)
        except TypeError:
            out.write(data.encode("utf-8"))


def change_summary(before, after) -> str:
    """One line: the totals of both and the change."""
    b, a = sum(before.values()), sum(after.values())
    pct = f" ({100 * (a - b) / b:+.1f}%)" if b else ""
    return f"before {b:,} samples, after {a:,}: {a - b:+,}{pct}"


def write_baseline_diff(baseline_dir: Path, output_dir: Path, after: dict[tuple[str, ...], int] | None = None,
                        *, normalise: bool = True, title: str = "stapdoctor profile: change since baseline") -> Path:
    """Write the differential graph and folded file of OUTPUT_DIR's profile against BASELINE_DIR's.

    Both are read from their ``stacks.folded``; the samples are normalised by default, since two
    sampling windows rarely hold the same number of samples.  Returns the SVG's path."""
    from .folded import read_folded
    from .svg import render_svg

    with open(baseline_dir / BASELINE_FOLDED, "rb") as f:
        before = read_folded(f)
    if after is None:
        with open(output_dir / BASELINE_FOLDED, "rb") as f:
            after = read_folded(f)
    if normalise:
        before = normalised(before, sum(after.values()))
    with open(output_dir / DIFF_FOLDED, "w", encoding="utf-8") as f:
        write_diff_folded(before, after, f)
    svg = output_dir / DIFF_SVG
    with open(svg, "w", encoding="utf-8") as f:
        render_svg(after, f, title=title, before=before,
                   subtitle=f"against {baseline_dir}: " + change_summary(before, after)
                   + (" (before normalised to after's total)" if normalise else ""))
    return svg


def check_baseline(baseline_dir: Path) -> str | None:
    """Why BASELINE_DIR cannot serve as a baseline, or None (checked before a profile starts)."""
    if not baseline_dir.is_dir():
        return f"{baseline_dir}: not a directory (expected an earlier profile's output directory)"
    if not (baseline_dir / BASELINE_FOLDED).is_file():
        return f"{baseline_dir}: no {BASELINE_FOLDED} in it (expected an earlier profile's output directory)"
    return None
