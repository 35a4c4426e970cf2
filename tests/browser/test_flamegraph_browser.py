"""The SVG in a real browser: zoom, search, hover details, and hostile names that stay text."""

import subprocess
import sys
from pathlib import Path

import pytest

from stapdoctor.profiler.collapse import collapse_stap
from stapdoctor.profiler.svg import render_svg

pytestmark = pytest.mark.browser

DATA = Path(__file__).resolve().parents[1] / "data"
BUSY = DATA / "collapse" / "busy-debian-unstable" / "input.txt"
REPO = Path(__file__).resolve().parents[2]


def _svg(tmp_path, src: Path, name="flame.svg", **kw):
    with open(src, "rb") as f:
        c = collapse_stap(f)
    out = tmp_path / name
    with open(out, "w", encoding="utf-8") as o:
        render_svg(c.stacks, o, title="busy", modules=c.modules, **kw)
    return out, c


def _share(stacks, pred):
    total = sum(stacks.values())
    return f"{100 * sum(v for k, v in stacks.items() if pred(k)) / total:.2f}"


def test_click_zooms_and_reset_restores(tmp_path, open_svg):
    path, c = _svg(tmp_path, BUSY)
    p = open_svg(path)
    before = p.frame("func_b", 6)
    assert p.page.locator("#unzoom").is_hidden()
    p.locator("func_b", 6).click()
    zoomed = p.frame("func_b", 6)
    assert zoomed["width"] == pytest.approx(1180, abs=0.1) and zoomed["width"] > before["width"]
    assert p.frame("func_c", 7)["shown"]  # child of func_b stays
    assert not p.frame("func_c", 6)["shown"]  # func_c called directly from func_a is outside
    assert p.frame("main", 4)["parent"] and p.frame("main", 4)["shown"]
    assert p.page.locator("#unzoom").is_visible()
    assert "func_c" in p.frame("func_c", 7)["label"]
    p.page.locator("#unzoom").click()
    assert p.frame("func_b", 6)["width"] == pytest.approx(before["width"], abs=0.01)
    assert all(f["shown"] for f in p.frames())
    assert p.errors == []


def test_search_button_highlights_and_reports_matched(tmp_path, open_svg):
    path, c = _svg(tmp_path, BUSY)
    p = open_svg(path)
    p.answers.append("func_[bc]")
    p.page.locator("#search").click()
    frames = p.frames()
    assert {f["name"] for f in frames if f["match"]} == {"func_b", "func_c"}
    hi = [f["fill"] for f in frames if f["match"]]
    assert set(hi) == {"rgb(224, 64, 224)"}
    want = _share(c.stacks, lambda k: any(x in ("func_b", "func_c") for x in k))
    assert p.page.locator("#matched").text_content() == f"Matched: {want}%"
    # the button now resets the search
    assert p.page.locator("#search").text_content() == "Reset Search"
    p.page.locator("#search").click()
    assert not any(f["match"] for f in p.frames())
    assert p.page.locator("#matched").text_content().strip() == ""
    assert p.errors == []


def test_ctrl_f_and_case_toggle(tmp_path, open_svg):
    path, c = _svg(tmp_path, BUSY)
    p = open_svg(path)
    p.page.mouse.move(5, 5)
    p.answers.append("FUNC_C$")
    p.page.keyboard.press("Control+f")
    assert p.dialogs and p.dialogs[-1].startswith("prompt")
    assert p.page.locator("#matched").text_content() == "Matched: 0.00%"
    p.page.locator("#ignorecase").click()
    want = _share(c.stacks, lambda k: "func_c" in k)
    assert p.page.locator("#matched").text_content() == f"Matched: {want}%"
    assert {f["name"] for f in p.frames() if f["match"]} == {"func_c"}
    p.answers.append("([unclosed")
    p.page.keyboard.press("Control+f")
    assert p.page.locator("#matched").text_content() == "Invalid regular expression"
    assert p.errors == []


def test_hover_shows_details(tmp_path, open_svg):
    path, c = _svg(tmp_path, BUSY)
    p = open_svg(path)
    p.locator("func_a", 5).hover()
    total = sum(c.stacks.values())
    n = sum(v for k, v in c.stacks.items() if "func_a" in k)
    assert p.page.locator("#details").text_content() == f"Function: func_a ({n:,} samples, {100 * n / total:.2f}%)"
    p.page.mouse.move(2, 2)
    assert p.page.locator("#details").text_content().strip() == ""
    assert p.errors == []


