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
    names: dict[str, str] | None = None,
    unit: str = "none",
) -> dict:
    """The speedscope file as a dict (samples are root first, as the format wants).

    A frame is its key in ``stacks``: ``name`` is the function (``names`` maps keys that carry their
    module, ``main [nginx]``, to ``main``), ``file`` its module, so two ``main`` stay two frames."""
    name = _text(name)
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
                entry = {"name": _text(names.get(f, f) if names else f)}
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


def _text(s: str) -> str:
    """Valid Unicode for JSON written as UTF-8 (a non-UTF-8 file name or --title arrives with lone
    surrogates, which cannot be encoded)."""
    if s.isascii():
        return s
    try:  # the bytes of a non-UTF-8 name, shown as U+FFFD
        return s.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
    except UnicodeEncodeError:
        return s.encode("utf-8", "replace").decode("utf-8")


def write_speedscope(
    stacks: dict[tuple[str, ...], int],
    out: IO,
    *,
    name: str,
    modules: dict[str, str] | None = None,
    names: dict[str, str] | None = None,
) -> None:
    """Write speedscope JSON to a text or binary stream."""
    data = json.dumps(speedscope_document(stacks, name=name, modules=modules, names=names), ensure_ascii=False,
                      separators=(",", ":"))
    try:
        out.write(data)
    except TypeError:
        out.write(data.encode("utf-8"))
