"""Raw addresses -> stap-style frames, from a real process's maps and real ELF files."""

from __future__ import annotations

import io
import os
from pathlib import Path

from stapdoctor.profiler.collapse import collapse_stap
from stapdoctor.profiler.rawstacks import RawProfile, parse_line, read_raw, write_stacks_text
from stapdoctor.profiler.symbols import KernelSymbols, Symbolizer, parse_addresses
from stapdoctor.profiler.targets import MapsRecorder, Mapping, parse_maps

from .conftest import nm_address


def _runtime(pid: int, path_part: str, symbol: str) -> tuple[int, str]:
    """Runtime address of a symbol: load base from /proc/PID/maps (offset-0 mapping) + nm value."""
    for m in parse_maps(Path(f"/proc/{pid}/maps").read_text()):
        if m.offset == 0 and path_part in os.path.basename(m.path):
            return m.start + nm_address(m.path, symbol), m.path
    raise LookupError(path_part)


def test_resolves_exe_and_libc_of_a_live_process(busy_proc, busy_exe):
    rec = MapsRecorder(busy_proc.pid)
    assert rec.poll()
    sym = Symbolizer(rec.mappings(), pid=busy_proc.pid)
    c, _ = _runtime(busy_proc.pid, "busy", "func_c")
    line = sym.frame(c + 5)
    assert line == f" 0x{c + 5:x} : func_c+0x5/0x{_size(busy_exe, 'func_c'):x} [{busy_exe}]"
    lsm, libc = _runtime(busy_proc.pid, "libc.so", "__libc_start_main")
    assert ": __libc_start_main+0x10/" in sym.frame(lsm + 0x10, caller=True)
    assert sym.frame(lsm + 0x10).endswith(f"[{libc}]")


def _size(path, symbol) -> int:
    import subprocess

    out = subprocess.run(["nm", "-S", "--defined-only", str(path)], capture_output=True, text=True).stdout
    for line in out.splitlines():
        p = line.split()
        if len(p) == 4 and p[3] == symbol:
            return int(p[1], 16)
    raise KeyError(symbol)


def test_return_address_at_function_end_belongs_to_the_caller():
    """A call as the last instruction: the return address is the next function's first byte."""
    from stapdoctor.profiler.symbols import _Table

    class Obj:
        table = _Table([0x1000, 0x1010], [0x10, 0x10], ["caller", "next"])

        @staticmethod
        def file_offset_to_vaddr(off):
            return off

    sym = Symbolizer([(Mapping(0x1000, 0x2000, "r-xp", 0x1000, "/x"), 1)])
    sym._objects["/x"] = Obj()
    assert ": caller+0x10/0x10 [/x]" in sym.frame(0x1010, caller=True)
    assert ": next+0x0/0x10 [/x]" in sym.frame(0x1010, caller=False)


def test_unknown_and_symbolless_addresses_keep_stap_shapes(tmp_path):
    blob = tmp_path / "blob.so"
    blob.write_bytes(b"not an elf file" * 100)
    sym = Symbolizer([(Mapping(0x7f0000000000, 0x7f0000001000, "r-xp", 0x2000, str(blob)), 1)])
    assert sym.frame(0x1234) == " 0x1234 : 0x1234"
    line = sym.frame(0x7f0000000010)
    assert line == f" 0x7f0000000010 : 0x7f0000000010 [{blob}+0x2010/0x3000]"
    assert sym.unresolved_modules == {str(blob): 1}
    # the collapse parser keeps the module and offset for such frames
    res = collapse_stap([line.encode(), b"\t3"])
    assert list(res.stacks) == [("[blob.so+0x2010]",)]


def test_newest_mapping_wins_on_overlap():
    old = Mapping(0x1000, 0x2000, "r-xp", 0, "/old")
    new = Mapping(0x1000, 0x2000, "r-xp", 0, "/new")
    sym = Symbolizer([(old, 1), (new, 2)])
    assert "[/new+0x10" in sym.frame(0x1010)


def test_parse_addresses_and_truncation():
    assert parse_addresses("0x1 0x2 0x3") == ([1, 2, 3], False)
    assert parse_addresses("") == ([], False)
    s = ("0x7f4f5fe92fba " * 100)[:1023]  # stap cut the string at MAXSTRINGLEN-1
    addrs, cut = parse_addresses(s, 1024)
    assert cut and len(addrs) == len(s.split()) - 1 and all(a == 0x7F4F5FE92FBA for a in addrs)


