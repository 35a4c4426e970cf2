"""Issue step 1 — the prediction holds on a real kernel.

Debian 12's systemtap 4.8 was tested up to kernel 6.1.0-rc3; Debian 12's current kernel is a later
6.1.y, and stap 4.8 fails pass 4 there. `stapdoctor check` must warn about the range and name the
release to build; `stapdoctor check --deep` must fail, quoting the compiler's own error lines.
Expectations come from what the image holds (its kernel, its stap -V), not from fixed numbers.
"""

from __future__ import annotations

import re

import pytest

from stapdoctor.doctor import knowledge
from stapdoctor.testing.vmtools import findings_by_id as _findings

pytestmark = pytest.mark.e2e
VM_NAME = "bookworm"  # the conftest runs this VM in the background and keeps its logs on failure


def _text(f: dict) -> str:
    return " ".join(str(f.get(k) or "") for k in ("title", "evidence", "remedy"))


def test_check_predicts_stap_range(bookworm_run):
    stap_v = bookworm_run["stap -V"].stdout
    stap_version = re.search(r"version (\d+\.\d+)", stap_v).group(1)
    # Debian's uname -v carries the upstream version: "#1 SMP PREEMPT_DYNAMIC Debian 6.1.176-1 (...)"
    upstream = re.search(r"Debian (\d+\.\d+\.\d+)", bookworm_run["uname -v"].stdout).group(1)
    tested = re.search(r"tested kernel versions:\s*(\S+)\s*\.\.\.\s*(\S+)", stap_v)
    covered = knowledge.stap_covers_kernel(stap_version, upstream,
                                           (tested.group(1), tested.group(2)) if tested else None)
    assert covered is False, (f"this image's stap {stap_version} covers kernel {upstream}: the image no "
                              "longer shows the prediction case; pick a recipe that does")

    p = bookworm_run["check-json"]
    assert p.returncode in (0, 1), p.stderr
    f = _findings(p.stdout)["stap.kernel_range"]
    assert f["status"] == "warn", f
    text = _text(f)
    assert stap_version in text, f
    named = re.search(r"release-(\d+\.\d+)", text)
    assert named, f"the finding does not name a release to build: {f}"
    assert knowledge.stap_covers_kernel(named.group(1), upstream), (
        f"the named release-{named.group(1)} does not cover kernel {upstream} either")


def test_check_deep_fails_with_compiler_lines(bookworm_run):
    p = bookworm_run["check-deep"]
    assert p.returncode == 1, p.stdout + p.stderr
    out = p.stdout + p.stderr
    # The compiler's own lines, as gcc printed them inside stap's pass 4.
    assert "cc1: all warnings being treated as errors" in out, out[-3000:]
    assert re.search(r"^.*error: .*$", out, re.M), out[-3000:]
