"""Folded stacks (``a;b;c 42``, root first): the lingua franca of FlameGraph, inferno, speedscope."""

from __future__ import annotations

from typing import IO, Iterable

from .collapse import Collapsed


def _frame(name: str) -> str:
    # ';' separates frames in this format (Rust's `[u8; 4]`, a hostile `&quot;`): it becomes ','
    return name.replace(";", ",") if ";" in name else name


def folded_lines(stacks: dict[tuple[str, ...], int]) -> list[str]:
    """Sorted folded lines (without newline); sorted so output is stable and diffable."""
    return sorted(f"{';'.join(map(_frame, stack))} {count}" for stack, count in stacks.items())


def write_folded(stacks: dict[tuple[str, ...], int], out: IO) -> None:
    """Write folded text, sorted; ``out`` may be a text or a binary stream (UTF-8 is written)."""
    try:
        out.write("")
        binary = False
    except TypeError:
        binary = True
    lines = folded_lines(stacks)
    for i in range(0, len(lines), 4096):  # in pieces: never a second copy of the whole text
        data = "".join(line + "\n" for line in lines[i : i + 4096])
        out.write(data.encode("utf-8") if binary else data)


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
    """Guess whether the first bytes of a file are folded stacks rather than stap output.

    Any stap frame line (``0x...``) decides for stap, since stray text before the stacks may end in
    a number; otherwise one ``frames count`` line decides for folded."""
    folded = False
    for raw in sample.splitlines()[:400]:
        s = raw.strip()
        if not s or s.startswith(b"#"):
            continue
        if s.startswith(b"0x"):
            return False
        head, sep, tail = s.rpartition(b" ")
        if sep and tail.isdigit() and head.strip():
            folded = True
    return folded
