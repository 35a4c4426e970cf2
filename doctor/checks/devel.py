"""Kernel devel files for the running kernel: what stap's pass 4 (kbuild) compiles against."""
from __future__ import annotations

import re

from .. import knowledge, parsers
from . import Finding, check
from .kernel import headers_fix

BUILD = "/lib/modules/{R}/build"


@check("devel.build", "devel")
def build(ctx) -> Finding:
    title = "kernel headers (build tree)"
    snap = ctx.snap
    link = snap.fact(BUILD)
    fix = headers_fix(ctx)
    if link.get("status") != "ok":
        packaged, why = ctx.kernel_packaged
        custom = f"; a custom kernel: no package provides it ({why})" if packaged is False else ""
        return Finding("", title, "fail", f"{snap.path(BUILD)} does not exist: no headers for {snap.kernel_release}"
                       + custom, fix)
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
                   "the kernel the headers belong to; " + headers_fix(ctx))


def _major(text: str | None) -> tuple[str, str] | None:
    """(major, full version) from a compiler banner or `gcc -dumpfullversion` ('gcc-12 (Debian 12.2.0-14) 12.2.0')."""
    m = re.findall(r"\b(\d+)\.(\d+)(?:\.(\d+))?\b", text or "")
    if not m:
        m2 = re.fullmatch(r"\s*(\d+)\s*", text or "")
        return (m2.group(1), m2.group(1)) if m2 else None
    major, minor, patch = m[-1]
    return major, ".".join(x for x in (major, minor, patch) if x)


@check("devel.toolchain", "devel")
def toolchain(ctx) -> Finding:
    """stap's pass 4 runs the kernel's kbuild: make, and gcc, best the major version that built the kernel
    (an older gcc rejects the flags the kernel's newer one put in its Makefiles)."""
    title = "compiler and make (pass 4)"
    snap = ctx.snap
    missing = [snap.tools.get(n, {}).get("name", n) for n in ("gcc", "make") if snap.tools.get(n, {}).get("status") != "ok"]
    if missing and not snap.tools.get("gcc") and not snap.tools.get("make"):
        return Finding("", title, "skip", "toolchain not collected")
    pk = ctx.packages
    if missing:
        tool = "apt-get install -y" if pk and pk["family"] in ("debian", "ubuntu") else "dnf install -y"
        return Finding("", title, "fail", f"no {' and no '.join(missing)} in PATH: stap cannot compile its module "
                       "(pass 4 runs the kernel's kbuild)", f"{tool} {' '.join(missing)}")
    gcc_path = snap.tools["gcc"].get("path")
    cmd = snap.commands.get("gcc-version") or {}
    mine = _major(cmd.get("stdout")) if cmd.get("rc") == 0 else None
    cc_text = (ctx.opt("CONFIG_CC_VERSION_TEXT") or "").strip('"')
    kernel_src = "CONFIG_CC_VERSION_TEXT" if cc_text else "/proc/version"
    if not cc_text and ctx.kernel_gcc:
        cc_text = f"gcc {ctx.kernel_gcc}"
    theirs = _major(cc_text) if cc_text and "clang" not in cc_text else None
    if mine is None:
        return Finding("", title, "pass", f"{gcc_path} and make found (gcc version not collected)")
    if theirs is None:
        return Finding("", title, "pass", f"gcc {mine[1]} ({gcc_path}) and make; the kernel's compiler is "
                       + (f"{cc_text[:60]!r}: not compared" if cc_text else "unknown"))
    if mine[0] == theirs[0]:
        return Finding("", title, "pass", f"gcc {mine[1]} ({gcc_path}) has the kernel's major version ({theirs[1]}, "
                       f"{kernel_src}); make found")
    pkg = knowledge.compiler_package(ctx.os.get("id", ""), theirs[0])
    get = f"install {pkg}" if pkg else f"install gcc {theirs[0]}"
    return Finding("", title, "warn", f"the kernel was built by gcc {theirs[1]} ({kernel_src}) but stap's pass 4 "
                   f"calls gcc {mine[1]} ({gcc_path}): a different major version often fails pass 4 (flags the "
                   "other gcc does not know)", f"{get} and make kbuild use it (stap -B CC=gcc-{theirs[0]}, or make it "
                   f"the default gcc), or boot a kernel built by gcc {mine[0]}")
