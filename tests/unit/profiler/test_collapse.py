"""Parser behaviour beyond the case files: frame shapes, FlameGraph's known bugs, streaming."""

import io
import re
import tracemalloc
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stapdoctor.profiler.collapse import _looks_like_frame, collapse_stap, parse_frame


def test_three_frame_shapes():
    assert parse_frame("0x4005f4 : main+0x1c/0x30 [/path/bin]") == ("main", "bin")
    assert parse_frame("0x7f3a1c0a4d5e : 0x7f3a1c0a4d5e [/usr/lib64/libfoo.so+0x24d5e/0x1d4000]") == (
        "[libfoo.so+0x24d5e]",
        "libfoo.so",
    )
    assert parse_frame("0x7f3a1c0a4f60 : 0x7f3a1c0a4f60") == ("0x7f3a1c0a4f60", "")


def test_variants_seen_in_the_wild():
    assert parse_frame("0x7fbe2af0bb4a [/usr/lib64/libc.so.6+0x27b4a/0x1de000]") == ("[libc.so.6+0x27b4a]", "libc.so.6")
    assert parse_frame("0xffffffffc0427b40 (inexact)") == ("0xffffffffc0427b40", "")
    assert parse_frame("0xffffffff823e0b9d : __napi_poll+0x2d/0x130 [kernel] (inexact)") == ("__napi_poll", "kernel")
    assert parse_frame("0x400556 : main+0x19/0x23 [...me/x/process/malloc_program") == ("main", "malloc_program")
    assert parse_frame("0x000000384f07f958 : __GI_strcmp+0x12b8/0x1440 [libc-2.12.so]") == ("__GI_strcmp", "libc-2.12.so")


def test_names_with_spaces_and_brackets():
    assert parse_frame("0x1 : operator[](unsigned long) const+0x1/0x2 [/a b/c]") == (
        "operator[](unsigned long) const",
        "c",
    )
    # the name is kept whole; only the folded writer replaces ';' (see test_folded)
    assert parse_frame("0x1 : f<[u8; 4]>+0x1/0x2 [/x]") == ("f<[u8; 4]>", "x")


def test_no_dangling_bracket_for_unresolved():
    c = collapse_stap([b" 0x7f00 : 0x7f00 [/usr/lib64/libfoo.so+0x24d5e/0x1d4000]\n", b" 0x1 : main+0x1/0x2 [/b]\n", b"\t3\n"])
    ((stack, count),) = c.stacks.items()
    assert stack == ("main", "[libfoo.so+0x24d5e]") and count == 3
    assert not any(f.endswith(" [") or f == "[" for f in stack)


def test_percent_survives_and_trailing_blanks_do_not_merge():
    lines = [b" 0x1 : a_100%_b+0x1/0x2 [/x]\n", b"\t1  \r\n", b" 0x2 : c%s+0x1/0x2 [/x]\r\n", b"\t2\r\n"]
    c = collapse_stap(lines)
    assert c.stacks == {("a_100%_b",): 1, ("c%s",): 2}


def test_final_stack_without_count_is_reported_and_dropped():
    c = collapse_stap([b" 0x1 : a+0x1/0x2 [/x]\n", b"\t5\n", b" 0x2 : b+0x1/0x2 [/x]\n"])
    assert c.stacks == {("a",): 5}
    assert any("no count" in p for p in c.problems)


def test_messages_are_collected_not_framed():
    c = collapse_stap([b" 0x1 : a+0x1/0x2 [/x]\n", b"WARNING: Missing unwind data\n", b" 0x2 : main+0x1/0x2 [/x]\n", b"\t5\n"])
    assert c.stacks == {("main", "a"): 5}
    assert c.messages == ["WARNING: Missing unwind data"]


def test_modules_are_recorded_for_the_palette():
    c = collapse_stap([b" 0x1 : a+0x1/0x2 [/usr/lib/libz.so.1]\n", b" 0x2 : main+0x1/0x2 [/opt/app]\n", b"\t5\n"])
    assert c.modules == {"a": "libz.so.1", "main": "app"}


