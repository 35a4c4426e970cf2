"""The symbolising script profile.yml runs with stap alone (hosts without stapdoctor) is valid SystemTap:
the real stap translates it (passes 1-3) for an installed kernel's headers, with the options the task
file passes."""
from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from stapdoctor.testing.ansiblerun import PLAYBOOKS

SCRIPT = PLAYBOOKS / "files/profile-symbolised.stp"
INSTALL_HINT = "apt-get install systemtap linux-headers-amd64 (tests/apt-packages.txt)"


def _release_with_headers() -> str:
    for d in sorted(Path("/lib/modules").glob("*/build/.config")):
        return d.parent.parent.name
    raise AssertionError(f"no kernel headers under /lib/modules/*/build: {INSTALL_HINT}")


def test_real_stap_translates_the_symbolising_script(tmp_path):
    stap = shutil.which("stap")
    assert stap, f"stap is not installed: {INSTALL_HINT}"
    exe = tmp_path / "sleeper"
    shutil.copy("/bin/sleep", exe)
    proc = subprocess.Popen([str(exe), "60"])
    try:
        r = subprocess.run([stap, "-p3", "-r", _release_with_headers(), "-d", str(exe), "--ldd", "-x", str(proc.pid),
                            "-G", "duration_ms=2000", "-o", str(tmp_path / "stap.out"), str(SCRIPT)],
                           capture_output=True, text=True, timeout=600)
    finally:
        proc.kill()
        proc.wait()
    assert r.returncode == 0, r.stderr[-3000:]
    # the frames are named in the sampling probe (usymdata), printed in probe end with the count
    assert "usymdata" in r.stdout, r.stdout[-2000:]
