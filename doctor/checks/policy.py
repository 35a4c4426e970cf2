"""Module policy: lockdown, signature enforcement, securelevel refuse unsigned stap modules.

The live facts (/sys/kernel/security/lockdown, the sig_enforce parameter) win; when they are missing
(securityfs not mounted, an image without /sys) the state is predicted from the kernel config and the
boot parameters, and what cannot be predicted is a WARN, never a PASS.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from .. import knowledge
from . import Finding, check

SIGN_FIX = ("enroll a Machine Owner Key and sign stap's modules (stap --sign-module, systemtap ≥ 4.7, or a "
            "stap-server with `--use-server`), or disable Secure Boot / lockdown in the firmware")
LOCKDOWN = "/sys/kernel/security/lockdown"
SIG_ENFORCE = "/sys/module/module/parameters/sig_enforce"
MOUNT_SECURITYFS = "mount -t securityfs securityfs /sys/kernel/security"
_LEVELS = ("none", "integrity", "confidentiality")
# Upstream (5.4+) and the distributions' earlier patches (Fedora, Ubuntu 18.04-20.04) lock down under Secure Boot.
_SECURE_BOOT_OPTS = ("CONFIG_LOCK_DOWN_IN_EFI_SECURE_BOOT", "CONFIG_LOCK_DOWN_IN_SECURE_BOOT",
                     "CONFIG_EFI_SECURE_BOOT_LOCK_DOWN")


@dataclass
class Lockdown:
    mode: str | None      # none | integrity | confidentiality | None (unknown)
    how: str              # live | predicted | unknown
    why: str


def _not_known(ctx) -> str:
    if ctx.securityfs is False:
        return f"not known: securityfs is not mounted ({MOUNT_SECURITYFS})"
    return "not collected (no /sys/kernel/security/lockdown in these facts)"


def lockdown_state(ctx) -> Lockdown:
    """The kernel's lockdown level: read live, else predicted from the config, the boot parameters and the
    Secure Boot state (the kernel only ever raises the level: forced modes, lockdown=, Secure Boot)."""
    fact = ctx.snap.fact(LOCKDOWN)
    if fact.get("status") == "ok":
        m = re.search(r"\[(\w+)\]", fact.get("text", ""))
        mode = m.group(1) if m and m.group(1) in _LEVELS else None
        return Lockdown(mode, "live", f"{LOCKDOWN}: {fact.get('text', '').strip()[:60]!r}")
    if fact.get("status") == "unreadable":
        return Lockdown(None, "unknown", f"{LOCKDOWN} unreadable (not root?)")
    if ctx.securityfs:
        return Lockdown("none", "live", "securityfs is mounted and has no lockdown file: the lockdown LSM is not active")
    if ctx.config is None:
        return Lockdown(None, "unknown", "no kernel config to predict from; " + _not_known(ctx))
    if not (ctx.on("CONFIG_SECURITY_LOCKDOWN_LSM") or ctx.on("CONFIG_LOCK_DOWN_KERNEL")):
        return Lockdown("none", "predicted", "kernel built without the lockdown LSM (CONFIG_SECURITY_LOCKDOWN_LSM not set)")
    cmd = ctx.cmdline or {}
    lsms = cmd.get("lsm") or (ctx.opt("CONFIG_LSM") or "").strip('"')
    in_list = "lockdown" in lsms.split(",")
    enabled = ctx.on("CONFIG_SECURITY_LOCKDOWN_LSM_EARLY") or ctx.on("CONFIG_LOCK_DOWN_KERNEL") or in_list
    active = ("lockdown in " + ("lsm=" if cmd.get("lsm") else "CONFIG_LSM")) if in_list else "an early LSM"
    if not enabled:
        src = "lsm= boot parameter" if cmd.get("lsm") else "CONFIG_LSM"
        return Lockdown("none", "predicted", f"the lockdown LSM is built but not in {src} ({lsms[:80]!r})")
    level, reasons, unknown = 0, [], []
    for opt, lvl in (("CONFIG_LOCK_DOWN_KERNEL_FORCE_CONFIDENTIALITY", 2), ("CONFIG_LOCK_DOWN_KERNEL_FORCE_INTEGRITY", 1)):
        if ctx.on(opt) and lvl > level:
            level, reasons = lvl, [f"{opt}=y with {active}"]
    boot = cmd.get("lockdown")
    if boot in _LEVELS and _LEVELS.index(boot) > level:
        level, reasons = _LEVELS.index(boot), reasons + [f"boot parameter lockdown={boot}"]
    elif ctx.cmdline is None:
        unknown.append("boot parameters not collected")
    sb_opt = next((o for o in _SECURE_BOOT_OPTS if ctx.on(o)), None)
    if sb_opt:
        sb, sb_why = ctx.secure_boot
        if sb and level < 1:
            level, reasons = 1, reasons + [f"{sb_opt}=y and {sb_why}"]
        elif sb is None:
            unknown.append(f"{sb_opt}=y but {sb_why}")
    if level:
        return Lockdown(_LEVELS[level], "predicted", "; ".join(reasons))
    return Lockdown(None, "unknown", "lockdown LSM enabled, no forced mode in the config"
                    + (f"; {'; '.join(unknown)}" if unknown else ""))


def _sign_fix(st: Lockdown) -> str:
    forced = re.search(r"(CONFIG_LOCK_DOWN_KERNEL_FORCE_\w+)=y", st.why)
    if forced:  # built in: no firmware switch turns it off
        return ("sign stap's modules with a key the kernel trusts (stap --sign-module, systemtap ≥ 4.7), or boot "
                f"a kernel built without {forced.group(1)}")
    return SIGN_FIX


@check("policy.lockdown", "policy")
def lockdown(ctx) -> Finding:
    title = "kernel lockdown"
    level = (ctx.snap.text("/sys/kernel/security/securelevel") or "").strip()
    if level and level != "0":
        return Finding("", title, "fail", f"securelevel={level}: unsigned modules are refused", SIGN_FIX)
    st = lockdown_state(ctx)
    if st.how == "live" and st.mode is None:
        return Finding("", title, "warn", f"unrecognised lockdown state ({st.why})", f"cat {LOCKDOWN}")
    if st.mode == "none":
        return Finding("", title, "pass", ("lockdown [none]" if st.how == "live" and "[none]" in st.why else st.why)
                       + (" (predicted from the kernel config)" if st.how == "predicted" else ""))
    if st.mode in ("integrity", "confidentiality"):
        unconfirmed = ("securityfs is not mounted, so unconfirmed" if ctx.securityfs is False else
                       "the live state was not collected")
        said = f"lockdown [{st.mode}]" + (f" predicted from {st.why} ({unconfirmed})" if st.how == "predicted" else "")
        return Finding("", title, "fail", f"{said}: stap's modules will be refused unless signed (MOK); debugfs is "
                       "locked too", _sign_fix(st) + ("; to confirm: " + MOUNT_SECURITYFS + f" && cat {LOCKDOWN}"
                                                 if st.how == "predicted" else ""))
    if "unreadable" in st.why:
        return Finding("", title, "warn", st.why, "run stapdoctor check as root")
    detail = st.why if _not_known(ctx) in st.why else f"{_not_known(ctx)}: {st.why}"
    return Finding("", title, "warn", detail, f"{MOUNT_SECURITYFS} && cat {LOCKDOWN}   (or run stapdoctor check on the host itself)")


def _bool_param(v: str | None) -> bool | None:
    if v is None:
        return None
    return v.lower() in ("", "1", "y", "yes", "on", "true")


@check("policy.sig_enforce", "policy")
def sig_enforce(ctx) -> Finding:
    title = "module signature enforcement"
    snap = ctx.snap
    fact = snap.fact(SIG_ENFORCE)
    if ctx.config and ctx.opt("CONFIG_MODULE_SIG_FORCE") == "y":
        return Finding("", title, "fail", "CONFIG_MODULE_SIG_FORCE=y: unsigned modules are refused", SIGN_FIX)
    if fact.get("status") == "unreadable":
        return Finding("", title, "warn", f"{SIG_ENFORCE} unreadable (not root?)", "run stapdoctor check as root")
    if fact.get("status") == "ok":
        val = fact.get("text", "").strip()
        if val == "Y":
            return Finding("", title, "fail", "sig_enforce=Y: stap's modules will be refused unless signed (MOK)", SIGN_FIX)
        if val == "N":
            return Finding("", title, "pass", "sig_enforce=N")
        return Finding("", title, "warn", f"unrecognised sig_enforce value {val[:20]!r}", f"cat {SIG_ENFORCE}")
    # No live parameter: predict from the config and the boot parameters.
    if ctx.config is None:
        return Finding("", title, "warn", f"{SIG_ENFORCE} not collected and no kernel config to predict from",
                       f"cat {SIG_ENFORCE} on the host")
    if not ctx.on("CONFIG_MODULE_SIG"):
        return Finding("", title, "pass", "CONFIG_MODULE_SIG not set: the kernel does not check module signatures")
    cmd = ctx.cmdline
    # RHEL 6's own module signing (before 3.7's upstream one) enforces only with enforcemodulesig=1.
    old = knowledge.kernel_key(ctx.kernel_version[0]) < knowledge.kernel_key("3.7")
    param = "enforcemodulesig" if old else "module.sig_enforce"
    if cmd is not None:
        if _bool_param(cmd.get(param)):
            return Finding("", title, "fail", f"CONFIG_MODULE_SIG=y and boot parameter {param}: unsigned modules "
                           "are refused (predicted)", SIGN_FIX)
        if old:
            return Finding("", title, "pass", f"CONFIG_MODULE_SIG=y without {param}=1 on the kernel command line")
    where = "not collected" if snap.source.get("kind") != "live" else "absent"
    return Finding("", title, "warn", f"CONFIG_MODULE_SIG=y but {SIG_ENFORCE} {where}: cannot tell whether unsigned "
                   "modules are refused", f"cat {SIG_ENFORCE} on the host (Y: sign stap's modules)")
