"""Interactive SVG flame graph (own renderer; the JavaScript and CSS live in ``assets/``).

The layout walks the stacks in sorted order: neighbours share their common prefix, so every frame
is opened once and closed once (no tree object), and a closed frame narrower than ``minwidth``
pixels is never written.  Frame names are hostile input: every name goes through :func:`xml_text`
and the only ``<script>`` in the document is ours.
"""

from __future__ import annotations

import json
import re
import zlib
from bisect import bisect_right
from importlib import resources
from itertools import compress
from itertools import count as naturals
from operator import ne
from typing import IO, Iterable

FRAME_H = 16
FONT_SIZE = 12
CHAR_W = 0.59  # average glyph width / font size (monospace-ish estimate for trimming)
XPAD = 10
TOP_BASE = 40  # room for title
BOTTOM = 36  # room for details + matched line

# XML 1.0 forbids most C0 controls and U+FFFE/U+FFFF; lone surrogates cannot be encoded.
_BAD_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff\ud800-\udfff]")


_NEEDS_ESCAPE = re.compile("[&<>\"'\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff\ud800-\udfff]")


def xml_text(s: str) -> str:
    """Escape for XML text and attribute values (quotes too) and drop chars XML cannot carry."""
    if _NEEDS_ESCAPE.search(s) is None:  # most names: nothing to do (one scan instead of six)
        return s
    if _BAD_XML.search(s):
        s = _BAD_XML.sub("\ufffd", s)
    return (
        s.replace("&", "&amp;")
        .replace("<", "&lt;")
        .replace(">", "&gt;")
        .replace('"', "&quot;")
        .replace("'", "&#39;")
    )


def json_for_markup(obj) -> str:
    """JSON that stays inert inside markup: ``<``, ``>``, ``&`` become ``\\u003c`` etc."""
    return (
        json.dumps(obj, ensure_ascii=False, sort_keys=True)
        .replace("<", "\\u003c")
        .replace(">", "\\u003e")
        .replace("&", "\\u0026")
        .replace("\u2028", "\\u2028")
        .replace("\u2029", "\\u2029")
    )


def _asset(name: str) -> str:
    return resources.files("stapdoctor.profiler").joinpath("assets", name).read_text("utf-8")


def _h(name: str, salt: int = 0) -> tuple[float, float, float]:
    """Three stable pseudo-random numbers in [0,1) from a name (colours do not change run to run)."""
    v = zlib.crc32(name.encode("utf-8", "replace"), salt)
    return (v & 0xFF) / 256.0, ((v >> 8) & 0xFF) / 256.0, ((v >> 16) & 0xFF) / 256.0


_UNRESOLVED_GREY = "#b8b8b0"


def hot_colour(name: str) -> str:
    """FlameGraph-like warm colours; frames without a symbol are grey so they stand out."""
    if name.startswith("0x") or (name.startswith("[") and _UNRESOLVED_RE.match(name)):
        return _UNRESOLVED_GREY
    a, b, c = _h(name)
    return "#%02x%02x%02x" % (205 + int(50 * c), int(230 * a), int(55 * b))


# base hues for the module palette: distinct, readable under black text
_MODULE_BASES = [
    (230, 110, 60),  # orange
    (90, 160, 230),  # blue
    (110, 195, 95),  # green
    (200, 130, 220),  # violet
    (230, 190, 60),  # yellow
    (80, 200, 190),  # teal
    (235, 120, 150),  # pink
    (170, 160, 110),  # khaki
    (150, 150, 235),  # lavender
    (205, 160, 110),  # tan
]
_UNKNOWN_RGB = (190, 190, 190)
_KERNEL_RGB = (235, 95, 95)

_UNRESOLVED_RE = re.compile(r"^\[(.+)\+0x[0-9a-fA-F]+\]$")


def frame_module(name: str, modules: dict[str, str] | None) -> str:
    """Module of a frame: from the parser's map, from ``[lib.so+0x..]`` names, else ``?``."""
    if modules:
        m = modules.get(name)
        if m:
            return m
    mm = _UNRESOLVED_RE.match(name)
    if mm:
        return mm.group(1)
    return "?"


