"""Target readiness (--pid / --binary): will its frames have names, and can its stacks be unwound?"""
from __future__ import annotations

import os

from .. import knowledge
from . import Finding, check


def object_state(o: dict) -> tuple[str, str]:
    """('ok'|'partial'|'hex', why) for one mapped object."""
    if o.get("status") != "ok":
        return "hex", o.get("error") or o.get("status", "unreadable")
    symtab = o.get("has_symtab") or o.get("debug_has_symtab")
    unwind = o.get("has_eh_frame") or o.get("has_debug_frame") or o.get("debug_has_debug_frame")
    if not unwind:
        return "partial" if symtab else "hex", "no .eh_frame/.debug_frame: stacks stop here"
    if symtab:
        return "ok", "symbols" + (f" from {o['debug_file']}" if o.get("debug_file") and not o.get("has_symtab") else "")
    if o.get("has_dynsym"):
        return "partial", "exported symbols only (.dynsym): static functions show under a neighbour's name"
    return "hex", "no symbol table and no separate debuginfo"


@check("target.symbols", "target")
def symbols(ctx) -> Finding | None:
    t = ctx.snap.target
    if t is None:
        return None
    title = f"target symbols ({'pid ' + str(t['pid']) if t.get('pid') is not None else t.get('binary')})"
    if t.get("error"):
        return Finding("", title, "fail", t["error"], "check the pid/path (ps -p PID)")
    bad, partial = [], []
    for o in t["objects"]:
        st, why = object_state(o)
        name = os.path.basename(o["path"])
        if st == "hex":
            bad.append(f"{name} ({why})")
        elif st == "partial":
            partial.append(f"{name} ({why})")
    n = len(t["objects"])
    how = knowledge.debug_symbols_remedy(ctx.os.get("id", ""), ctx.os.get("codename", ""))
    fix = (f"install the debug symbols of the packages that own these files, PKG ({how}), "
           "or fetch them by build-id from the distribution's debuginfod, or rebuild with -g and without "
           "stripping; build with -fno-omit-frame-pointer for complete stacks")
    if bad:
        return Finding("", title, "warn", f"would show as hex addresses: {'; '.join(bad)}"
                       + (f"; partial: {'; '.join(partial)}" if partial else ""), fix)
    if partial:
        return Finding("", title, "warn", f"{n} objects; partial: {'; '.join(partial)}", fix)
    return Finding("", title, "pass", f"{n} objects, all with symbols and unwind data")
