"""Collapse SystemTap ``print_ustack`` + count output into folded stacks.

stap prints each aggregated stack leaf first, one frame per line, followed by a count line
(``\\t8282``).  Three frame shapes occur::

     0x4005f4 : main+0x1c/0x30 [/path/bin]                      resolved
     0x7f..5e : 0x7f..5e [/usr/lib64/libfoo.so+0x24d5e/0x1d4000]  module known, no symbol
     0x7f..60 : 0x7f..60                                        nothing known

plus variants seen in the wild: no `` : name`` part (`` 0x7f.. [/lib/libc.so.6+0x27b4a/0x1de000]``),
a trailing `` (inexact)``, module paths truncated by stap with a leading ``...`` or without the
closing ``]``.  Input is read as bytes in fixed-size chunks: memory grows with the number of unique
stacks, never with the input size.
"""

from __future__ import annotations

import itertools
import os
import re
from collections import defaultdict
from dataclasses import dataclass, field
from operator import itemgetter
from typing import Collection, Iterable

#: How many stap messages / skipped lines are kept verbatim (the rest are only counted).
_KEEP_MESSAGES = 200


@dataclass
class Collapsed:
    """Parsed stacks (root first) with what stap said on the side and what looked wrong."""

    stacks: dict[tuple[str, ...], int] = field(default_factory=dict)
    messages: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    #: frame key -> module basename (the palette, speedscope's ``file``); a key is unique per module
    modules: dict[str, str] = field(default_factory=dict)
    #: frame key -> the function's name, for keys that carry their module (``main [nginx]`` -> ``main``)
    names: dict[str, str] = field(default_factory=dict)

    @property
    def total(self) -> int:
        return sum(self.stacks.values())


def _decode(b: bytes) -> str:
    """Bytes from stap to valid text: invalid UTF-8 becomes U+FFFD, never an exception."""
    return b.decode("utf-8", errors="replace")


_CONTROL = re.compile("[\x00-\x08\x0a-\x1f\x7f]")


def clean_name(name: str) -> str:
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
            return clean_name(f"[{module}+{off}]"), clean_name(module)
        return clean_name(sym or addr), ""
    return clean_name(sym), clean_name(module)


def _looks_like_frame(s: bytes) -> bool:
    """A stap frame line starts with a hex address (also truncated ``...`` shapes are rare)."""
    if not s.startswith(b"0x") or len(s) < 3:
        return False
    c = s[2:3]
    return c in b"0123456789abcdefABCDEF"


# --- the fast paths -----------------------------------------------------------------------------
# Per frame line, a Python loop would spend more than perl does.  So a chunk of lines is looked up
# in a dict of frame lines seen before, in C (split, then map), and Python works per stack and per
# line it has not seen (see collapse_stap).  When frame lines repeat (fixed call sites), that is
# all.  When they do not (a sampled PC varies, stacks of many processes), two things vary from line
# to line without changing the frame: the address, and a resolved symbol's +offset/size.  Then the
# chunk is read as records: the offsets are made constant by one substitution, and the chunk is split
# at each line's "ADDR : ", so the address never reaches a key.  A record is the rest of its line,
# followed by the lines up to the next record, if any (the count line of a stack, a message): these
# records repeat, and are looked up in a dict of their own (a line and a record with the same bytes
# may be different frames).  Where the substitution or the missing address might change what
# parse_frame says, the line is read as it was (see _Frames.record; a test compares every path with
# parse_frame line by line).
_X = rb"0x[0-9a-fA-F]+"
#: where a chunk read as records is split: a line's "ADDR : " (the address parse_frame partitions at)
_SPLIT = re.compile(rb"\n[ \t]*" + _X + rb" : ")
#: a symbol's "+0xOFF/0xSIZE [": parse_frame strips it whole when it is before the last "[" of its line
#: and not where the name starts; where either may not hold, the line is read as it was (_Frames.record)
_N_OFFSET = re.compile(rb"\+" + _X + rb"/" + _X + rb" \[")
_OFFSET0 = b"+0x0/0x0 ["
#: an unresolved frame's record, "0xADDR [PATH+0xOFF/0xSIZE]" with no "[", "]" nor "+0x" in PATH, to the
#: end of its line: its name, "[basename(PATH)+0xOFF]", differs from line to line, so the dict cannot
#: help and these are named in one pass over the chunk instead of one Python call each (see
#: _Frames.prefill).  The pass looks for " : 0x", not for a line's start (two thirds of the time): a
#: match that is not a record (" : " twice in a line) names a string no record has, or names it right,
#: as the name depends on nothing before it
_N_UNRESOLVED = re.compile(rb" : (0x[0-9a-fA-F]+ \[((?:[^\n\[\]+]|\+(?!0x))+)\+(0x[0-9a-fA-F]+)/0x[0-9a-fA-F]+\])(?=\n)")
#: a record that is a bare address (nothing known): parse_frame names it by itself
_BARE = re.compile(_X)
#: the common resolved frame, a line or a record: "[ADDR : ]SYM+0xOFF/0xSIZE [PATH]" with no "[" in
#: PATH and SYM not "0x..." -- parse_frame names it (SYM, basename(PATH)); read by one match instead of
#: parse_frame's steps (see _Frames.parse)
_RESOLVED_RECORD = re.compile(rb"(?!0x)(.+?)\+" + _X + rb"/" + _X + rb" \[([^\n\[]*)\]")
_RESOLVED_LINE = re.compile(rb"[ \t]*" + _X + rb" : " + _RESOLVED_RECORD.pattern)
_CHUNK = 1 << 18
#: bytes of a chunk whose lines, when most of them are in the cache already, say it is not read as records
_PEEK = 1 << 14
#: bytes of a chunk whose repeated lines decide whether it is read as records (when the peek did not)
_SAMPLE = 1 << 16
#: a count of more digits is taken for garbage (10**18 samples is ~30 years at 1 GHz)
_MAX_COUNT_DIGITS = 18
#: entries of each cache before it is dropped (memory stays bounded on any input)
_CACHE_LIMIT = 200_000