def _module_colours(mod_samples: dict[str, int]) -> dict[str, tuple[int, int, int]]:
    """Busiest module gets the first hue, and so on; kernel and unknown have fixed colours."""
    out: dict[str, tuple[int, int, int]] = {}
    i = 0
    for mod, _ in sorted(mod_samples.items(), key=lambda kv: (-kv[1], kv[0])):
        if mod == "?":
            out[mod] = _UNKNOWN_RGB
        elif mod == "kernel":
            out[mod] = _KERNEL_RGB
        else:
            out[mod] = _MODULE_BASES[i % len(_MODULE_BASES)]
            i += 1
    return out


def _shade(rgb: tuple[int, int, int], name: str) -> str:
    """Vary a module's base colour slightly per function so neighbours stay distinguishable."""
    a, _, _ = _h(name, 7)
    f = 0.88 + 0.2 * a
    return "#%02x%02x%02x" % tuple(min(255, int(c * f)) for c in rgb)


def _fmt_int(n: int) -> str:
    return f"{n:,}"


def diff_colour(delta: int, maxdelta: int) -> str:
    """Red for growth, blue for shrinkage, white for none; deeper the closer |delta| is to the
    largest change in the graph (FlameGraph's differential scale)."""
    if not delta or not maxdelta:
        return "#ffffff"
    v = int(210 * min(1.0, abs(delta) / maxdelta))
    if delta > 0:
        return "#ff%02x%02x" % (255 - v, 255 - v)
    return "#%02x%02xff" % (255 - v, 255 - v)


def _delta_text(delta: int, total: int) -> str:
    """``+1,234, +5.10%``: the change, and the change as a share of the after total (no " (": the
    name is what comes before the last " (" of a title)."""
    pct = 100 * delta / total if total else 0.0
    return f"{delta:+,}, {pct:+.2f}%"


_GLYPH_W = FONT_SIZE * CHAR_W


def trim_label(name: str, width_px: float) -> str:
    """Text that fits a frame of ``width_px`` (same rule as the JavaScript uses after zooming, and as
    render_svg's frame loop applies inline)."""
    room = int((width_px - 6) / _GLYPH_W)
    if room < 3:
        return ""
    if len(name) <= room:
        return name
    return name[: room - 2] + ".."


def _layout(
    stacks: dict[tuple[str, ...], int], min_samples: float, before: dict[tuple[str, ...], int] | None = None
) -> tuple[list[tuple], int]:
    """Frames as (name, depth, start, samples[, samples before]) for every frame at least
    ``min_samples`` wide.

    Depth 0 is the synthetic root ``all``.  Returns the frames and the deepest depth kept.  With
    ``before`` (a differential graph) the widths are still ``stacks``'s and each frame also gets its
    count in ``before``: stacks found only there add to their callers' counts, not to any width.
    """
    if before is None:
        items = sorted(stacks.items())
    else:
        items = sorted((k, (stacks.get(k, 0), before.get(k, 0))) for k in stacks.keys() | before.keys())
    out: list[tuple] = []
    emit = out.append
    open_names: list[str] = []
    open_start: list[int] = []  # non-decreasing with depth: deeper frames start later
    open_bstart: list[int] = []  # the same, in the before counts
    prev: tuple[str, ...] = ()
    x = 0
    xb = 0
    maxdepth = 0

    def close(i: int, x: int) -> None:
        """Emit the open frames at depth >= i that are wide enough, and close them all."""
        nonlocal maxdepth
        # widths shrink with depth, so the wide-enough ones are a contiguous run from i
        k = bisect_right(open_start, x - min_samples, i)
        if before is None:
            for d in range(i, k):
                emit((open_names[d], d + 1, open_start[d], x - open_start[d]))
        else:
            for d in range(i, k):
                emit((open_names[d], d + 1, open_start[d], x - open_start[d], xb - open_bstart[d]))
            del open_bstart[i:]
        if k > i and k > maxdepth:
            maxdepth = k
        del open_names[i:]
        del open_start[i:]

    for stack, count in items:
        if before is not None:
            count, bcount = count
            if count <= 0 and bcount <= 0:
                continue
            count = max(count, 0)
        elif count <= 0:
            continue
        # the frames this stack shares with the previous one: the first index where they differ, found
        # by C iterators that stop there (no slices, no list of comparisons)
        i = next(compress(naturals(), map(ne, prev, stack)), None)
        if i is None:
            i = min(len(prev), len(stack))
        if i < len(open_names):
            close(i, x)
        open_names.extend(stack[i:])
        open_start.extend([x] * (len(stack) - i))
        if before is not None:
            open_bstart.extend([xb] * (len(stack) - i))
            xb += max(bcount, 0)
        x += count
        prev = stack
    close(0, x)
    if x > 0:
        emit(("all", 0, 0, x) if before is None else ("all", 0, 0, x, xb))
    return out, maxdepth


