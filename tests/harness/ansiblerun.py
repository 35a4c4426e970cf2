"""Helpers for running the repository's playbooks from tests."""

from __future__ import annotations

import re
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PLAYBOOKS = REPO / "playbooks"
VENV_BIN = Path(sys.executable).parent


def recap(output: str) -> dict[str, dict[str, int]]:
    """PLAY RECAP lines -> {host: {"ok": n, "changed": n, "failed": n, ...}}."""
    out = {}
    for m in re.finditer(r"^(\S+)\s+:\s+((?:\w+=\d+\s*)+)$", output, re.M):
        out[m.group(1)] = {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", m.group(2))}
    return out


def timed(env, key: str, *args, **kw):
    """env.playbook(*args, **kw), its wall time recorded in env.timings[key] (the tier's timings report)."""
    import time

    t0 = time.monotonic()
    p = env.playbook(*args, **kw)
    env.timings[key] = round(time.monotonic() - t0, 1)
    return p