def _many_lines(repeats: int):
    """~37 MB of stap output over 3 unique stacks, produced lazily."""
    frames = [f" 0x{0x400000 + i:x} : function_number_{i}+0x1c/0x30 [/usr/bin/some-program]\n".encode() for i in range(40)]
    for r in range(repeats):
        k = r % 3
        yield from frames[k : k + 30]
        yield b"\t7\n"


def test_memory_follows_unique_stacks_not_input_size():
    tracemalloc.start()
    try:
        c = collapse_stap(_many_lines(15_000))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert len(c.stacks) == 3 and c.total == 15_000 * 7
    # the input is ~37 MB; what is kept is three stacks and a small frame cache
    assert peak < 2_000_000, peak


# --- stack boundaries (issue 15 item 1) -------------------------------------------------------

SHARED = Path(__file__).resolve().parents[2] / "data/profiler/stap-ustack-samples.txt"


def test_text_between_stacks_is_a_boundary_not_glue():
    """The shared samples: an nginx stack without its count, then a '=== source' line, then the
    kernel idle stack.  They were glued into one stack and idle time was credited to nginx."""
    with open(SHARED, "rb") as f:
        c = collapse_stap(f)
    assert not any("ngx_write_fd" in k and "native_safe_halt" in k for k in c.stacks)
    assert [v for k, v in c.stacks.items() if k[-3:] == ("cpu_idle", "default_idle", "native_safe_halt")] == [2404]
    nginx = ("_start [nginx]", "__libc_start_main [libc-2.12.so]", "main [nginx]", "ngx_master_process_cycle",
             "ngx_start_worker_processes", "ngx_spawn_process", "ngx_worker_process_cycle",
             "ngx_process_events_and_timers", "ngx_epoll_process_events", "__epoll_wait_nocancel")
    assert c.stacks[nginx] == 46
    assert any("had no count line" in p and "__write_nocancel" in p for p in c.problems)


def test_a_stray_line_ends_the_stack_in_progress():
    c = collapse_stap([b" 0x1 : a+0x1/0x2 [/x]\n", b"$ echo done\n", b" 0x2 : b+0x1/0x2 [/x]\n", b"\t5\n"])
    assert c.stacks == {("b",): 5}
    assert any("1 stack(s) had no count line" in p and "'a'" in p and "ended by line 2" in p for p in c.problems)


def test_count_of_absurd_length_is_garbage_not_a_crash():
    c = collapse_stap([b" 0x1 : a+0x1/0x2 [/x]\n", b"\t" + b"9" * 5000 + b"\n", b" 0x1 : b+0x1/0x2 [/x]\n", b"\t2\n"])
    assert c.stacks == {("b",): 2}
    assert any("more than 18 digits" in p for p in c.problems)


def test_same_name_in_two_modules_is_two_frames():
    lines = [b" 0x1 : main+0x1/0x2 [/usr/sbin/nginx]\n", b"\t5\n", b" 0x2 : main+0x1/0x2 [/usr/bin/qemu]\n", b"\t3\n",
             b" 0x3 : solo+0x1/0x2 [/usr/bin/qemu]\n", b"\t1\n"]
    c = collapse_stap(lines)
    assert c.stacks == {("main [nginx]",): 5, ("main [qemu]",): 3, ("solo",): 1}
    assert c.modules == {"main [nginx]": "nginx", "main [qemu]": "qemu", "solo": "qemu"}
    assert c.names == {"main [nginx]": "main", "main [qemu]": "main"}


def test_demangled_by_default_raw_on_request():
    lines = [b" 0x1 : _ZNSt6vectorIiSaIiEE9push_backERKi+0x1/0x2 [/x]\n", b" 0x2 : main+0x1/0x2 [/x]\n", b"\t2\n"]
    assert collapse_stap(lines).stacks == {("main", "std::vector<int, std::allocator<int> >::push_back(int const&)"): 2}
    assert collapse_stap(lines, demangle=False).stacks == {("main", "_ZNSt6vectorIiSaIiEE9push_backERKi"): 2}


# --- the fast paths agree with parse_frame (the definition) -----------------------------------

