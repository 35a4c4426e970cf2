"""Turn raw stack addresses into stap-style frame lines, in Python.

stap's print_ustack() resolves addresses against the *current* task, which in ``probe end`` is
stapio, not the target; so the script prints raw ubacktrace()/backtrace() addresses and this
module resolves them: user addresses through the target's recorded /proc/PID/maps and the ELF
symbol tables (the file's own .symtab/.dynsym, plus its separate debug file found by build-id or
.gnu_debuglink), kernel addresses through /proc/kallsyms. The lines it writes have stap's own
shape (`` 0x4005f4 : main+0x1c/0x30 [/path/bin]``), so the stacks file is what the seed's script
printed and stapdoctor.profiler.collapse (or FlameGraph's stackcollapse-stap.pl) reads it.
"""

from __future__ import annotations

import bisect
import os
from dataclasses import dataclass

from .targets import Mapping

DEBUG_ROOT = "/usr/lib/debug"


@dataclass
class _Table:
    """Sorted function symbols of one object: starts, sizes, names."""

    starts: list[int]
    sizes: list[int]
    names: list[str]

    def lookup(self, addr: int) -> tuple[str, int, int] | None:
        i = bisect.bisect_right(self.starts, addr) - 1
        if i < 0:
            return None
        start, size = self.starts[i], self.sizes[i]
        if size == 0:
            # unsized symbol: it extends to the next one
            size = (self.starts[i + 1] - start) if i + 1 < len(self.starts) else 0
            if size and addr >= start + size:
                return None
        elif addr >= start + size:
            return None
        return self.names[i], start, size


def _table(pairs: dict[int, tuple[int, str]]) -> _Table:
    items = sorted(pairs.items())
    return _Table([a for a, _ in items], [s for _, (s, _n) in items], [n for _, (_s, n) in items])


class ElfObject:
    """Symbols and load segments of one ELF file (and its debug file, when there is one)."""

    def __init__(self, path: str, open_path: str | None = None, debug_root: str = DEBUG_ROOT):
        self.path = path
        self.segments: list[tuple[int, int, int]] = []  # (p_offset, p_filesz, p_vaddr) of PT_LOAD
        self.debug_file: str | None = None
        self.build_id: str | None = None  # GNU build-id (hex): how debuginfod and .build-id/ find its symbols
        self.error: str | None = None
        pairs: dict[int, tuple[int, str]] = {}
        try:
            self._load(open_path or path, pairs, debug_root)
        except Exception as e:  # a foreign or damaged file must not end the profile
            self.error = f"{type(e).__name__}: {e}"
        self.table = _table(pairs)

    def _load(self, path: str, pairs: dict, debug_root: str) -> None:
        from elftools.elf.elffile import ELFFile

        with open(path, "rb") as f:
            elf = ELFFile(f)
            for seg in elf.iter_segments():
                if seg["p_type"] == "PT_LOAD":
                    self.segments.append((seg["p_offset"], seg["p_filesz"], seg["p_vaddr"]))
            has_symtab = _add_symbols(elf, pairs)
            build_id = self.build_id = _build_id(elf)
            debuglink = _debuglink(elf)
        if has_symtab:
            return
        for cand in _debug_candidates(path, build_id, debuglink, debug_root):
            if os.path.isfile(cand):
                try:
                    with open(cand, "rb") as f:
                        _add_symbols(ELFFile(f), pairs)
                    self.debug_file = cand
                except Exception:
                    continue
                break

    def file_offset_to_vaddr(self, off: int) -> int | None:
        for p_off, p_size, p_vaddr in self.segments:
            if p_off <= off < p_off + max(p_size, 1):
                return off - p_off + p_vaddr
        return None