def _chunks(lines) -> Iterable[bytes]:
    """The input as chunks of whole lines, each starting with a newline and ending with one."""
    rest = b"\n"
    read = getattr(lines, "read", None)
    if read is not None:
        parts = [rest]  # a line longer than a chunk is gathered here (no quadratic +=)
        while True:
            data = read(_CHUNK)
            if not data:
                break
            if isinstance(data, str):
                data = data.encode("utf-8", "surrogateescape")
            cut = data.rfind(b"\n")
            if cut < 0:
                parts.append(data)
                continue
            parts.append(memoryview(data)[: cut + 1])  # copied once, by the join
            yield b"".join(parts)
            parts = [b"\n" + data[cut + 1 :]]
        rest = b"".join(parts)
    else:
        buf: list[bytes] = [rest]
        size = 0
        for line in lines:
            if isinstance(line, str):
                line = line.encode("utf-8", "surrogateescape")
            if not line.endswith(b"\n"):
                line += b"\n"
            buf.append(line)
            size += len(line)
            if size >= _CHUNK:
                yield b"".join(buf)
                buf = [b"\n"]
                size = 0
        rest = b"".join(buf)
    if rest != b"\n":
        yield rest if rest.endswith(b"\n") else rest + b"\n"


def _records(subbed: bytes) -> list[bytes]:
    """A chunk whose offsets _N_OFFSET made constant, read as records (see the comment above):
    element 0 is what comes before the first record (the chunk's first newline and the lines before
    it), element k the rest of the k-th line that has an "ADDR : " and the lines after it, each after
    a newline."""
    return _SPLIT.split(subbed)


def _damaged(record: bytes) -> bool:
    """True for a record in which _N_OFFSET may have rewritten more than the frame's own offset: a "["
    follows its first "+0x0/0x0 [" (a name holding "+0x1/0x2 [", a module path holding "["), or the
    name starts with it (parse_frame keeps an offset where the name starts).  Lines with different
    names can give such a record, so it is never cached: its line is parsed as it was."""
    k = record.find(_OFFSET0)
    return k >= 0 and (k == 0 or record.find(b"[", k + len(_OFFSET0)) >= 0)


def _read_as_records(chunk: bytes, cache_contains, last: bool) -> bool:
    """Whether a chunk is read as records: when its lines are mostly new (a peek at its first lines,
    looked up in the line cache: where call sites repeat, they are there after the first chunk) and
    hardly repeat even within the chunk (a few %, where the stacks of one program share callers: a
    quarter).  ``last``: the chunk before was read as records; then new lines need no sample."""
    peek = chunk[:_PEEK].split(b"\n")
    if sum(map(cache_contains, peek)) * 2 >= len(peek):
        return False
    if last:
        return True
    some = chunk[:_SAMPLE].split(b"\n")
    return len(set(some)) > 0.9 * len(some)


