"""Kernel debug symbols: a vmlinux with DWARF whose GNU build-id equals the running kernel's."""
from __future__ import annotations

from .. import elfinfo, knowledge
from . import Finding, check


def running_build_id(snap) -> tuple[str | None, str | None]:
    notes = snap.files.get("/sys/kernel/notes", {})
    if notes.get("hex"):
        bid = elfinfo.build_id_from_notes(bytes.fromhex(notes["hex"]))
        if bid:
            return bid, "/sys/kernel/notes"
    vid = snap.fact("/lib/modules/{R}/build/vmlinux.id")
    if vid.get("status") == "ok" and (vid.get("hex") or vid.get("text")):
        # hex since snapshots keep it binary; text (older snapshots) only survives for UTF-8-clean ids
        raw = bytes.fromhex(vid["hex"]) if vid.get("hex") else vid["text"].encode("utf-8", "surrogateescape")
        bid = elfinfo.build_id_from_notes(raw)
        if bid:
            return bid, snap.path("/lib/modules/{R}/build/vmlinux.id")
    return None, None


def _install_cmd(ctx) -> str | None:
    pk = ctx.packages
    if not pk:
        return None
    if pk.get("debuginfo_method") == "launchpad":
        return f"download {pk['debuginfo'][0]} from {pk['launchpad_url']} and dpkg -i it"
    # On a stock host the -dbgsym package is not findable until the ddebs source and key are there.
    return " && ".join(knowledge.debuginfo_commands(pk))


@check("debuginfo.vmlinux", "debuginfo")
def vmlinux(ctx) -> Finding:
    title = "kernel debug symbols (vmlinux)"
    snap = ctx.snap
    want, want_src = running_build_id(snap)
    fix = ctx.remedy("debuginfo", _install_cmd(ctx))
    with_dwarf = [(p, e) for p, e in snap.elf.items() if e.get("status") == "ok" and e.get("has_dwarf")]
    unreadable = [(p, e) for p, e in snap.elf.items() if e.get("status") in ("unreadable", "error")]
    if not with_dwarf:
        seen = [p for p, e in snap.elf.items() if e.get("status") == "ok"]
        detail = (f"{', '.join(seen)} has no DWARF" if seen else "no vmlinux with DWARF in the places stap looks")
        if unreadable:
            detail += "; " + "; ".join(f"{p}: {e.get('error', e['status'])}" for p, e in unreadable)
        if snap.env.get("DEBUGINFOD_URLS"):
            return Finding("", title, "warn", f"{detail}; DEBUGINFOD_URLS={snap.env['DEBUGINFOD_URLS']} is set, so "
                           "stap may download it (slow on first use, and only if that server has this kernel)", fix)
        return Finding("", title, "fail", detail, fix)
    if want is None:
        p, e = with_dwarf[0]
        return Finding("", title, "warn", f"{p} has DWARF (build-id {e.get('build_id')}) but the running kernel's "
                       "build-id is unknown (/sys/kernel/notes unreadable): cannot confirm they match",
                       "run stapdoctor check as root")
    for p, e in with_dwarf:
        if e.get("build_id") == want:
            return Finding("", title, "pass", f"{p}: build-id {want} = running kernel ({want_src})")
    got = ", ".join(f"{p} has {e.get('build_id')}" for p, e in with_dwarf)
    return Finding("", title, "fail", f"build-id mismatch: running kernel {want} ({want_src}); {got}",
                   "the debug package belongs to another build: install the one for the running kernel's exact "
                   "version; " + fix)
