"""Collapse SystemTap ``print_ustack`` + count output into folded stacks.

stap prints each aggregated stack leaf first, one frame per line, followed by a count line
(``\\t8282``).  Three frame shapes occur::

     0x4005f4 : main+0x1c/0x30 [/path/bin]                      resolved
     0x7f..5e : 0x7f..5e [/usr/lib64/libfoo.so+0x24d5e/0x1d4000]  module known, no symbol
     0x7f..60 : 0x7f..60                                        nothing known

plus variants seen in the wild: no `` : name`` part (`` 0x7f.. [/lib/libc.so.6+0x27b4a/0x1de000]``),
a trailing `` (inexact)``, module paths truncated by stap with a leading ``...`` or without the
closing ``]``.  Lines are read as bytes and streamed: memory grows with the number of unique stacks
(plus a bounded cache of frame lines), never with the input size.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from typing import Iterable

#: Frame-line cache entries before the cache is dropped (keeps memory bounded on hostile input).
_CACHE_LIMIT = 400_000
#: How many stap messages / skipped lines are kept verbatim (the rest are only counted).
_KEEP_MESSAGES = 200


@dataclass
class Collapsed:
    """Parsed stacks (root first) with what stap said on the side and what looked wrong."""

    stacks: dict[tuple[str, ...], int] = field(default_factory=dict)
    messages: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    #: frame name -> module basename (first module seen for that name); drives the module palette.
    modules: dict[str, str] = field(default_factory=dict)

    @property
    def total(self) -> int:
        return sum(self.stacks.values())


def _decode(b: bytes) -> str:
    """Bytes from stap to valid text: invalid UTF-8 becomes U+FFFD, never an exception."""
    return b.decode("utf-8", errors="replace")


_CONTROL = re.compile("[\x00-\x08\x0a-\x1f\x7f]")


def _clean_name(name: str) -> str:
    """Make a name safe for every viewer: control characters (a newline would end a folded record)
    become U+FFFD.  ``;`` stays; only the folded writer has to replace it."""
    if _CONTROL.search(name):
        name = _CONTROL.sub("\ufffd", name)
    return name


def _module_basename(mod: str) -> str:
    """``/usr/lib64/libc.so.6+0x27b4a/0x1de000`` -> ``libc.so.6``; ``...me/x/prog`` -> ``prog``."""
    plus = mod.find("+0x")
    if plus > 0:
        mod = mod[:plus]
    mod = mod.rstrip("/")
    return os.path.basename(mod) or mod


def _is_hex_offset(s: str) -> bool:
    """True for ``0x1c/0x30`` (the ``+off/size`` tail of a symbol)."""
    off, slash, size = s.partition("/")
    if not off.startswith("0x"):
        return False
    try:
        int(off, 16)
        if slash:
            int(size, 16)
    except ValueError:
        return False
    return True


def parse_frame(text: str) -> tuple[str, str]:
    """One stap frame line (already stripped, decoded) -> (frame name, module basename or "").

    Unresolved frames keep the module so a person sees which library lacks symbols:
    ``[libc.so.6+0x24d5e]``; with nothing known the address itself is the name.
    """
    if text.endswith("(inexact)"):
        text = text[: -len("(inexact)")].rstrip()
    addr, sep, rest = text.partition(" : ")
    if not sep:
        # ' 0x7fbe2af0bb4a [/usr/lib64/libc.so.6+0x27b4a/0x1de000]' or a bare address
        sp = text.find(" ")
        if sp < 0:
            return text, ""
        addr, rest = text[:sp], text[sp + 1 :].lstrip()
        if not rest.startswith("["):
            return addr, ""
        rest = addr + " " + rest
    module_raw = ""
    lb = rest.rfind(" [")
    if lb >= 0:
        module_raw = rest[lb + 2 :]
        if module_raw.endswith("]"):
            module_raw = module_raw[:-1]
        sym = rest[:lb].rstrip()
    else:
        sym = rest.strip()
    module = _module_basename(module_raw) if module_raw else ""
    # strip '+0x1c/0x30'
    plus = sym.rfind("+0x")
    if plus > 0 and _is_hex_offset(sym[plus + 1 :]):
        sym = sym[:plus]
    if not sym or sym == addr or (sym.startswith("0x") and _is_hex_offset(sym)):
        # unresolved: keep the module (and the offset inside it, which identifies the code)
        if module:
            plus = module_raw.find("+0x")
            off = module_raw[plus + 1 :].partition("/")[0] if plus > 0 else addr
            return _clean_name(f"[{module}+{off}]"), module
        return _clean_name(sym or addr), ""
    return _clean_name(sym), module


def _looks_like_frame(s: bytes) -> bool:
    """A stap frame line starts with a hex address (also truncated ``...`` shapes are rare)."""
    if not s.startswith(b"0x") or len(s) < 3:
        return False
    c = s[2:3]
    return c in b"0123456789abcdefABCDEF"


def collapse_stap(lines: Iterable[bytes]) -> Collapsed:
    """Stream stap output lines (bytes, any line ending) into a :class:`Collapsed`.

    Count lines end a stack; ``WARNING:``/``ERROR:`` lines are collected, never framed; other text
    is skipped and counted; a final stack without a count is reported and dropped (its weight is
    unknown), every complete stack before it is kept.
    """
    result = Collapsed()
    stacks = result.stacks
    modules = result.modules
    messages = result.messages
    cache: dict[bytes, str] = {}
    frames: list[str] = []
    skipped = 0
    skipped_examples: list[str] = []
    n_messages = 0
    orphan_counts = 0
    lineno = 0
    cache_get = cache.get
    frames_append = frames.append

    for line in lines:
        lineno += 1
        name = cache_get(line)
        if name is not None:
            frames_append(name)
            continue
        s = line.strip()
        if not s:
            continue
        if _looks_like_frame(s):
            name, module = parse_frame(_decode(s))
            if module and name not in modules:
                modules[name] = module
            if len(cache) >= _CACHE_LIMIT:
                cache.clear()
            cache[line] = name
            frames_append(name)
            continue
        if s.isdigit():
            if frames:
                key = tuple(reversed(frames))
                stacks[key] = stacks.get(key, 0) + int(s)
                frames.clear()
            else:
                orphan_counts += 1
            continue
        if s.startswith((b"WARNING:", b"ERROR:")):
            n_messages += 1
            if len(messages) < _KEEP_MESSAGES:
                messages.append(_decode(s))
            continue
        skipped += 1
        if len(skipped_examples) < 3:
            skipped_examples.append(f"line {lineno}: {_decode(s)[:80]}")

    if frames:
        result.problems.append(
            f"the last stack ({len(frames)} frames, leaf {frames[0]!r}) has no count line "
            "(output cut short?); it was dropped, the complete stacks before it are kept"
        )
    if n_messages > len(messages):
        result.problems.append(
            f"{n_messages} stap messages, only the first {len(messages)} kept"
        )
    if skipped:
        result.problems.append(
            f"{skipped} lines that are neither frames nor counts were skipped ("
            + "; ".join(skipped_examples)
            + ")"
        )
    if orphan_counts:
        result.problems.append(f"{orphan_counts} count lines without a stack before them were ignored")
    return result