class _Frames:
    """Frame line or record (bytes) -> id of its (name, module) pair: ``cache`` holds the lines seen,
    ``records`` the records (both looked up in C by collapse_stap), ``parse`` and ``record`` the rest."""

    def __init__(self) -> None:
        self.cache: dict[bytes, int] = {}
        self.records: dict[bytes, int] = {}
        self.pair_id: dict[tuple[str, str], int] = {}
        #: a module's PATH as the line holds it -> the module's name
        self.module_of: dict[bytes, str] = {}

    def _module(self, path: bytes) -> str:
        m = self.module_of.get(path)
        if m is None:
            if len(self.module_of) >= _CACHE_LIMIT:
                self.module_of.clear()
            m = self.module_of[path] = clean_name(_module_basename(_decode(path))) if path else ""
        return m

    def _id(self, pair: tuple[str, str]) -> int:
        return self.pair_id.setdefault(pair, len(self.pair_id))

    def prefill(self, chunk: bytes) -> list[bytes]:
        """Put the chunk's unresolved records (see _N_UNRESOLVED) in the record cache, named as
        parse_frame names them, so the lookup finds them: where every sampled PC differs, 4% of frames
        are such lines, and one call of parse each was a tenth of the run.  Returns them: they hardly
        repeat, and the caller takes them out again after the chunk's lookup (kept, they would make the
        cache six times larger, and every lookup slower)."""
        if len(self.records) >= _CACHE_LIMIT:
            self.records.clear()
        records = self.records
        pair_id = self.pair_id
        module = self._module
        added = []
        module_of = self.module_of
        for rec, path, off in _N_UNRESOLVED.findall(chunk):
            m = module_of.get(path)
            if m is None:
                m = module(path)
            if m:  # else (a path of slashes) parse decides
                pair = (f"[{m}+{off.decode()}]", m)
                i = pair_id.get(pair)
                if i is None:
                    i = pair_id[pair] = len(pair_id)
                records[rec] = i
                added.append(rec)
        return added

    def parse(self, line: bytes) -> int:
        """The id of a frame line the cache does not know, cached.  The common resolved shape is read by
        one regex match (parse_frame's steps for each new line were a tenth of the run where call
        sites repeat); anything else by parse_frame, the definition."""
        m = _RESOLVED_LINE.fullmatch(line)
        if m is not None:
            sym, path = m.groups()
            i = self._id((clean_name(_decode(sym)), self._module(path)))
        else:
            i = self._id(parse_frame(_decode(line.strip())))
        if len(self.cache) >= _CACHE_LIMIT:
            self.cache.clear()
        self.cache[line] = i
        return i

    def record(self, rec: bytes, line_as_it_was, at: int) -> int:
        """The id of a record the record cache does not know; ``line_as_it_was(at)`` gives its line.

        A record is cached when its name cannot depend on what the record lost: not _damaged, and
        named alike after two different addresses (parse_frame's answer either ignores the address or
        holds it).  Otherwise its line is parsed, uncached: records of other lines look the same."""
        m = _RESOLVED_RECORD.fullmatch(rec)
        if m is not None and not _damaged(rec):
            sym, path = m.groups()
            i = self._id((clean_name(_decode(sym)), self._module(path)))
        elif _BARE.fullmatch(rec):
            i = self._id((rec.decode(), ""))
        else:
            text = _decode(rec)
            pair = parse_frame(("0x0 : " + text).strip())
            if _damaged(rec) or pair != parse_frame(("0x1 : " + text).strip()):
                return self._id(parse_frame(_decode(line_as_it_was(at).strip())))
            i = self._id(pair)
        if len(self.records) >= _CACHE_LIMIT:
            self.records.clear()
        self.records[rec] = i
        return i