_hex = st.integers(0, 2**64 - 1).map(lambda v: f"0x{v:x}")
_piece = st.sampled_from(["main", "foo::bar()", "operator+(int)", "f<[u8; 4]>", "+0x1/0x2", "(inexact)", "0x12",
                          " ", "[", "]", "/", "a b", "lib+0xz", "\t", "é", "\x01", ":", " : ", "+", "0x", "x"])
_name = st.lists(_piece, max_size=4).map("".join)
_path = st.lists(st.sampled_from(["/usr", "/lib", "/a b", "/lib+0x1", "/x:y", "/libstdc++.so.6", "...me", "/", "["]),
                 max_size=3).map("".join)
_line = st.one_of(
    st.builds(lambda a, n, o, s, p, t: f"{a} : {n}+{o}/{s} [{p}]{t}", _hex, _name, _hex, _hex, _path,
              st.sampled_from(["", " ", "\r", " (inexact)"])),
    st.builds(lambda a, b, p, o, s: f"{a} : {b} [{p}+{o}/{s}]", _hex, _hex, _path, _hex, _hex),
    st.builds(lambda a, p, o: f"{a} [{p}+{o}/0x1000]", _hex, _path, _hex),
    st.builds(lambda a, b: f"{a} : {b}", _hex, st.one_of(_hex, _name)),
    st.builds(lambda a, r: f"{a} : {r}", _hex, st.text(max_size=30)),
)


def _other_numbers(line: str) -> str:
    """The line with every hex number changed: an address and an offset, also a name's digits."""
    return re.sub(r"0x[0-9a-fA-F]+", lambda m: hex(int(m.group(), 16) + 1), line)


@settings(max_examples=400, deadline=None, derandomize=True)
@given(st.lists(st.tuples(st.sampled_from(["", " ", "    ", "\t"]), _line), min_size=1, max_size=6))
def test_records_and_both_caches_give_parse_frames_answer(lines):
    """Every frame line is named as parse_frame names it: from the line cache, from its record, and
    from the one pass that names unresolved records; and a record that is cached is shared only by
    lines that parse_frame names alike (each line is tried beside a twin with other numbers)."""
    from stapdoctor.profiler.collapse import _N_OFFSET, _OFFSET0, _SPLIT, _decode, _Frames, _records

    raw = [(ws + text).encode("utf-8", "replace") for ws, line in lines for text in (line, _other_numbers(line))]
    raw = [r for r in raw if b"\n" not in r and _looks_like_frame(r.strip())]
    if not raw:
        return
    chunk = b"\n" + b"\n".join(raw) + b"\n"
    subbed = _N_OFFSET.sub(_OFFSET0, chunk)
    text = _records(subbed)
    records = iter(t.partition(b"\n")[0] for t in text[1:])
    prefilled = _Frames()
    prefilled.prefill(subbed)
    shared = _Frames()  # one record cache for all the lines: a record cached for one line serves the next
    for plain in raw:
        want = parse_frame(_decode(plain.strip()))
        fr = _Frames()
        i = fr.parse(plain)
        assert next(p for p, j in fr.pair_id.items() if j == i) == want, plain
        if not _SPLIT.match(b"\n" + plain):
            continue  # no "ADDR : ": this line is read as a line in both ways
        rec = next(records)
        i = shared.records.get(rec)
        if i is None:
            i = shared.record(rec, lambda at: plain, 0)
        assert next(p for p, j in shared.pair_id.items() if j == i) == want, (plain, rec)
        if rec in prefilled.records:  # an unresolved record named in one pass over the chunk
            i = prefilled.records[rec]
            assert next(p for p, j in prefilled.pair_id.items() if j == i) == want, (plain, rec)
    assert next(records, None) is None


_doc_line = st.one_of(
    _line,
    st.builds(lambda n: f"\t{n}", st.integers(0, 10**6)),
    st.sampled_from(["", "  ", "WARNING: Missing unwind data", "ERROR: probe overhead", "=== source nginx",
                     "$ stap -v", "a+0x1/0x2 [b]", "text +0x10/0x20 [x] y", "\t9" + "9" * 20]),
)


