"""Readiness checks: one small pure function per check, grouped by concern in this package.

Each check reads a HostSnapshot (never the filesystem) and returns a Finding. `run_checks` runs them
in the order a person would fix things: kernel, devel, debuginfo, systemtap, policy, access, target.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Callable

STATUSES = ("pass", "warn", "fail", "skip")


@dataclass
class Finding:
    id: str
    title: str
    status: str          # pass | warn | fail | skip
    evidence: str        # one line: what was seen, and where
    remedy: str | None = None
    concern: str = ""

    def to_dict(self) -> dict:
        return asdict(self)


CheckFn = Callable[["Context"], Finding]
REGISTRY: list[tuple[str, str, CheckFn]] = []   # (id, concern, fn) in run order


def check(check_id: str, concern: str):
    """Register a check function under its stable id."""
    def deco(fn: CheckFn) -> CheckFn:
        REGISTRY.append((check_id, concern, fn))
        return fn
    return deco


from .context import Context  # noqa: E402  (the registry must exist before the modules register)
from . import kernel, devel, debuginfo, systemtap, policy, access, target  # noqa: E402,F401


def run_checks(snap, *, host_label: str | None = None, only: set[str] | None = None) -> list[Finding]:
    """All findings for a snapshot. A check that crashes on odd input becomes a 'fail' finding
    naming the bug, so one bad fact never hides the other checks."""
    ctx = Context(snap, host_label=host_label)
    out = []
    for check_id, concern, fn in REGISTRY:
        if only is not None and check_id not in only:
            continue
        try:
            f = fn(ctx)
        except Exception as e:  # noqa: BLE001 - report, never traceback
            f = Finding(check_id, check_id, "fail", f"internal error while checking: {type(e).__name__}: {e}",
                        "please report this with the output of 'stapdoctor snapshot -o host.json'")
        if f is None:
            continue
        f.id, f.concern = check_id, concern
        out.append(f)
    return out


def is_ready(findings: list[Finding], needed: set[str] | None = None) -> bool:
    return not any(f.status == "fail" and (needed is None or f.id in needed) for f in findings)