def collapse_stap(lines: Iterable[bytes], *, demangle: bool = True) -> Collapsed:
    """Stream stap output (a binary file, or lines as bytes) into a :class:`Collapsed`.

    A stack is a run of frame lines (leaf first) ended by its count line.  ``WARNING:``/``ERROR:``
    lines are stap's messages, printed to stderr and often merged into the same file between the
    lines of a stack: they are collected, never framed, and do not end a stack.  Any other line (a
    header, a shell prompt, a separator) ends the stack in progress: that stack has no count, so its
    weight is unknown and it is reported and dropped, as is a final stack cut short.  A blank line
    is skipped and ends nothing: scripts print one between the frames and the count or between
    records (``print_ustack(s); printf("\n%d\n", n)``), and stackcollapse-stap.pl reads it so too.
    ``demangle`` turns C++/Rust symbol names into readable ones (see :mod:`.demangle`).
    """
    result = Collapsed()
    messages = result.messages
    counts: dict[tuple[int, ...], int] = {}
    frames = _Frames()
    pending: list[int] = []  # frame ids of the stack in progress, leaf first
    pending_line = 0
    cut_short = 0
    cut_example = ""
    skipped = 0
    skipped_examples: list[str] = []
    n_messages = 0
    orphan_counts = 0
    bad_counts = 0
    lineno = 0  # lines before the chunk

    def end_without_count(reason_line: int) -> None:
        nonlocal cut_short, cut_example
        cut_short += 1
        if not cut_example:
            leaf = next(p for p, i in frames.pair_id.items() if i == pending[0])[0]
            cut_example = f"the stack at line {pending_line}, leaf {leaf[:80]!r}" + (
                f", ended by line {reason_line}" if reason_line else "")
        pending.clear()

    def other_line(line: bytes, at: int) -> None:
        """A line that is no cached frame: a count, a frame line not seen yet, a message, a blank,
        anything else; ``at`` is its line number."""
        nonlocal pending_line, skipped, n_messages, orphan_counts, bad_counts
        s = line.strip()
        if not s:
            return  # a blank line ends nothing (see the docstring)
        if s.isdigit():  # first: the line the cache never knows (a frame line is no number)
            if len(s) > _MAX_COUNT_DIGITS:
                bad_counts += 1
                pending.clear()
            elif pending:
                key = tuple(pending)
                pending.clear()
                counts[key] = counts.get(key, 0) + int(s)
            else:
                orphan_counts += 1
            return
        if _looks_like_frame(s):
            if not pending:
                pending_line = at
            pending.append(frames.parse(line))
            return
        if s.startswith((b"WARNING:", b"ERROR:")):
            n_messages += 1
            if len(messages) < _KEEP_MESSAGES:
                messages.append(clean_name(_decode(s)))
            return
        if pending:
            end_without_count(at)
        skipped += 1
        if len(skipped_examples) < 3:
            skipped_examples.append(f"line {at}: {clean_name(_decode(s[:240]))[:80]}")

    def cached_run(ids: list, i: int, end: int, at: int) -> int:
        """Add the frames ids[i:j] (cached, so not None; the first on line ``at``) to the stack in
        progress, where j is the index of the next None before ``end``, or ``end``: returns j."""
        nonlocal pending_line
        try:
            j = ids.index(None, i, end)
        except ValueError:
            j = end
        if j > i:
            if not pending:
                pending_line = at
            pending.extend(ids[i:j])
        return j

    cache_get = frames.cache.get
    records_get = frames.records.get
    records_pop = frames.records.pop
    cache_contains = frames.cache.__contains__
    as_records = False
    for chunk in _chunks(lines):
        # Every line (or record) is looked up in C; a frame seen before gives its id, anything else
        # None, and only the Nones cost Python: the next one is found by list.index, the frames before
        # it are added to the stack by a slice.
        as_records = _read_as_records(chunk, cache_contains, as_records)
        if not as_records:
            text = chunk.split(b"\n")
            end = len(text) - 1  # text[0] and text[end] are the empty ends of "\n...\n"
            ids = list(map(cache_get, text))
            i = 1
            while i < end:
                j = cached_run(ids, i, end, lineno + i)
                if j == end:
                    break
                other_line(text[j], lineno + j)
                i = j + 1
            lineno += end - 1
            continue

        # read as records: text[k] is the k-th record and the lines after it (see _records); the
        # line number of text[k]'s record is lineno + k + the lines after the records before it
        original = chunk
        original_text = None  # its lines, split when a line must be read as it was

        def line_as_it_was(at: int) -> bytes:
            nonlocal original_text
            if original_text is None:
                original_text = original.split(b"\n")
            return original_text[at - lineno]

        subbed = _N_OFFSET.sub(_OFFSET0, chunk)
        prefilled = frames.prefill(subbed)
        text = _records(subbed)
        del subbed
        end = len(text)
        ids = list(map(records_get, text))
        extra = 0  # lines after records, before the record in hand
        i = 1 if text[0] == b"" else 0  # else text[0] holds lines, after a newline: never a key
        while i < end:
            j = cached_run(ids, i, end, lineno + i + extra)
            if j == end:
                break
            rec, nl, after = text[j].partition(b"\n")
            at = lineno + j + extra
            if j:
                k = records_get(rec) if nl else None
                if k is None:
                    k = frames.record(rec, line_as_it_was, at)
                if not pending:
                    pending_line = at
                pending.append(k)
            if nl:
                s = after.strip()
                if s.isdigit() and pending and len(s) <= _MAX_COUNT_DIGITS:
                    # the common case, the stack's count (and blank lines): as other_line reads it
                    key = tuple(pending)
                    pending.clear()
                    counts[key] = counts.get(key, 0) + int(s)
                    extra += after.count(b"\n") + 1
                    i = j + 1
                    continue
                for n, line in enumerate(after.split(b"\n"), at + 1):
                    if _OFFSET0 in line:  # perhaps rewritten by _N_OFFSET: read as it was
                        line = line_as_it_was(n)
                    other_line(line, n)
                    extra += 1
            i = j + 1
        for rec in prefilled:
            records_pop(rec, None)
        lineno += end - 1 + extra - 1  # the last line's newline left an empty line after it

    if pending:
        end_without_count(0)
    _finish(result, counts, frames.pair_id, demangle, all_used=not cut_short and not bad_counts)
    if cut_short:
        result.problems.append(
            f"{cut_short} stack(s) had no count line and were dropped (output cut short, or text in the "
            f"middle of a stack?): first {cut_example}; the complete stacks are kept"
        )
    if n_messages > len(messages):
        result.problems.append(f"{n_messages} stap messages, only the first {len(messages)} kept")
    if skipped:
        result.problems.append(
            f"{skipped} lines that are neither frames nor counts were skipped (" + "; ".join(skipped_examples) + ")"
        )
    if orphan_counts:
        result.problems.append(f"{orphan_counts} count lines without a stack before them were ignored")
    if bad_counts:
        result.problems.append(
            f"{bad_counts} count lines of more than {_MAX_COUNT_DIGITS} digits were taken for garbage "
            "(their stacks were dropped)")
    return result


