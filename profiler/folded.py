"""Folded stacks (``a;b;c 42``, root first): the lingua franca of FlameGraph, inferno, speedscope."""

from __future__ import annotations

from typing import IO, Iterable

from .collapse import Collapsed, clean_name, frame_keys


def folded_frame(name: str) -> str:
    # ';' separates frames in this format (Rust's `[u8; 4]`, a hostile `&quot;`): it becomes ','
    return name.replace(";", ",") if ";" in name else name


def folded_lines(stacks: dict[tuple[str, ...], int]) -> list[str]:
    """Sorted folded lines (without newline); sorted so output is stable and diffable."""
    return sorted(f"{';'.join(map(folded_frame, stack))} {count}" for stack, count in stacks.items())


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


#: more digits than this is no sample count (and int() of >4300 digits raises)
_MAX_DIGITS = 18


def _count(text: str) -> int | None:
    """An ASCII decimal count of sane length, else None (``²``, ``1e309``, 5,000 digits: None)."""
    if text.isascii() and text.isdigit() and len(text) <= _MAX_DIGITS:
        return int(text)
    return None


def split_line(line: str) -> tuple[str, int | None, int | None]:
    """``stack [count_before] count`` -> (stack text, before or None, count); count None: not a stack."""
    stack_text, sep, count_text = line.rstrip().rpartition(" ")
    count = _count(count_text.strip()) if sep else None
    if count is None or not stack_text.strip():
        return line, None, None
    # differential folded lines (difffolded.pl) carry two counts
    head, sep2, maybe = stack_text.rpartition(" ")
    before = _count(maybe) if sep2 and head.strip() else None
    if before is not None:
        stack_text = head
    return stack_text, before, count


def collapse_folded(lines: Iterable[bytes | str], *, demangle: bool = True, before: dict | None = None) -> Collapsed:
    """Parse folded text into a :class:`Collapsed` (bad lines are reported in ``problems``).

    A line of a differential file (``stack before after``) counts as ``after``; pass a dict as
    ``before`` to get the first counts too.  A line starting with ``#`` is a comment unless it is a
    stack with its count (flamegraph.pl has no comments; a frame may start with ``#``).  stap's
    ``WARNING:``/``ERROR:`` lines are collected as messages."""
    result = Collapsed()
    counts: dict[tuple[str, ...], int] = {}
    befores: dict[tuple[str, ...], int] = {}
    bad = 0
    examples: list[str] = []
    for lineno, line in enumerate(lines, 1):
        if isinstance(line, bytes):
            line = line.decode("utf-8", errors="replace")
        line = line.rstrip("\r\n")
        if not line.strip():
            continue
        stack_text, b, count = split_line(line)
        if count is None:
            if line.startswith("#"):
                continue
            if line.startswith(("WARNING:", "ERROR:")):
                if len(result.messages) < 200:
                    result.messages.append(clean_name(line))
                continue
            bad += 1
            if len(examples) < 3:
                examples.append(f"line {lineno}: {clean_name(line[:80])}")
            continue
        key = tuple(clean_name(f) for f in stack_text.split(";") if f != "")
        if not key:
            bad += 1
            continue
        counts[key] = counts.get(key, 0) + count
        if b is not None:
            befores[key] = befores.get(key, 0) + b
    if bad:
        result.problems.append(
            f"{bad} lines are not 'frame;frame;... count' and were skipped (" + "; ".join(examples) + ")"
        )
    frames = {(f, "") for k in counts for f in k}
    key_of, _, _ = frame_keys(frames, demangle, result.problems)
    if any(key_of[(f, "")] != f for f, _ in frames):
        counts = _rekey(counts, key_of)
        befores = _rekey(befores, key_of)
    result.stacks = counts
    if before is not None:
        before.update(befores)
    return result


def _rekey(stacks: dict[tuple[str, ...], int], key_of) -> dict[tuple[str, ...], int]:
    out: dict[tuple[str, ...], int] = {}
    for k, c in stacks.items():
        nk = tuple(key_of[(f, "")] for f in k)
        out[nk] = out.get(nk, 0) + c
    return out


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
        if not s or s.startswith((b"WARNING:", b"ERROR:")):
            continue  # stap's messages say nothing about the format
        if s.startswith(b"0x"):
            return False
        head, sep, tail = s.rpartition(b" ")
        if sep and tail.isdigit() and len(tail) <= _MAX_DIGITS and head.strip():
            folded = True
    return folded