def test_hostile_names_run_no_script(tmp_path, open_svg):
    path, c = _svg(tmp_path, DATA / "collapse" / "hostile-names" / "input.txt", minwidth=0)
    p = open_svg(path)
    hostile = "</text><script>alert(1)</script>"
    assert p.page.evaluate("document.getElementsByTagName('script').length") == 1
    f = p.frame(hostile)
    assert f["label"] == hostile or f["label"].endswith("..")
    p.locator("script", 3).hover()
    assert hostile in p.page.locator("#details").text_content()
    p.locator("script", 3).click()
    p.answers.append("alert")
    p.page.locator("#search").click()
    assert {x["name"] for x in p.frames() if x["match"]} == {hostile}
    assert p.frame("&quot;&amp;<!--]]>")["shown"]  # the literal text, not an entity
    assert [d for d in p.dialogs if not d.startswith("prompt")] == []
    assert p.errors == []


def test_inverted_reverse_module_palette(tmp_path, open_svg):
    path, c = _svg(tmp_path, BUSY, inverted=True, reverse=True, palette="module")
    p = open_svg(path)
    fc = p.frame("func_c", 1)  # reversed: the leaf is the first frame above 'all'
    root = p.frame("all", 0)
    assert fc["shown"] and root["shown"]
    assert p.page.evaluate("document.querySelector('#legend') !== null")
    p.locator("func_c", 1).click()
    assert p.frame("func_c", 1)["width"] == pytest.approx(1180, abs=0.1)
    assert p.errors == []


def test_generated_20k_style_profile_loads_and_zooms(tmp_path, open_svg):
    """A generated profile (bench generator, 3,000 stacks) renders, zooms and searches cleanly."""
    src = tmp_path / "gen.out"
    subprocess.run([sys.executable, str(REPO / "bench" / "gen_stap.py"), "-n", "3000", "-o", str(src)], check=True)
    path, c = _svg(tmp_path, src, palette="module")
    p = open_svg(path)
    n = p.page.evaluate("window.stapdoctorFlame.count")
    assert n > 1000
    p.page.locator("#frames > g[data-d='3']").first.click()
    assert p.page.locator("#unzoom").is_visible()
    p.answers.append("libc")
    p.page.locator("#search").click()
    assert p.page.locator("#matched").text_content().startswith("Matched: ")
    assert p.errors == []


def test_differential_graph_hover_zoom_search(tmp_path, open_svg):
    """flamegraph --diff: AFTER's widths, red/blue by change, both counts and the change on hover."""
    from typer.testing import CliRunner

    from stapdoctor.profiler.cli import flamegraph
    import typer

    before = tmp_path / "before.folded"
    after = tmp_path / "after.folded"
    before.write_text("main;parse 60\nmain;write;flush 40\n")
    after.write_text("main;parse 20\nmain;write;flush 40\nmain;cache 30\n")
    out = tmp_path / "diff.svg"
    app = typer.Typer(add_completion=False)
    app.command()(flamegraph)
    r = CliRunner().invoke(app, ["--diff", str(before), str(after), "-o", str(out), "--top", "0"])
    assert r.exit_code == 0, r.output
    p = open_svg(out)
    assert p.frame("parse", 2)["fill"] == "rgb(45, 45, 255)"  # the largest change, a shrink: deepest blue
    assert p.frame("cache", 2)["fill"].startswith("rgb(255, ")  # grew: red
    assert p.frame("write", 2)["fill"] == "rgb(255, 255, 255)"  # unchanged
    p.locator("parse", 2).hover()
    assert p.page.locator("#details").text_content() == (
        "Function: parse (20 samples, 22.22%; before 60; change -40, -44.44%)")
    p.locator("write", 2).click()
    assert p.frame("flush", 3)["width"] == pytest.approx(1180, abs=0.1)
    p.answers.append("^(parse|cache)$")
    p.page.locator("#search").click()
    assert {f["name"] for f in p.frames() if f["match"]} == {"parse", "cache"}
    assert p.errors == []
