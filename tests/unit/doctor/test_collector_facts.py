"""The POSIX-sh fleet collector gathers the facts issue 14 added (boot parameters, toolchain, kernel package,
debuginfod URL files, ~/.systemtap/rc), so the controller's verdicts on them are not skips by absence."""
import os
import shutil
import subprocess
from pathlib import Path

from stapdoctor.doctor import checks, collected, hostfacts, snapshot

COLLECTOR = Path(__file__).resolve().parents[3] / "playbooks/roles/doctor_collect/files/collect.sh"


def test_collector_records_the_new_facts(tmp_path):
    home = tmp_path / "home"
    (home / ".systemtap").mkdir(parents=True)
    (home / ".systemtap/rc").write_text("--ldd\n")
    r = subprocess.run(["dash", str(COLLECTOR)], capture_output=True, text=True,
                       env=dict(os.environ, HOME=str(home)))
    assert r.returncode == 0, r.stderr
    # read in memory, as the fleet does (never extracted)
    snap = snapshot.collect(collected.read_archive(collected.decode_output(r.stdout), "h"))
    assert snap.text("/proc/cmdline") == open("/proc/cmdline").read()
    assert snap.files[hostfacts.RC_KEY]["text"] == "--ldd\n"
    got = {f.id: f for f in checks.run_checks(snap)}
    if shutil.which("gcc") and shutil.which("make"):
        assert snap.commands["gcc-version"]["rc"] == 0
        assert got["devel.toolchain"].status != "skip" and "gcc" in got["devel.toolchain"].evidence
    if shutil.which("dpkg"):
        assert "kernel-package" in snap.commands
