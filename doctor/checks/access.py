"""Permissions: who may compile and load stap modules, and the setuid staprun that loads them."""
from __future__ import annotations

from .. import knowledge
from . import Finding, check
from .policy import lockdown_state


@check("access.user", "access")
def user(ctx) -> Finding:
    title = "permission to run stap"
    u = ctx.snap.user
    if "uid" not in u:
        return Finding("", title, "skip", "user not collected")
    name = u.get("name", u["uid"])
    groups = set(u.get("groups", []))
    if u["uid"] == 0:
        return Finding("", title, "pass", "running as root")
    fix = ctx.remedy("stap_access", f"usermod -aG stapusr,stapdev {name}   (then log in again)") + \
        f"  with -e '{{\"stap_users\": [\"{name}\"]}}'"
    if "stapdev" in groups:
        return Finding("", title, "pass", f"{name} is in stapdev" + (" and stapusr" if "stapusr" in groups else ""))
    if "stapusr" in groups:
        return Finding("", title, "warn", f"{name} is in stapusr only: may run prebuilt modules from "
                       "/lib/modules/R/systemtap, not compile new scripts (stapdev needed)", fix)
    return Finding("", title, "fail", f"{name} is neither root nor in stapusr/stapdev "
                   f"(groups: {', '.join(sorted(groups)) or 'none'})", fix)


@check("access.staprun", "access")
def staprun(ctx) -> Finding:
    title = "staprun (module loader)"
    t = ctx.snap.tools.get("staprun", {})
    if t.get("status") != "ok":
        if ctx.snap.tools.get("stap", {}).get("status") != "ok":
            return Finding("", title, "skip", "no systemtap installed")
        return Finding("", title, "fail", "staprun not found next to stap", "reinstall systemtap (staprun ships "
                       "in systemtap-runtime)")
    mode = t.get("mode", 0)
    setuid = bool(mode & 0o4000) and t.get("uid") == 0
    desc = f"{t.get('path')} mode {mode:04o} owner uid {t.get('uid')} group {t.get('group') or t.get('gid')}"
    if setuid:
        return Finding("", title, "pass", desc)
    if ctx.snap.user.get("uid") == 0:
        return Finding("", title, "pass", desc + " (not setuid; fine for root)")
    return Finding("", title, "fail", desc + ": not setuid root, so non-root users cannot load modules",
                   ctx.remedy("stap_access", f"chown root:stapusr {t.get('path')} && chmod 4754 {t.get('path')}"))


@check("transport", "access")
def transport(ctx) -> Finding:
    """Before 4.4 stap's relay files live only in debugfs; 4.4 added procfs for lockdown kernels."""
    title = "data transport (debugfs/procfs)"
    snap = ctx.snap
    fs = snap.text("/proc/filesystems")
    mounts = snap.text("/proc/mounts") or ""
    has_debugfs = fs is not None and any(line.split()[-1:] == ["debugfs"] for line in fs.splitlines())
    mounted = any(len(p) > 2 and p[2] == "debugfs" for p in (line.split() for line in mounts.splitlines()))
    ver, _ = ctx.stap
    procfs_ok = ver is not None and knowledge.version_key(ver.version) >= (4, 4)
    # Integrity lockdown already closes debugfs: LOCKDOWN_DEBUGFS sorts before LOCKDOWN_INTEGRITY_MAX.
    lock = lockdown_state(ctx)
    debugfs_locked = lock.mode in ("integrity", "confidentiality")
    where = "debugfs " + ("mounted" if mounted else "available" if has_debugfs else "absent")
    if debugfs_locked and has_debugfs:
        where += f" but locked by lockdown [{lock.mode}]"
    if fs is None:
        return Finding("", title, "skip", "/proc/filesystems not collected")
    if procfs_ok:
        return Finding("", title, "pass", f"systemtap {ver.version} uses procfs when debugfs is unavailable; {where}")
    if has_debugfs and lock.mode is None:
        return Finding("", title, "warn", f"{where}; the lockdown state is unknown ({lock.why}): integrity lockdown "
                       f"would close debugfs, and systemtap {ver.version if ver else '(unknown)'} < 4.4 has no procfs "
                       "transport", ctx.play("systemtap") + " (systemtap ≥ 4.4)")
    if has_debugfs and not debugfs_locked:
        return Finding("", title, "pass", where + (" (staprun mounts it)" if not mounted else ""))
    why = (f"locked by lockdown [{lock.mode}]" + (" (predicted)" if lock.how == "predicted" else "")
           if debugfs_locked else "not in /proc/filesystems")
    return Finding("", title, "fail", f"debugfs {why} and systemtap "
                   f"{ver.version if ver else '(unknown)'} < 4.4 has no procfs transport",
                   ctx.play("systemtap") + " (systemtap ≥ 4.4)")
