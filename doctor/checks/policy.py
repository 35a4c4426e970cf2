"""Module policy: lockdown, signature enforcement, securelevel refuse unsigned stap modules."""
from __future__ import annotations

import re

from . import Finding, check

SIGN_FIX = ("enroll a Machine Owner Key and sign stap's modules (stap --sign-module, systemtap ≥ 4.7, or a "
            "stap-server with `--use-server`), or disable Secure Boot / lockdown in the firmware")


@check("policy.lockdown", "policy")
def lockdown(ctx) -> Finding:
    title = "kernel lockdown"
    snap = ctx.snap
    fact = snap.fact("/sys/kernel/security/lockdown")
    level = (snap.text("/sys/kernel/security/securelevel") or "").strip()
    if level and level != "0":
        return Finding("", title, "fail", f"securelevel={level}: unsigned modules are refused", SIGN_FIX)
    if fact.get("status") != "ok":
        if fact.get("status") == "unreadable":
            return Finding("", title, "warn", "/sys/kernel/security/lockdown unreadable (not root?)",
                           "run stapdoctor check as root")
        return Finding("", title, "pass", "no lockdown LSM (/sys/kernel/security/lockdown absent)")
    m = re.search(r"\[(\w+)\]", fact.get("text", ""))
    mode = m.group(1) if m else None
    if mode == "none":
        return Finding("", title, "pass", "lockdown [none]")
    if mode in ("integrity", "confidentiality"):
        return Finding("", title, "fail", f"lockdown [{mode}]: stap's modules will be refused unless signed (MOK)"
                       + ("; debugfs is also locked" if mode == "confidentiality" else ""), SIGN_FIX)
    return Finding("", title, "warn", f"unrecognised lockdown state {fact.get('text', '').strip()[:60]!r}",
                   "cat /sys/kernel/security/lockdown")


@check("policy.sig_enforce", "policy")
def sig_enforce(ctx) -> Finding:
    title = "module signature enforcement"
    snap = ctx.snap
    fact = snap.fact("/sys/module/module/parameters/sig_enforce")
    if ctx.config and ctx.opt("CONFIG_MODULE_SIG_FORCE") == "y":
        return Finding("", title, "fail", "CONFIG_MODULE_SIG_FORCE=y: unsigned modules are refused", SIGN_FIX)
    if fact.get("status") == "unreadable":
        return Finding("", title, "warn", "/sys/module/module/parameters/sig_enforce unreadable (not root?)",
                       "run stapdoctor check as root")
    if fact.get("status") != "ok":
        return Finding("", title, "pass", "no sig_enforce parameter (module signing not built in)")
    val = fact.get("text", "").strip()
    if val == "Y":
        return Finding("", title, "fail", "sig_enforce=Y: stap's modules will be refused unless signed (MOK)", SIGN_FIX)
    if val == "N":
        return Finding("", title, "pass", "sig_enforce=N")
    return Finding("", title, "warn", f"unrecognised sig_enforce value {val[:20]!r}",
                   "cat /sys/module/module/parameters/sig_enforce")