@settings(max_examples=300, deadline=None, derandomize=True)
@given(st.lists(st.tuples(st.sampled_from(["", " ", "\t"]), _doc_line), max_size=40), st.integers(40, 400))
def test_reading_as_records_gives_what_reading_lines_gives(doc, chunk_size):
    """The whole parser, every chunk read as records, against every chunk read as lines: the same
    stacks, messages and problems, line numbers included, over chunks of any size."""
    from stapdoctor.profiler import collapse

    data = "".join(ws + line + "\n" for ws, line in doc).encode("utf-8", "replace")
    got = {}
    for mode in (True, False):
        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(collapse, "_CHUNK", chunk_size)
            mp.setattr(collapse, "_read_as_records", lambda *a, mode=mode: mode)
            c = collapse.collapse_stap(io.BytesIO(data), demangle=False)
        got[mode] = (c.stacks, c.messages, c.problems, c.modules, c.names)
    assert got[True] == got[False]


def _reference(data: bytes) -> dict:
    """The obvious per-line reading of frames + count lines, with parse_frame (no fast path)."""
    out: dict = {}
    frames: list = []
    for line in data.split(b"\n"):
        s = line.strip()
        if s.isdigit():
            key = tuple(reversed(frames))
            out[key] = out.get(key, 0) + int(s)
            frames = []
        elif s:
            frames.append(parse_frame(s.decode("utf-8", "replace")))
    return out


def test_whole_parser_agrees_with_per_line_reading_on_both_input_shapes(tmp_path):
    """bench/gen_stap.py's two shapes: repeating lines (line cache) and distinct lines (rewritten)."""
    import subprocess
    import sys

    gen = Path(__file__).resolve().parents[3] / "bench" / "gen_stap.py"
    for extra in ([], ["--distinct"]):
        out = tmp_path / "gen.out"
        subprocess.run([sys.executable, str(gen), "-n", "2000", "-o", str(out), *extra], check=True)
        data = out.read_bytes()
        c = collapse_stap(io.BytesIO(data), demangle=False)
        got = {tuple((c.names.get(f, f), c.modules.get(f, "")) for f in k): v for k, v in c.stacks.items()}
        assert got == _reference(data)
        assert len(c.stacks) == 2000


def test_a_rewrite_that_may_change_a_name_is_undone_for_that_line():
    """Where lines differ (so chunks are rewritten), a name holding "+0x1/0x2 [" and a module path
    holding "[" are named from the line as it was, not from the rewritten record."""
    lines = []
    for i in range(400):
        lines += [f" 0x{0x400000 + i * 7:x} : leaf_{i % 5}+0x{i:x}/0x900 [/usr/bin/prog]",
                  f" 0x{0x500000 + i:x} : a+0x{i % 3:x}/0x20 [b+0x{i:x}/0x30 [/lib/m.so]",
                  f" 0x{0x600000 + i:x} : f<[u8; 4]>+0x{i:x}/0x40 [/opt/x [y]/lib.so]",
                  f" 0x{0x700000 + i:x} : 0x{0x700000 + i:x} [/lib/libc.so.6+0x{i:x}/0x1000]",
                  f" 0x{0x800000 + i:x} : main+0x{i:x}/0x80 [/usr/bin/prog]", f"\t{i + 1}"]
    data = ("\n".join(lines) + "\n").encode()
    c = collapse_stap(io.BytesIO(data), demangle=False)
    got = {tuple((c.names.get(f, f), c.modules.get(f, "")) for f in k): v for k, v in c.stacks.items()}
    assert got == _reference(data)
    assert {f for k in c.stacks for f in k} >= {"a+0x0/0x20 [b", "a+0x2/0x20 [b", "f<[u8; 4]>+0x1/0x40 [/opt/x"}


def test_a_dropped_stack_makes_no_name_ambiguous():
    """Only the frames of kept stacks decide which names need their module in the key."""
    data = (b" 0x4005f4 : main+0x1c/0x30 [/opt/a/prog1]\n"
            b"=== a header line: the stack above has no count\n"
            b" 0x5005f4 : main+0x2c/0x30 [/opt/b/prog2]\n\t7\n")
    c = collapse_stap(io.BytesIO(data), demangle=False)
    assert c.stacks == {("main",): 7}
    assert c.modules == {"main": "prog2"}
