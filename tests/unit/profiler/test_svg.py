"""SVG structure: well-formed, hostile names inert, pruning, options, metadata."""

import json
import xml.etree.ElementTree as ET

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stapdoctor.profiler.svg import render_svg, render_svg_string, trim_label, xml_text

NS = {"s": "http://www.w3.org/2000/svg"}
HOSTILE = "</text><script>alert(1)</script>"


def frames(svg: str):
    root = ET.fromstring(svg.encode("utf-8"))
    out = []
    for g in root.find("s:g[@id='frames']", NS):
        title = g.find("s:title", NS).text
        out.append((title, int(g.get("data-d")), int(g.get("data-x")), int(g.get("data-s")), g))
    return root, out


def test_hostile_names_are_text_and_only_our_script_exists():
    stacks = {("main", HOSTILE, "&quot;", "a]]>b<!--"): 10, ("main", "x'\"&<>"): 5}
    svg = render_svg_string(stacks)
    root, fr = frames(svg)
    scripts = root.findall(".//s:script", NS)
    assert len(scripts) == 1 and "stapdoctor flame graph interaction" in scripts[0].text
    titles = [t for t, *_ in fr]
    assert any(t.startswith(HOSTILE + " (") for t in titles)
    assert any(t.startswith("&quot; (") for t in titles)
    assert any(t.startswith("x'\"&<> (") for t in titles)
    assert "<script>alert" not in svg


def test_metadata_is_embedded_and_inert():
    meta = {"command": "./busy </metadata><script>x</script>", "pid": 42, "duration": 15, "samples": 15,
            "stap_version": "5.6", "date": "2026-11-28"}
    svg = render_svg_string({("main",): 15}, meta=meta, subtitle="sub")
    root, _ = frames(svg)
    md = json.loads(root.find("s:metadata", NS).text)
    assert md["command"] == meta["command"] and md["pid"] == 42 and md["stap_version"] == "5.6"
    assert "\\u003c/metadata" in svg
    sub = root.find("s:text[@id='subtitle']", NS).text
    assert "pid 42" in sub and "stap 5.6" in sub and "15 s" in sub and sub.startswith("sub")


def test_minwidth_prunes_narrow_frames_from_the_file():
    stacks = {("main", "big"): 100_000, ("main", "tiny"): 1}
    svg = render_svg_string(stacks, width=1200, minwidth=0.1)
    _, fr = frames(svg)
    names = {t.rsplit(" (", 1)[0] for t, *_ in fr}
    assert names == {"all", "main", "big"}
    svg2 = render_svg_string(stacks, width=1200, minwidth=0)
    assert "tiny" in svg2


def test_geometry_and_percentages():
    stacks = {("main", "a"): 3, ("main", "b"): 1}
    root, fr = frames(render_svg_string(stacks, width=1220))
    by = {t.rsplit(" (", 1)[0]: (t, d, x, s, g) for t, d, x, s, g in fr}
    assert by["a"][0] == "a (3 samples, 75.00%)"
    assert (by["all"][1], by["main"][1], by["a"][1]) == (0, 1, 2)
    rect_a = by["a"][4].find("s:rect", NS)
    assert float(rect_a.get("width")) == pytest.approx(1200 * 0.75)
    # flame: deeper frames are higher up (smaller y); icicle: the other way round
    def y(n):
        return float(by[n][4].find("s:rect", NS).get("y"))

    assert y("a") < y("main")
    _, fr2 = frames(render_svg_string(stacks, inverted=True))
    by2 = {t.rsplit(" (", 1)[0]: g for t, d, x, s, g in fr2}
    assert float(by2["a"].find("s:rect", NS).get("y")) > float(by2["main"].find("s:rect", NS).get("y"))


def test_reverse_merges_from_the_leaves():
    stacks = {("main", "a", "hot"): 2, ("main", "b", "hot"): 3}
    _, fr = frames(render_svg_string(stacks, reverse=True))
    depth1 = [t for t, d, *_ in fr if d == 1]
    assert depth1 == ["hot (5 samples, 100.00%)"]


def test_module_palette_tells_modules_apart():
    stacks = {("_start", "__libc_start_main", "main", "compress"): 5, ("_start", "[libssl.so.3+0x10]"): 2}
    modules = {"_start": "app", "__libc_start_main": "libc.so.6", "main": "app", "compress": "libz.so.1"}
    svg = render_svg_string(stacks, palette="module", modules=modules)
    root, fr = frames(svg)
    legend = [t.text for t in root.findall("s:g[@id='legend']/s:text", NS)]
    assert set(legend) == {"app", "libc.so.6", "libz.so.1", "libssl.so.3"}
    fills = {t.rsplit(" (", 1)[0]: g.find("s:rect", NS).get("fill") for t, d, x, s, g in fr}
    assert len({fills["main"][:3], fills["__libc_start_main"][:3], fills["compress"][:3]}) >= 2
    assert fills["__libc_start_main"] != fills["compress"]


def test_bad_options():
    with pytest.raises(ValueError):
        render_svg_string({("a",): 1}, palette="rainbow")
    with pytest.raises(ValueError):
        render_svg_string({("a",): 1}, width=10)


def test_trim_label():
    assert trim_label("abcdef", 1000) == "abcdef"
    assert trim_label("abcdefghijklmnop", 50).endswith("..")
    assert trim_label("abc", 5) == ""


def test_xml_text_drops_chars_xml_cannot_carry():
    assert xml_text("a\x01b\udcff<") == "a\ufffdb\ufffd&lt;"


@settings(max_examples=60, deadline=None)
@given(st.dictionaries(st.lists(st.text(min_size=1, max_size=12), min_size=1, max_size=4).map(tuple),
                       st.integers(1, 1000), min_size=1, max_size=8))
def test_any_names_give_well_formed_svg(stacks):
    svg = render_svg_string(stacks, minwidth=0)
    root = ET.fromstring(svg.encode("utf-8"))
    assert len(root.findall(".//s:script", NS)) == 1


def test_hot_palette_greys_unresolved_frames():
    stacks = {("main", "[libfoo.so+0x24d5e]"): 2, ("main", "0x7f3a1c0a4f60"): 1, ("main", "work"): 1}
    _, fr = frames(render_svg_string(stacks))
    fills = {t.rsplit(" (", 1)[0]: g.find("s:rect", NS).get("fill") for t, d, x, s, g in fr}
    assert fills["[libfoo.so+0x24d5e]"] == fills["0x7f3a1c0a4f60"] != fills["work"]


def test_svg_is_self_contained():
    svg = render_svg_string({("main", "a"): 1}, meta={"command": "x"})
    assert "http" not in svg.replace('xmlns="http://www.w3.org/2000/svg"', "")
    assert "<image" not in svg and "href" not in svg


def test_count_name_is_escaped_in_titles():
    svg = render_svg_string({("main",): 1}, count_name="</title><script>alert(1)</script>")
    root, fr = frames(svg)
    assert svg.count("<script") == 1
    assert fr[0][0].endswith("(1 </title><script>alert(1)</script>, 100.00%)")