def _add_symbols(elf, pairs: dict) -> bool:
    """Add FUNC symbols of .symtab and .dynsym; True when the file had a .symtab.

    The symbol entries are unpacked with struct directly: pyelftools' per-symbol parsing takes
    seconds for a libc and minutes for a large C++ binary."""
    import struct

    has_symtab = False
    endian = "<" if elf.little_endian else ">"
    if elf.elfclass == 64:
        fmt, names = endian + "IBBHQQ", ("name", "info", "other", "shndx", "value", "size")
    else:
        fmt, names = endian + "IIIBBH", ("name", "value", "size", "info", "other", "shndx")
    entsize = struct.calcsize(fmt)
    i_name, i_info, i_shndx, i_value, i_size = (names.index(k) for k in ("name", "info", "shndx", "value", "size"))
    for secname in (".symtab", ".dynsym"):
        sec = elf.get_section_by_name(secname)
        if sec is None or sec["sh_type"] not in ("SHT_SYMTAB", "SHT_DYNSYM") or sec["sh_type"] == "SHT_NOBITS":
            continue
        if secname == ".symtab":
            has_symtab = True
        data = sec.data()
        strtab = elf.get_section(sec["sh_link"]).data()
        usable = len(data) - len(data) % entsize
        for ent in struct.iter_unpack(fmt, data[:usable]):
            typ = ent[i_info] & 0xF
            # STT_FUNC (2) and STT_GNU_IFUNC (10); defined (shndx != SHN_UNDEF), with a value
            if typ not in (2, 10) or ent[i_shndx] == 0 or not ent[i_value]:
                continue
            off = ent[i_name]
            nul = strtab.find(b"\0", off)
            name = strtab[off:nul if nul >= 0 else None].decode("utf-8", "replace")
            if not name:
                continue
            value, size = ent[i_value], ent[i_size]
            old = pairs.get(value)
            # prefer a sized symbol; among equals the shorter public alias (`malloc` over `__libc_malloc`)
            if old is None or (old[0] == 0 and size) or (size == old[0] and len(name) < len(old[1])
                                                          and not name.startswith("_")):
                pairs[value] = (size, name)
    return has_symtab


def _build_id(elf) -> str | None:
    for sec in elf.iter_sections():
        if sec["sh_type"] == "SHT_NOTE":
            for note in sec.iter_notes():
                if note["n_type"] == "NT_GNU_BUILD_ID":
                    return note["n_desc"]
    return None


def _debuglink(elf) -> str | None:
    sec = elf.get_section_by_name(".gnu_debuglink")
    if sec is None:
        return None
    data = sec.data()
    return data[: data.find(b"\0")].decode(errors="replace") or None


def debuginfod_cache() -> str:
    """Where debuginfod-find (elfutils' client) stores what it fetched, as the client decides it."""
    env = os.environ
    if env.get("DEBUGINFOD_CACHE_PATH"):
        return env["DEBUGINFOD_CACHE_PATH"]
    cache = env.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(cache, "debuginfod_client")


def _debug_candidates(path: str, build_id: str | None, debuglink: str | None, root: str) -> list[str]:
    """Where separate debug files live (the order gdb and stap use), then what debuginfod-find fetched
    (the missing-symbols advice tells users to run it)."""
    out = []
    if build_id and len(build_id) > 2:
        out.append(f"{root}/.build-id/{build_id[:2]}/{build_id[2:]}.debug")
        if all(c in "0123456789abcdef" for c in build_id):
            out.append(os.path.join(debuginfod_cache(), build_id, "debuginfo"))
    if debuglink:
        d = os.path.dirname(path)
        out += [os.path.join(d, debuglink), os.path.join(d, ".debug", debuglink), f"{root}{d}/{debuglink}"]
    return out


class KernelSymbols:
    """/proc/kallsyms (text symbols only); empty when addresses are hidden (kptr_restrict)."""

    def __init__(self, path: str = "/proc/kallsyms"):
        starts: list[int] = []
        names: list[str] = []
        mods: list[str] = []
        try:
            with open(path, encoding="utf-8", errors="replace") as f:
                for line in f:
                    parts = line.split()
                    if len(parts) < 3 or parts[1] not in ("t", "T", "w", "W"):
                        continue
                    addr = int(parts[0], 16)
                    if not addr:
                        continue
                    starts.append(addr)
                    names.append(parts[2])
                    mods.append(parts[3].strip("[]") if len(parts) > 3 else "kernel")
        except OSError:
            pass
        order = sorted(range(len(starts)), key=starts.__getitem__)
        self.starts = [starts[i] for i in order]
        self.names = [names[i] for i in order]
        self.mods = [mods[i] for i in order]

    def frame(self, addr: int) -> str:
        i = bisect.bisect_right(self.starts, addr) - 1
        if i < 0 or i + 1 >= len(self.starts):
            return f" 0x{addr:x} : 0x{addr:x} [kernel]"
        start, size = self.starts[i], self.starts[i + 1] - self.starts[i]
        return f" 0x{addr:x} : {self.names[i]}+0x{addr - start:x}/0x{size:x} [{self.mods[i]}]"


