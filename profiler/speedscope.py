"""speedscope JSON (https://www.speedscope.app/file-format-schema.json): one sampled profile whose
samples index into shared frames, weights carrying the stap counts."""

from __future__ import annotations

import json
from typing import IO

SCHEMA_URL = "https://www.speedscope.app/file-format-schema.json"


def speedscope_document(
    stacks: dict[tuple[str, ...], int],
    *,
    name: str,
    modules: dict[str, str] | None = None,
    unit: str = "none",
) -> dict:
    """The speedscope file as a dict (samples are root first, as the format wants)."""
    frame_index: dict[str, int] = {}
    frames: list[dict] = []
    samples: list[list[int]] = []
    weights: list[int] = []
    for stack, count in sorted(stacks.items()):
        if count <= 0:
            continue
        row = []
        for f in stack:
            i = frame_index.get(f)
            if i is None:
                i = frame_index[f] = len(frames)
                entry = {"name": f}
                mod = modules.get(f) if modules else None
                if mod:
                    entry["file"] = mod
                frames.append(entry)
            row.append(i)
        samples.append(row)
        weights.append(count)
    total = sum(weights)
    return {
        "$schema": SCHEMA_URL,
        "exporter": "stapdoctor",
        "name": name,
        "activeProfileIndex": 0,
        "shared": {"frames": frames},
        "profiles": [
            {
                "type": "sampled",
                "name": name,
                "unit": unit,
                "startValue": 0,
                "endValue": total,
                "samples": samples,
                "weights": weights,
            }
        ],
    }


def write_speedscope(
    stacks: dict[tuple[str, ...], int],
    out: IO,
    *,
    name: str,
    modules: dict[str, str] | None = None,
) -> None:
    """Write speedscope JSON to a text or binary stream."""
    data = json.dumps(speedscope_document(stacks, name=name, modules=modules), ensure_ascii=False,
                      separators=(",", ":"))
    try:
        out.write(data)
    except TypeError:
        out.write(data.encode("utf-8"))
