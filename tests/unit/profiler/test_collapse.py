"""Parser behaviour beyond the case files: frame shapes, FlameGraph's known bugs, streaming."""

import tracemalloc

from stapdoctor.profiler.collapse import collapse_stap, parse_frame


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
