"""Folded stacks (``a;b;c 42``, root first): the lingua franca of FlameGraph, inferno, speedscope."""

from __future__ import annotations

from typing import IO, Iterable

from .collapse import Collapsed


def folded_lines(stacks: dict[tuple[str, ...], int]) -> list[str]:
    """Sorted folded lines (without newline); sorted so output is stable and diffable."""
    return sorted(f"{';'.join(stack)} {count}" for stack, count in stacks.items())


def write_folded(stacks: dict[tuple[str, ...], int], out: IO) -> None:
    """Write folded text; ``out`` may be a text or a binary stream (UTF-8 is written)."""
    data = "".join(line + "\n" for line in folded_lines(stacks))
    if isinstance(out, (bytes, bytearray)):  # pragma: no cover - defensive
        raise TypeError("out must be a stream")
    try:
        out.write(data)
    except TypeError:
        out.write(data.encode("utf-8"))


def collapse_folded(lines: Iterable[bytes | str]) -> Collapsed:
    """Parse folded text into a :class:`Collapsed` (bad lines are reported in ``problems``)."""
    result = Collapsed()
    stacks = result.stacks
    bad = 0
    examples: list[str] = []
    for lineno, line in enumerate(lines, 1):
        if isinstance(line, bytes):
            line = line.decode("utf-8", errors="replace")
        line = line.rstrip("\r\n")
        if not line.strip() or line.startswith("#"):
            continue
        stack_text, sep, count_text = line.rstrip().rpartition(" ")
        count_text = count_text.strip()
        if not sep or not stack_text.strip() or not count_text.isdigit():
            bad += 1
            if len(examples) < 3:
                examples.append(f"line {lineno}: {line[:80]}")
            continue
        # differential folded files carry two counts: use the last one (the "after" profile)
        head, sep2, maybe = stack_text.rpartition(" ")
        if sep2 and maybe.isdigit() and head.strip():
            stack_text = head
        key = tuple(f for f in stack_text.split(";") if f != "")
        if not key:
            bad += 1
            continue
        stacks[key] = stacks.get(key, 0) + int(count_text)
    if bad:
        result.problems.append(
            f"{bad} lines are not 'frame;frame;... count' and were skipped (" + "; ".join(examples) + ")"
        )
    return result


def read_folded(lines: Iterable[bytes | str]) -> dict[tuple[str, ...], int]:
    """Folded text -> {stack (root first): count}."""
    return collapse_folded(lines).stacks


def looks_folded(sample: bytes) -> bool:
    """Guess whether the first bytes of a file are folded stacks rather than stap output."""
    for raw in sample.splitlines()[:50]:
        s = raw.strip()
        if not s or s.startswith(b"#"):
            continue
        if s.startswith(b"0x") or s.isdigit() or s.startswith((b"WARNING:", b"ERROR:")):
            return False
        head, sep, tail = s.rpartition(b" ")
        if sep and tail.isdigit() and head.strip():
            return True
    return False
