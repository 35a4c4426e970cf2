"""Fuzz: any bytes through parse -> SVG / folded / speedscope / top-N, plain and differential.

Fixed budget and derandomized (hypothesis' fixed seed), so a failure reproduces: 0 crashes allowed.
Inputs mix the shapes the parsers look for (frames, counts, stap messages, folded lines) with
hostile pieces: Unicode digits, huge counts, control characters, invalid UTF-8, '#' roots."""

import io
import json
import xml.etree.ElementTree as ET

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rich.console import Console

from stapdoctor.profiler.collapse import collapse_stap
from stapdoctor.profiler.folded import collapse_folded, write_folded
from stapdoctor.profiler.speedscope import write_speedscope
from stapdoctor.profiler.summary import print_top, top_functions
from stapdoctor.profiler.svg import render_svg

PIECES = [b" 0x4005f4 : main+0x1c/0x30 [/bin/x]", b" 0x7f00 : 0x7f00 [/lib/libc.so.6+0x24d5e/0x1d4000]",
          b" 0x7f00 : 0x7f01", b" 0x7fbe2af0bb4a [/usr/lib64/libc.so.6+0x27b4a/0x1de000]", b"\t12", b"    8282",
          b"WARNING: Missing unwind data", b"ERROR: x", b"=== source", b"", b"main;f 3", b"#root;main 2", b"a;b 1 2",
          b"a;b \xc2\xb2", b"a;b " + b"9" * 5000, b"a;b 1e309", b"\t" + b"7" * 400, b" 0x1 : _ZN3foo3barEv+0x1/0x2 [/x]",
          b" 0x1 : \x1b[31mred\x9b+0x1/0x2 [/x]", b" 0x1 : \xff\xfe+0x1/0x2 [/\xff]", b"\x01\x02", b" 0x1 : </title>&;+0x1/0x2 [<]",
          b" 0x1 : main+0x1/0x2 [/usr/bin/other]", b";;; 4", b" 0x2 : +0x1/0x2 [/m]", b"0x1 : (inexact)"]
line = st.one_of(st.sampled_from(PIECES), st.binary(max_size=40))
text = st.lists(line, max_size=30).map(lambda ls: b"\n".join(ls) + b"\n")


def _all_outputs(c, before=None):
    buf = io.StringIO()
    render_svg(c.stacks, buf, modules=c.modules, palette="module", title="t\udcff", before=before, minwidth=0)
    ET.fromstring(buf.getvalue().encode("utf-8"))  # well-formed
    out = io.BytesIO()
    write_folded(c.stacks, out)
    back = collapse_folded(io.BytesIO(out.getvalue()), demangle=False)
    # a frame name ending in " 12" reads back as a count column: folded's own limit; no sample is lost
    assert back.total == c.total and not back.problems
    js = io.BytesIO()
    write_speedscope(c.stacks, js, name="n\udcff", modules=c.modules, names=c.names)
    json.loads(js.getvalue())
    print_top(top_functions(c.stacks, 5), total_samples=c.total, console=Console(file=io.StringIO(), width=100))


@settings(max_examples=300, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(text, text)
def test_no_input_crashes_any_output(a, b):
    for parse in (lambda d: collapse_stap(io.BytesIO(d)), lambda d: collapse_folded(io.BytesIO(d))):
        ca, cb = parse(a), parse(b)
        _all_outputs(ca)
        _all_outputs(cb, before=ca.stacks)