def _finish(result: Collapsed, counts: dict[tuple[int, ...], int], pair_id: dict[tuple[str, str], int],
            demangle: bool, all_used: bool = False) -> None:
    """Stacks of pair ids (leaf first) -> tuples of frame keys, root first.

    ``all_used``: no stack was dropped, so every pair is in a kept stack and the set of the pairs
    used (one lookup per frame of every stack) is not needed."""
    if all_used:
        frames: Collection[tuple[str, str]] = pair_id.keys()
    else:
        used = set(itertools.chain.from_iterable(counts))
        # only frames of stacks kept: a dropped stack's main must not make another main ambiguous
        frames = [p for p, i in pair_id.items() if i in used]
    key_of, result.modules, result.names = frame_keys(frames, demangle, result.problems)
    # ids are 0, 1, ... in pair_id's order; a pair of no kept stack has no key and is never looked up
    keys = list(map(key_of.get, pair_id))
    stacks = result.stacks
    for k, c in counts.items():
        # itemgetter(*ids) picks a stack's keys into a tuple in one call (a frame each: 700k here)
        key = itemgetter(*k[::-1])(keys) if len(k) > 1 else (keys[k[0]],)
        stacks[key] = stacks.get(key, 0) + c


def frame_keys(frames: Collection[tuple[str, str]], demangle: bool, problems: list[str]):
    """(name, module) pairs -> ({pair: frame key}, {key: module}, {key: name where it differs}).

    A frame's key is its (demangled) name; a name found in two modules (nginx's and qemu's ``main``)
    gets its module in the key, ``main [nginx]``, so the two never merge and each keeps its module."""
    from .demangle import demangle_names

    pretty = demangle_names({n for n, _ in frames}, problems) if demangle else {}
    seen: dict[str, str] = {}
    ambiguous: set[str] = set()
    for n, m in frames:
        if m:
            d = pretty.get(n, n)
            if seen.setdefault(d, m) != m:
                ambiguous.add(d)
    key_of: dict[tuple[str, str], str] = {}
    modules: dict[str, str] = {}
    display: dict[str, str] = {}
    for n, m in frames:
        d = pretty.get(n, n)
        k = f"{d} [{m}]" if m and d in ambiguous else d
        key_of[(n, m)] = k
        if m:
            modules[k] = m
        if k != d:
            display[k] = d
    return key_of, modules, display