def reverse_stacks(stacks: dict[tuple[str, ...], int]) -> dict[tuple[str, ...], int]:
    """Leaf-first stacks (merge from the leaves: who calls the hot functions)."""
    out: dict[tuple[str, ...], int] = {}
    for stack, count in stacks.items():
        key = stack[::-1]
        out[key] = out.get(key, 0) + count
    return out


def render_svg(
    stacks: dict[tuple[str, ...], int],
    out: IO,
    *,
    title: str = "Flame Graph",
    subtitle: str | None = None,
    meta: dict | None = None,
    width: int = 1200,
    minwidth: float = 0.1,
    palette: str = "hot",
    reverse: bool = False,
    inverted: bool = False,
    modules: dict[str, str] | None = None,
    count_name: str = "samples",
    before: dict[tuple[str, ...], int] | None = None,
    frame_note=None,
) -> dict:
    """Write an interactive SVG flame graph to ``out`` (text or binary stream).

    With ``before`` it is a differential graph: ``stacks`` (the after profile) gives the widths,
    each frame is red where it grew since ``before``, blue where it shrank (the deeper, the larger
    the change), and its tooltip and details line give both counts and the change.
    Returns a small report: frames written (after pruning), total samples, maximum depth.
    """
    if palette not in ("hot", "module"):
        raise ValueError(f"unknown palette {palette!r} (hot, module)")
    if width < 200:
        raise ValueError("width must be at least 200 pixels")
    if minwidth < 0:
        raise ValueError("minwidth must not be negative")
    if reverse:
        stacks = reverse_stacks(stacks)
        if before is not None:
            before = reverse_stacks(before)
    total = sum(c for c in stacks.values() if c > 0)
    plot_w = width - 2 * XPAD
    scale = plot_w / total if total else 0.0
    min_samples = (minwidth / scale) if scale else 0.0
    if before is not None:
        min_samples = max(min_samples, 1e-9)  # a frame gone since before has no width: not drawn
    frames, maxdepth = _layout(stacks, min_samples, before)
    diff = before is not None
    maxdelta = max((abs(f[3] - f[4]) for f in frames if f[1] > 0), default=0) if diff else 0

    top = TOP_BASE + (16 if (subtitle or meta) else 0)
    legend_rows = 0
    mod_colour: dict[str, tuple[int, int, int]] = {}
    if diff:
        legend_rows = 1
    elif palette == "module":
        mod_samples: dict[str, int] = {}
        for name, depth, _start, w, *_ in frames:
            if depth == 0:
                continue
            m = frame_module(name, modules)
            # self-ish weight: sum of widths is fine for ordering busiest modules first
            mod_samples[m] = mod_samples.get(m, 0) + w
        mod_colour = _module_colours(mod_samples)
        legend_rows = 1 if mod_colour else 0
    top += 18 * legend_rows
    height = top + (maxdepth + 1) * FRAME_H + BOTTOM

    def y_of(depth: int) -> int:
        if inverted:
            return top + depth * FRAME_H
        return top + (maxdepth - depth) * FRAME_H

    unit_l = xml_text(count_name)
    parts: list[str] = []
    w_ = parts.append
    try:
        out.write("")
        binary = False
    except TypeError:
        binary = True

    def flush() -> None:
        """Write what is buffered (the SVG is written in pieces, never held whole)."""
        data = "".join(parts)
        parts.clear()
        out.write(data.encode("utf-8") if binary else data)
    w_('<?xml version="1.0" encoding="UTF-8" standalone="no"?>\n')
    w_(
        f'<svg version="1.1" xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" class="stapdoctor-flame{" inverted" if inverted else ""}" '
        f'data-total="{total}" data-width="{width}" data-xpad="{XPAD}" data-fh="{FRAME_H}" '
        f'data-fs="{FONT_SIZE}" data-cw="{CHAR_W}" data-unit="{xml_text(count_name)}" '
        f'data-inverted="{1 if inverted else 0}" data-reverse="{1 if reverse else 0}" '
        f'data-diff="{1 if diff else 0}">\n'
    )
    meta_full = dict(meta or {})
    meta_full.setdefault("samples", total)
    meta_full["generator"] = "stapdoctor"
    w_('<metadata id="profile-meta">' + xml_text(json_for_markup(meta_full)) + "</metadata>\n")
    w_("<style>" + xml_text_css(_asset("flame.css")) + "</style>\n")
    w_(f'<rect class="bg" x="0" y="0" width="{width}" height="{height}"/>\n')
    w_(f'<text id="title" x="{width / 2:.0f}" y="24">{xml_text(title)}</text>\n')
    sub_parts = []
    if subtitle:
        sub_parts.append(subtitle)
    if meta:
        for key, label in (
            ("command", ""),
            ("source", ""),
            ("pid", "pid "),
            ("duration", ""),
            ("samples", ""),
            ("stap_version", "stap "),
            ("date", ""),
        ):
            v = meta.get(key)
            if v is None or v == "":
                continue
            if key == "samples":
                v = f"{_fmt_int(int(v))} samples" if str(v).isdigit() else f"{v} samples"
            elif key == "duration":
                v = f"{v} s" if isinstance(v, (int, float)) else str(v)
            sub_parts.append(f"{label}{v}")
    if sub_parts:
        w_(f'<text id="subtitle" x="{width / 2:.0f}" y="42">{xml_text("  ·  ".join(map(str, sub_parts)))}</text>\n')
    if diff:
        ly = top - 14
        w_('<g id="legend">'
           f'<rect x="{XPAD}" y="{ly}" width="10" height="10" fill="{diff_colour(1, 1)}"/>'
           f'<text x="{XPAD + 14}" y="{ly + 9}">more {unit_l} than before</text>'
           f'<rect x="{XPAD + 200}" y="{ly}" width="10" height="10" fill="{diff_colour(-1, 1)}"/>'
           f'<text x="{XPAD + 214}" y="{ly + 9}">fewer (widths: after)</text></g>\n')
    elif legend_rows:
        lx = XPAD
        ly = top - 14
        w_('<g id="legend">')
        for mod, rgb in sorted(mod_colour.items(), key=lambda kv: kv[0]):
            label = mod if mod != "?" else "unknown module"
            w_(
                f'<rect x="{lx}" y="{ly}" width="10" height="10" fill="#%02x%02x%02x"/>' % rgb
                + f'<text x="{lx + 14}" y="{ly + 9}">{xml_text(label)}</text>'
            )
            lx += 24 + int(len(label) * FONT_SIZE * CHAR_W)
            if lx > width - 100:
                break
        w_("</g>\n")
    w_(f'<text id="search" class="btn" x="{width - XPAD - 110}" y="24">Search</text>\n')
    w_(f'<text id="ignorecase" class="btn" x="{width - XPAD - 20}" y="24">ic</text>\n')
    w_(f'<text id="unzoom" class="btn hide" x="{XPAD}" y="24">Reset Zoom</text>\n')
    w_(f'<text id="details" x="{XPAD}" y="{height - 12}"> </text>\n')
    w_(f'<text id="matched" x="{width - XPAD}" y="{height - 12}"> </text>\n')
    w_(f'<g id="frames" data-top="{top}" data-maxdepth="{maxdepth}">\n')

    pct_div = total / 100.0 if total else 1.0
    unit = xml_text(count_name)
    # The loop below runs once per frame written (tens of thousands): what depends only on the name
    # (escaped text, colour, note) is computed once per name, what depends only on the sample count
    # (width, tooltip numbers) once per count, the y texts once per depth, and the label is trimmed
    # here as trim_label does (one call less per frame).
    per_name: dict[str, tuple[str, str, str, int]] = {}
    per_samples: dict[int, tuple[str, str, int]] = {}
    y_texts = [(y, f"{y + 11.5}") for y in map(y_of, range(maxdepth + 1))]
    frame_h1 = FRAME_H - 1
    for frame in frames:
        name, depth, start, samples = frame[:4]
        x = XPAD + start * scale
        known = per_name.get(name)
        if known is None:
            # frame_note(name) -> extra tooltip text or None (the profile's missing-symbols hook,
            # profiler/missing_symbols.py); it must not contain " (" (flame.js cuts the name there)
            note = frame_note(name) if frame_note is not None else None
            if diff:
                fill = ""
            elif palette == "hot":
                fill = hot_colour(name)
            else:
                fill = _shade(mod_colour.get(frame_module(name, modules), _UNKNOWN_RGB), name)
            known = per_name[name] = (xml_text(name), fill, xml_text(note) if note else "", len(name))
        esc, fill, note_x, name_len = known
        by_count = per_samples.get(samples)
        if by_count is None:
            fw = samples * scale
            # frames of the same width share these (most frames are narrow: few distinct widths)
            by_count = per_samples[samples] = (f"{fw:.2f}", f"{samples:,} {unit}, {samples / pct_div:.2f}%",
                                               int((fw - 6) / _GLYPH_W))  # room, as trim_label
        fw_text, info, room = by_count
        if diff:
            bsamples = frame[4]
            fill = diff_colour(samples - bsamples, maxdelta)
            info = f"{info}; before {bsamples:,}; change {_delta_text(samples - bsamples, total)}"
            extra = f' data-b="{bsamples}"'
        else:
            extra = ""
            if depth == 0:
                fill = "#c8c8c8"
        if room < 3:
            label = ""
        elif name_len <= room:
            label = esc
        else:
            label = xml_text(name[: room - 2] + "..")
        y, ty = y_texts[depth]
        if len(parts) >= 2000:
            flush()
        w_(
            f'<g data-x="{start}" data-s="{samples}" data-d="{depth}"{extra}><title>{esc} ({info})'
            f"{note_x}</title>"
            f'<rect x="{x:.2f}" y="{y}" width="{fw_text}" height="{frame_h1}" fill="{fill}" rx="2"/>'
            f'<text x="{x + 3:.2f}" y="{ty}">{label}</text></g>\n'
        )
    w_("</g>\n")
    js = _asset("flame.js")
    if "]]>" in js:  # our own asset; keep the CDATA section well-formed
        raise RuntimeError("flame.js must not contain ']]>'")
    w_('<script type="text/ecmascript"><![CDATA[\n' + js + "\n]]></script>\n")
    w_("</svg>\n")
    flush()
    return {"frames": len(frames), "total": total, "maxdepth": maxdepth}


def xml_text_css(css: str) -> str:
    """CSS goes into a <style> element as text: only ``&`` and ``<`` need escaping there."""
    return css.replace("&", "&amp;").replace("<", "&lt;")


def render_svg_string(stacks: dict[tuple[str, ...], int], **kw) -> str:
    """Convenience for tests: the SVG as a string."""
    import io

    buf = io.StringIO()
    render_svg(stacks, buf, **kw)
    return buf.getvalue()


__all__: Iterable[str] = ["render_svg", "render_svg_string", "xml_text", "json_for_markup", "trim_label"]
