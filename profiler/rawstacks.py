"""Read the raw output of scripts/profile*.stp and write it as stap-style stacks text.

The protocol is documented in scripts/profile.stp. Lines that are not ours (a stap message
on stdout, a partial line after a crash) are kept aside, never fatal.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import IO, Iterable

from .symbols import KernelSymbols, Symbolizer, parse_addresses

PREFIX = b"stapdoctor:"


@dataclass
class RawProfile:
    """What stap printed: the stacks (count, kernel addrs, user addrs) and the counters."""

    target: int | None = None
    duration_ms: int | None = None
    begun: bool = False
    ended: bool = False
    samples: int | None = None  # from the end record (or the last tick when there is no end)
    lost: int = 0
    stacks: list[tuple[int, str, str]] = field(default_factory=list)
    ticks: int = 0
    other_lines: list[str] = field(default_factory=list)

    @property
    def stored(self) -> int:
        return sum(c for c, _k, _u in self.stacks)


def parse_line(line: bytes, prof: RawProfile) -> str | None:
    """Apply one stdout line to ``prof``; returns the record kind ("begin", "tick", ...)."""
    s = line.rstrip(b"\r\n")
    if not s.startswith(PREFIX):
        if s.strip() and len(prof.other_lines) < 50:
            prof.other_lines.append(s.decode("utf-8", "replace")[:300])
        return None
    kind, _, rest = s[len(PREFIX):].partition(b" ")
    try:
        if kind == b"stack":
            count, _, tail = rest.partition(b"\t")
            kern, _, user = tail.partition(b"\t")
            prof.stacks.append((int(count), kern.decode("ascii", "replace"), user.decode("ascii", "replace")))
            return "stack"
        nums = [int(x) for x in rest.split()]
        if kind == b"begin":
            prof.begun = True
            prof.target, prof.duration_ms = nums[0], nums[1]
        elif kind == b"tick":
            prof.ticks += 1
            if not prof.ended:
                prof.samples, prof.lost = nums[0], nums[1]
        elif kind == b"end":
            prof.ended = True
            prof.samples, prof.lost = nums[0], nums[1]
        else:
            return None
        return kind.decode()
    except (ValueError, IndexError):
        if len(prof.other_lines) < 50:
            prof.other_lines.append(s.decode("utf-8", "replace")[:300])
        return None


def read_raw(lines: Iterable[bytes]) -> RawProfile:
    prof = RawProfile()
    for line in lines:
        parse_line(line, prof)
    return prof


@dataclass
class WriteStats:
    stacks: int = 0
    empty: int = 0  # samples whose stack had no address at all
    truncated: int = 0  # stacks cut at MAXSTRINGLEN


def write_stacks_text(prof: RawProfile, out: IO[str], user: Symbolizer, kernel: KernelSymbols | None,
                      maxstringlen: int | None) -> WriteStats:
    """Write every stack the way print_stack()+print_ustack()+"\\t%d" would have: kernel frames
    (leaf first), then user frames (leaf first), then a TAB and the count."""
    st = WriteStats()
    for count, kern, usr in prof.stacks:
        kaddrs, kcut = parse_addresses(kern, maxstringlen)
        uaddrs, ucut = parse_addresses(usr, maxstringlen)
        if kcut or ucut:
            st.truncated += 1
        if not kaddrs and not uaddrs:
            st.empty += count
            continue
        lines = []
        if kaddrs:
            ks = kernel or KernelSymbols("/nonexistent")
            lines += [ks.frame(a) for a in kaddrs]
        lines += [user.frame(a, caller=i > 0) for i, a in enumerate(uaddrs)]
        out.write("\n".join(lines))
        out.write(f"\n\t{count}\n")
        st.stacks += 1
    return st