def test_kernel_symbols_from_kallsyms(tmp_path):
    ks_file = tmp_path / "kallsyms"
    ks_file.write_text("ffffffff81000000 T _stext\nffffffff81001000 t do_one [kernel]\n"
                       "ffffffff81001100 T do_two\nffffffffc0000000 t mod_fn\t[ext4]\nffffffffc0000100 t end\n"
                       "0000000000000000 T hidden\n")
    ks = KernelSymbols(str(ks_file))
    assert ks.frame(0xFFFFFFFF81001010) == " 0xffffffff81001010 : do_one+0x10/0x100 [kernel]"
    assert ks.frame(0xFFFFFFFFC0000008) == " 0xffffffffc0000008 : mod_fn+0x8/0x100 [ext4]"
    assert ks.frame(0x10) == " 0x10 : 0x10 [kernel]"


def test_live_kallsyms_resolves_a_real_symbol():
    ks = KernelSymbols()
    assert ks.starts, "/proc/kallsyms shows no addresses (CI runs as root, where it does)"
    i = len(ks.starts) // 2
    assert f": {ks.names[i]}+0x0/" in ks.frame(ks.starts[i])


def test_raw_protocol_and_stacks_text(busy_proc):
    c, exe = _runtime(busy_proc.pid, "busy", "func_c")
    a, _ = _runtime(busy_proc.pid, "busy", "func_a")
    raw = [b"some noise\n", f"stapdoctor:begin {busy_proc.pid} 2000\n".encode(), b"stapdoctor:tick 10 0\n",
           f"stapdoctor:stack 7\t\t0x{c + 4:x} 0x{a + 9:x}\n".encode(),
           b"stapdoctor:stack 2\t\t\n", b"stapdoctor:end 9 1 2\n", b"stapdoctor:stack garbage\n"]
    prof = read_raw(raw)
    assert (prof.begun, prof.ended, prof.target, prof.duration_ms) == (True, True, busy_proc.pid, 2000)
    assert (prof.samples, prof.lost, prof.stored) == (9, 1, 9)
    assert prof.other_lines[0] == "some noise" and len(prof.other_lines) == 2
    rec = MapsRecorder(busy_proc.pid)
    rec.poll()
    buf = io.StringIO()
    st = write_stacks_text(prof, buf, Symbolizer(rec.mappings()), None, 1024)
    assert (st.stacks, st.empty, st.truncated) == (1, 2, 0)
    res = collapse_stap(buf.getvalue().encode().splitlines(keepends=True))
    assert res.stacks == {("func_a", "func_c"): 7} and not res.problems


def test_tick_counts_until_the_end_record():
    prof = RawProfile()
    parse_line(b"stapdoctor:tick 5 1\n", prof)
    assert (prof.samples, prof.lost, prof.ended) == (5, 1, False)
    parse_line(b"stapdoctor:end 6 1 3\n", prof)
    parse_line(b"stapdoctor:tick 99 9\n", prof)  # a late tick must not undo the end record
    assert (prof.samples, prof.lost) == (6, 1)


def test_maps_recorder_keeps_unmapped_regions(tmp_path, busy_proc):
    rec = MapsRecorder(busy_proc.pid, interval=0)
    rec.poll(0)
    n = len(rec.mappings())
    busy_proc.kill()
    busy_proc.wait()
    assert not rec.poll(10)  # gone: nothing read, nothing forgotten
    assert len(rec.mappings()) == n
    rec.save(tmp_path / "maps.txt")
    assert parse_maps((tmp_path / "maps.txt").read_text()) == [m for m, _ in rec.mappings()]


def test_stripped_binary_resolved_through_its_build_id_debug_file(tmp_path, busy_exe):
    """How distributions ship symbols: a stripped file plus /usr/lib/debug/.build-id/xx/rest.debug."""
    import shutil
    import subprocess

    from stapdoctor.profiler.symbols import ElfObject

    stripped = tmp_path / "busy-stripped"
    shutil.copy(busy_exe, stripped)
    dbg = tmp_path / "busy.debug"
    subprocess.run(["objcopy", "--only-keep-debug", str(busy_exe), str(dbg)], check=True)
    subprocess.run(["strip", "--strip-all", str(stripped)], check=True)
    note = subprocess.run(["readelf", "-n", str(stripped)], capture_output=True, text=True, check=True).stdout
    build_id = note.split("Build ID:")[1].split()[0]
    root = tmp_path / "debug"
    (root / ".build-id" / build_id[:2]).mkdir(parents=True)
    shutil.copy(dbg, root / ".build-id" / build_id[:2] / f"{build_id[2:]}.debug")

    bare = ElfObject(str(stripped), debug_root=str(tmp_path / "nowhere"))
    assert "func_c" not in bare.table.names  # stripped: only what .dynsym exports
    obj = ElfObject(str(stripped), debug_root=str(root))
    assert obj.debug_file and obj.debug_file.endswith(".debug")
    i = obj.table.names.index("func_c")
    assert obj.table.starts[i] == nm_address(str(busy_exe), "func_c")
