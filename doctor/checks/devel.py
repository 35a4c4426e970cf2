"""Kernel devel files for the running kernel: what stap's pass 4 (kbuild) compiles against."""
from __future__ import annotations

from .. import parsers
from . import Finding, check
from .kernel import _hdr_cmd

BUILD = "/lib/modules/{R}/build"


@check("devel.build", "devel")
def build(ctx) -> Finding:
    title = "kernel headers (build tree)"
    snap = ctx.snap
    link = snap.fact(BUILD)
    fix = ctx.remedy("kernel_devel", _hdr_cmd(ctx))
    if link.get("status") != "ok":
        return Finding("", title, "fail", f"{snap.path(BUILD)} does not exist: no headers for {snap.kernel_release}", fix)
    if not link.get("resolves"):
        return Finding("", title, "fail", f"{snap.path(BUILD)} -> {link.get('link')} does not resolve "
                       "(headers package removed?)", fix)
    missing = [n for n in (".config", "Makefile", "Module.symvers") if not snap.exists(f"{BUILD}/{n}")]
    if missing:
        return Finding("", title, "fail", f"{snap.path(BUILD)} lacks {', '.join(missing)}", fix)
    target = f" -> {link['link']}" if link.get("link") else ""
    return Finding("", title, "pass", f"{snap.path(BUILD)}{target} has .config, Makefile, Module.symvers")


@check("devel.uts", "devel")
def uts(ctx) -> Finding:
    """Headers of another build of the same release compile, then fail to load (or crash)."""
    title = "headers match the running build"
    snap = ctx.snap
    if snap.fact(BUILD).get("status") != "ok":
        return Finding("", title, "skip", "no build tree")
    header = None
    for name in ("include/generated/utsversion.h", "include/generated/compile.h"):
        text = snap.text(f"{BUILD}/{name}")
        if text and parsers.compile_h_uts(text):
            header = (name, parsers.compile_h_uts(text))
            break
    running = parsers.proc_version_uts(snap.text("/proc/version") or "")
    if header is None:
        return Finding("", title, "warn", "no UTS_VERSION in the build tree's include/generated/"
                       "{utsversion.h,compile.h}: cannot confirm the headers match the running build",
                       "compare the headers package version with `uname -v`")
    if running is None:
        return Finding("", title, "skip", "no /proc/version to compare with")
    if header[1] == running:
        return Finding("", title, "pass", f"UTS_VERSION {header[1]!r} in {header[0]} = /proc/version")
    return Finding("", title, "fail", f"UTS_VERSION {header[1]!r} in {header[0]} ≠ running {running!r}",
                   "install the headers built with the running kernel (same package version), or reboot into "
                   "the kernel the headers belong to; " + ctx.remedy("kernel_devel", _hdr_cmd(ctx)))