class Symbolizer:
    """Resolve user addresses of one target, given the mappings recorded while it ran."""

    def __init__(self, mappings: list[tuple[Mapping, int]], pid: int | None = None,
                 debug_root: str = DEBUG_ROOT):
        self.pid = pid
        self.debug_root = debug_root
        # newer generation first so that, on overlap, the last-seen mapping wins
        self._maps = sorted(((m, g) for m, g in mappings if m.is_file), key=lambda mg: (mg[0].start, -mg[1]))
        self._starts = [m.start for m, _ in self._maps]
        self._objects: dict[str, ElfObject] = {}
        self._module_size: dict[str, int] = {}
        for m, _ in self._maps:
            self._module_size[m.path] = max(self._module_size.get(m.path, 0), m.offset + (m.end - m.start))
        self.unresolved_modules: dict[str, int] = {}  # module -> addresses without a symbol
        self._cache: dict[tuple[int, bool], str] = {}

    def _mapping(self, addr: int) -> Mapping | None:
        i = bisect.bisect_right(self._starts, addr)
        best = None
        # within one snapshot mappings do not overlap; across snapshots only a remapped range
        # does, so looking back over a few neighbours finds every candidate
        for j in range(i - 1, max(i - 17, -1), -1):
            m, gen = self._maps[j]
            if m.start <= addr < m.end and (best is None or gen > best[1]):
                best = (m, gen)
        return best[0] if best else None

    def _object(self, path: str) -> ElfObject:
        obj = self._objects.get(path)
        if obj is None:
            open_path = path
            if self.pid is not None:
                # the file as the target sees it (containers); fall back to our own view
                alt = f"/proc/{self.pid}/root{path}"
                if os.path.exists(alt):
                    open_path = alt
            obj = self._objects[path] = ElfObject(path, open_path, self.debug_root)
        return obj

    def build_id(self, path: str) -> str | None:
        """The build-id of a file the target mapped (once it was opened to resolve an address)."""
        obj = self._objects.get(path)
        return obj.build_id if obj is not None else None

    def frame(self, addr: int, caller: bool = False) -> str:
        """One stap-style frame line. ``caller``: addr is a return address, so the call site is
        addr-1 (matters when a call is the last instruction of a function)."""
        key = (addr, caller)
        line = self._cache.get(key)
        if line is None:
            line = self._cache[key] = self._frame(addr, caller)
        return line

    def _frame(self, addr: int, caller: bool) -> str:
        m = self._mapping(addr)
        if m is None:
            return f" 0x{addr:x} : 0x{addr:x}"
        file_off = addr - m.start + m.offset
        obj = self._object(m.path)
        vaddr = obj.file_offset_to_vaddr(file_off - (1 if caller else 0))
        hit = obj.table.lookup(vaddr) if vaddr is not None else None
        if hit is None:
            self.unresolved_modules[m.path] = self.unresolved_modules.get(m.path, 0) + 1
            return f" 0x{addr:x} : 0x{addr:x} [{m.path}+0x{file_off:x}/0x{self._module_size.get(m.path, 0):x}]"
        name, start, size = hit
        off = vaddr + (1 if caller else 0) - start
        return f" 0x{addr:x} : {name}+0x{off:x}/0x{size:x} [{m.path}]"


def parse_addresses(text: str, maxstringlen: int | None = None) -> tuple[list[int], bool]:
    """Addresses from a ubacktrace()/backtrace() string; True when stap cut the string at
    MAXSTRINGLEN (the cut last address is dropped: it is not a whole address)."""
    tokens = text.split()
    truncated = bool(maxstringlen) and len(text) >= maxstringlen - 1
    if truncated and tokens:
        tokens = tokens[:-1]
    out = []
    for t in tokens:
        try:
            out.append(int(t, 16))
        except ValueError:
            continue
    return out, truncated

