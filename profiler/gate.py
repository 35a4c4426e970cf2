"""Does this host pass the checks the profile's probes need? (The doctor decides; we ask it.)"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterable


@dataclass
class GateResult:
    needed: set[str]
    failing: list[Any] = field(default_factory=list)  # doctor Findings with status "fail"
    error: str | None = None  # the doctor could not run at all

    @property
    def ok(self) -> bool:
        return not self.failing and self.error is None


def decide(findings: Iterable[Any], needed: set[str]) -> list[Any]:
    """The needed checks that failed ("warn", "skip", "info" do not block a profile)."""
    return [f for f in findings if getattr(f, "id", None) in needed and getattr(f, "status", None) == "fail"]


def evaluate(*, kernel_stacks: bool, pid: int | None, binary: str | None, snapshot_path: str | None = None,
             compile: bool = True) -> GateResult:
    """Run the doctor on the live host (or on a saved snapshot) and keep the failing needed checks.
    compile=False: the module was compiled elsewhere, so only what loading it needs counts."""
    try:
        from stapdoctor.doctor import checks, knowledge, snapshot
    except ImportError as e:  # the doctor is not installed/complete: say so, never crash
        return GateResult(set(), error=f"the doctor is unavailable ({e})")
    needed = set(knowledge.gate_checks(kernel_stacks, compile=compile))
    try:
        if snapshot_path:
            snap = snapshot.load(snapshot_path)
        else:
            snap = snapshot.collect("/", pid=pid, binary=binary)
        findings = checks.run_checks(snap)
    except Exception as e:  # a doctor bug must not hide behind a traceback in `profile`
        return GateResult(needed, error=f"the host check failed: {type(e).__name__}: {e}")
    return GateResult(needed, decide(findings, needed))
