"""Kernel support: the config file, user-space probing (uprobes/utrace) and the options stap needs."""
from __future__ import annotations

from .. import knowledge
from . import Finding, check
from .context import IMPORTANT

STAP_UPROBES_WORDS = ("process probes not available without kernel CONFIG_UTRACE or "
                      "CONFIG_TRACEPOINTS/CONFIG_ARCH_SUPPORTS_UPROBES/CONFIG_UPROBES")
NO_CONFIG = "no kernel config found: cannot tell"
BOOT_KERNEL = "boot a kernel built with {opt}=y (the distribution's stock kernel has it)"


@check("kernel.config", "kernel")
def config(ctx) -> Finding:
    title = "kernel config"
    if not ctx.configs:
        tried = ", ".join(ctx.snap.path(t) for t in ("/lib/modules/{R}/build/.config", "/proc/config.gz",
                                                     "/boot/config-{R}"))
        return Finding("", title, "fail", f"none of {tried} exists",
                       headers_fix(ctx))
    if ctx.config is None:
        bad = "; ".join(f"{p}: {note}" for p, _, note in ctx.configs)
        return Finding("", title, "fail", f"no usable kernel config ({bad})",
                       "reinstall the kernel headers package; " + headers_fix(ctx))
    path, opts = ctx.config
    others = [(p, o) for p, o, _ in ctx.configs if o is not None and p != path]
    broken = [f"{p} ({note})" for p, o, note in ctx.configs if o is None]
    diffs = []
    for p, o in others:
        for name in IMPORTANT:
            a, b = opts.get(name, "n"), o.get(name, "n")
            if a != b:
                diffs.append(f"{name}={a} in {path} but {b} in {p}")
    if diffs:
        return Finding("", title, "warn", f"using {path}; configs disagree: " + "; ".join(diffs[:3]),
                       "the headers may belong to another build of this kernel: reinstall the headers for the "
                       "running kernel; " + headers_fix(ctx))
    extra = f"; unusable: {', '.join(broken)}" if broken else ""
    agree = f" (agrees with {', '.join(p for p, _ in others)})" if others else ""
    return Finding("", title, "pass", f"using {path}{agree}{extra}")


def headers_fix(ctx) -> str:
    """The playbook and package for the kernel's headers, or, for a kernel no package provides, its build tree."""
    packaged, why = ctx.kernel_packaged
    if packaged is False:
        return knowledge.custom_kernel_remedy("headers", ctx.snap.kernel_release, why)
    return ctx.remedy("kernel_devel", _hdr_cmd(ctx))


def _hdr_cmd(ctx) -> str | None:
    pk = ctx.packages
    if not pk:
        return None
    return f"{pk['install_command']} {' '.join(pk['headers'])}"


@check("kernel.uprobes", "kernel")
def uprobes(ctx) -> Finding:
    title = "user-space probing (uprobes/utrace)"
    if ctx.config is None:
        return Finding("", title, "skip", NO_CONFIG)
    ver, ver_src = ctx.kernel_version
    if ctx.on("CONFIG_UTRACE"):
        return Finding("", title, "pass", f"utrace kernel (CONFIG_UTRACE=y, {ver})")
    need = ("CONFIG_TRACEPOINTS", "CONFIG_ARCH_SUPPORTS_UPROBES", "CONFIG_UPROBES")
    missing = [n for n in need if not ctx.on(n)]
    old = knowledge.kernel_key(ver) < knowledge.kernel_key("3.5")
    if not missing and not old:
        return Finding("", title, "pass", f"kernel {ver} with " + ", ".join(f"{n}=y" for n in need))
    why = []
    if old:
        why.append(f"kernel {ver} (from {ver_src}) is older than 3.5, the first with uprobes")
    if missing:
        why.append(", ".join(f"{n}={ctx.opt(n) or 'unset'}" for n in missing))
    return Finding("", title, "fail", f"{STAP_UPROBES_WORDS} ({'; '.join(why)})",
                   "boot a kernel ≥ 3.5 with CONFIG_UPROBES=y (e.g. the distribution's newer or HWE kernel), "
                   "or a utrace-patched RHEL/Fedora kernel")


