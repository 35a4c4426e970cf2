"""systemtap itself: installed, and tested with this kernel."""
from __future__ import annotations

from .. import knowledge
from . import Finding, check


def build_choice(ctx) -> tuple[str | None, str]:
    """(ref, why) as the systemtap role decides it: from the table, limited to the tags of the repository
    named by STAPDOCTOR_SYSTEMTAP_REPO when it was asked (`git ls-remote --tags`)."""
    ver, _ = ctx.kernel_version
    res = ctx.snap.commands.get("systemtap-tags")
    tags = None
    note = ""
    if res is not None:
        if res.get("rc") == 0:
            tags = list(knowledge.parse_ls_remote_tags(res.get("stdout", "")))
        else:
            note = f" (could not list the tags of {ctx.snap.env.get('STAPDOCTOR_SYSTEMTAP_REPO', 'the repository')}: " \
                   f"{(res.get('error') or res.get('stderr') or '').strip()[:200]})"
    try:
        ref, why = knowledge.choose_systemtap_build(ver, ctx.kernel_gcc, tags)
    except LookupError as e:
        return None, str(e)
    return ref, why + note


def _stap_install_fix(ctx) -> str:
    ref, _ = build_choice(ctx)
    build = ctx.play("systemtap") + (f" -e systemtap_ref={ref}" if ref else "")
    pk = ctx.packages
    return build + (f"   or the distribution's package: {pk['systemtap_package']}" if pk else "")


@check("stap.installed", "systemtap")
def installed(ctx) -> Finding:
    title = "systemtap installed"
    tool = ctx.snap.tools.get("stap", {})
    ver, err = ctx.stap
    if tool.get("status") != "ok" and ver is None:
        return Finding("", title, "fail", "no stap in PATH or " + ", ".join(("/usr/local/bin", "/usr/bin", "/opt/systemtap/current/bin")),
                       _stap_install_fix(ctx))
    if ver is None:
        if err is None:
            return Finding("", title, "warn", f"{tool.get('path')} found; `stap -V` was not collected (sysroot)",
                           "run stapdoctor check on the host itself, or collect with `stapdoctor fleet`")
        return Finding("", title, "fail", f"{tool.get('path', 'stap')}: {err}", _stap_install_fix(ctx))
    where = tool.get("path") or "stap"
    return Finding("", title, "pass", f"{where}: systemtap {ver.version} (elfutils {ver.elfutils}"
                   f"{', ' + ver.build if ver.build else ''})")


@check("stap.kernel_range", "systemtap")
def kernel_range(ctx) -> Finding:
    """stap's runtime follows kernel API changes; outside its tested range pass 4 often fails."""
    title = "systemtap tested with this kernel"
    ver, _ = ctx.stap
    if ver is None:
        return Finding("", title, "skip", "no stap version")
    kver, ksrc = ctx.kernel_version
    if ver.tested_max:
        lo, hi, src = ver.tested_min, ver.tested_max, "stap -V"
    else:
        row = knowledge.release_for(ver.version)
        if row is None or not row.kernel_max:
            return Finding("", title, "warn", f"systemtap {ver.version} prints no tested range and the knowledge "
                           "table has none: cannot tell whether it supports kernel " + kver,
                           "run `stapdoctor check --deep` to compile a probe")
        lo, hi, src = row.kernel_min, row.kernel_max, f"knowledge table ({row.source})"
    floor = knowledge.supported_floor(ver.version, lo)
    if floor != lo:  # 5.0/5.1 print 2.6.32, but support 3.10 and later only (NEWS 5.0)
        src += f", which prints {lo}; the knowledge table's oldest supported kernel is {floor}"
        lo = floor
    if knowledge.kernel_in_range(kver, lo, hi):
        return Finding("", title, "pass", f"kernel {kver} within {lo} ... {hi} ({src})")
    ref, why = build_choice(ctx)
    return Finding("", title, "warn", f"kernel {kver} ({ksrc}) is outside systemtap {ver.version}'s tested range "
                   f"{lo} ... {hi} ({src}): pass 4 may fail; build {ref or 'the newest release'} ({why})",
                   ctx.play("systemtap") + (f" -e systemtap_ref={ref}" if ref else "")
                   + "   (then confirm with stapdoctor check --deep)")


@check("stap.deep", "systemtap")
def deep(ctx) -> Finding | None:
    """Only with --deep: the compile-and-run result collected into the snapshot."""
    title = "stap compiles and runs a probe (--deep)"
    res = ctx.snap.commands.get("stap-deep")
    if res is None:
        return None
    from ..deep import summarize
    status, evidence = summarize(res)
    fix = None
    if status == "fail":
        from .devel import build
        headers = build(ctx)
        if headers.status == "fail":  # no compiler ran: the build tree is what is missing
            fix = f"pass 4 needs the kernel's build tree, which devel.build found missing: {headers.remedy}"
        elif ctx.snap.tools.get("gcc", {}).get("status") == "missing":
            fix = "pass 4 needs gcc and make: see devel.toolchain"
        else:
            fix = "the compiler's first errors are in the evidence; " + _stap_install_fix(ctx)
    return Finding("", title, status, evidence, fix)
