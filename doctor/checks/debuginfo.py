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


def debuginfo_fix(ctx) -> str:
    packaged, why = ctx.kernel_packaged
    if packaged is False:
        from .. import knowledge
        return knowledge.custom_kernel_remedy("debuginfo", ctx.snap.kernel_release, why)
    return ctx.remedy("debuginfo", _install_cmd(ctx))


def _install_cmd(ctx) -> str | None:
    pk = ctx.packages
    if not pk:
        return None
    if pk.get("debuginfo_method") == "launchpad":
        return f"download {pk['debuginfo'][0]} from {pk['launchpad_url']} and dpkg -i it"
    # On a stock host the -dbgsym package is not findable until the ddebs source and key are there.
    return " && ".join(knowledge.debuginfo_commands(pk))


def _debuginfod(ctx, want: str | None, detail: str, fix: str) -> Finding | None:
    """No local vmlinux: what debuginfod says, asked for real (--debuginfod, --deep) as stap-prep does, or
    only configured (DEBUGINFOD_URLS, /etc/debuginfod/*.urls)."""
    from ..hostfacts import urls
    title = "kernel debug symbols (vmlinux)"
    found, where = urls(ctx.snap)
    res = ctx.snap.commands.get("debuginfod-find")
    in_env = bool(ctx.snap.env.get("DEBUGINFOD_URLS"))
    env_fix = (f"export DEBUGINFOD_URLS='{found}' where stap runs (login shells get it from {where}; sudo drops "
               "it unless kept with env_keep)")
    if res is not None and not res.get("error"):
        out = (res.get("stdout") or "").strip()
        if res.get("rc") == 0 and out:
            said = f"{detail}; debuginfod ({found}) served the running kernel's debuginfo (build-id {want}): {out[:120]}"
            if in_env:
                return Finding("", title, "pass", said)
            return Finding("", title, "warn", said + f"; but DEBUGINFOD_URLS is not set for stap", env_fix)
        err = ((res.get("stderr") or "").strip().splitlines() or [f"exit {res.get('rc')}"])[-1][:160]
        return Finding("", title, "fail", f"{detail}; debuginfod ({found}) has no debuginfo for build-id {want}: "
                       f"{err}", fix)
    if res is not None and "timed out" in (res.get("error") or "") and found:
        return Finding("", title, "warn", f"{detail}; debuginfod ({found}) did not answer for build-id {want}: "
                       f"{res['error']} (a kernel's debuginfo is hundreds of MB)",
                       f"debuginfod-find debuginfo {want}   (once, to fill the cache stap reads), or " + fix)
    if res is not None and res.get("error") and found:
        return Finding("", title, "fail", f"{detail}; debuginfod-find could not ask {found}: {res['error']}",
                       fix + "   (debuginfod-find is in the debuginfod / elfutils-debuginfod-client package)")
    if found:
        return Finding("", title, "warn", f"{detail}; debuginfod is configured ({where}: {found[:100]}), so stap may "
                       "download it (slow on first use, and only if that server has this kernel)"
                       + ("" if in_env else "; DEBUGINFOD_URLS is not set here"),
                       "stapdoctor check --debuginfod asks the server now; " + fix)
    return None


@check("debuginfo.vmlinux", "debuginfo")
def vmlinux(ctx) -> Finding:
    title = "kernel debug symbols (vmlinux)"
    snap = ctx.snap
    want, want_src = running_build_id(snap)
    fix = debuginfo_fix(ctx)
    with_dwarf = [(p, e) for p, e in snap.elf.items() if e.get("status") == "ok" and e.get("has_dwarf")]
    unreadable = [(p, e) for p, e in snap.elf.items() if e.get("status") in ("unreadable", "error")]
    if not with_dwarf:
        seen = [p for p, e in snap.elf.items() if e.get("status") == "ok"]
        detail = (f"{', '.join(seen)} has no DWARF" if seen else "no vmlinux with DWARF in the places stap looks")
        if unreadable:
            detail += "; " + "; ".join(f"{p}: {e.get('error', e['status'])}" for p, e in unreadable)
        got = _debuginfod(ctx, want, detail, fix)
        if got:
            return got
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