@check("kernel.uretprobes", "kernel")
def uretprobes(ctx) -> Finding:
    title = "return probes (uretprobes)"
    if ctx.config is None:
        return Finding("", title, "skip", NO_CONFIG)
    ver = ctx.kernel_version[0]
    if ctx.on("CONFIG_UTRACE"):
        return Finding("", title, "pass", "utrace kernel: stap's own uretprobes")
    if not ctx.on("CONFIG_UPROBES"):
        return Finding("", title, "skip", "no uprobes")
    if knowledge.kernel_key(ver) < knowledge.kernel_key("3.10"):
        return Finding("", title, "warn", f"kernel {ver} < 3.10: process.function().return probes unavailable "
                       "(sampling with timer.profile still works)",
                       "boot a kernel ≥ 3.10 to use .return probes")
    return Finding("", title, "pass", f"kernel {ver} ≥ 3.10 with CONFIG_UPROBES=y")


def _option(ctx, name: str, title: str, why: str, severity: str = "fail") -> Finding:
    if ctx.config is None:
        return Finding("", title, "skip", NO_CONFIG)
    val = ctx.opt(name)
    if val == "y":
        return Finding("", title, "pass", f"{name}=y")
    shown = "not set" if val in (None, "n") else f"={val}"
    return Finding("", title, severity, f"{name} {shown}: {why}", BOOT_KERNEL.format(opt=name))


@check("kernel.kprobes", "kernel")
def kprobes(ctx):
    return _option(ctx, "CONFIG_KPROBES", "kprobes", "kernel.function() probes and kernel stacks unavailable", "warn")


@check("kernel.relay", "kernel")
def relay(ctx):
    return _option(ctx, "CONFIG_RELAY", "relay transport", "stap's runtime cannot send data to user space")


@check("kernel.debugfs", "kernel")
def debugfs(ctx):
    return _option(ctx, "CONFIG_DEBUG_FS", "debugfs", "stap before 4.4 needs debugfs for its transport", "warn")


@check("kernel.modules", "kernel")
def modules(ctx):
    title = "loadable modules"
    disabled = (ctx.snap.text("/proc/sys/kernel/modules_disabled") or "").strip()
    if ctx.config is not None and not ctx.on("CONFIG_MODULES"):
        return Finding("", title, "fail", "CONFIG_MODULES not set: stap cannot work at all on this kernel "
                       "(its probes are kernel modules)", BOOT_KERNEL.format(opt="CONFIG_MODULES"))
    if disabled == "1":
        return Finding("", title, "fail", "/proc/sys/kernel/modules_disabled=1: no module can be loaded until reboot",
                       "reboot without setting kernel.modules_disabled=1 (sysctl.d)")
    if ctx.config is None:
        return Finding("", title, "skip", NO_CONFIG)
    return Finding("", title, "pass", "CONFIG_MODULES=y" + (", modules_disabled=0" if disabled == "0" else ""))


@check("kernel.module_unload", "kernel")
def module_unload(ctx):
    return _option(ctx, "CONFIG_MODULE_UNLOAD", "module unloading", "stap cannot remove its module after a run")


@check("kernel.debug_info", "kernel")
def debug_info(ctx):
    return _option(ctx, "CONFIG_DEBUG_INFO", "kernel built with debug info",
                   "no kernel DWARF exists: kernel stacks and $variables unavailable", "warn")


@check("kernel.frame_warn", "kernel")
def frame_warn(ctx) -> Finding:
    """Generated code keeps MAXSTRINGLEN buffers on the stack; -Werror=frame-larger-than breaks pass 4."""
    title = "stack frame limit (CONFIG_FRAME_WARN)"
    if ctx.config is None:
        return Finding("", title, "skip", NO_CONFIG)
    raw = ctx.opt("CONFIG_FRAME_WARN")
    try:
        fw = int(raw) if raw not in (None, "n") else None
    except ValueError:
        fw = None
    if not fw:
        return Finding("", title, "pass", "CONFIG_FRAME_WARN unset: no frame-size limit")
    safe = knowledge.safe_maxstringlen(fw)
    over = safe * 2
    return Finding("", title, "pass", f"CONFIG_FRAME_WARN={fw}: stapdoctor profile uses -D MAXSTRINGLEN={safe} "
                   f"(MAXSTRINGLEN={over} gives a {knowledge.frame_for(over)}-byte frame, over {fw})" if safe < 4096
                   else f"CONFIG_FRAME_WARN={fw}: MAXSTRINGLEN up to 4096 fits")
