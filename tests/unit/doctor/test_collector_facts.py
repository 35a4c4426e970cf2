"""The POSIX-sh fleet collector gathers the facts issue 14 added (boot parameters, toolchain, kernel package,
debuginfod URL files, ~/.systemtap/rc), so the controller's verdicts on them are not skips by absence."""
import os
import shutil
import subprocess
import tarfile
from pathlib import Path

from stapdoctor.doctor import checks, hostfacts, snapshot

COLLECTOR = Path(__file__).resolve().parents[3] / "playbooks/roles/doctor_collect/files/collect.sh"


def test_collector_records_the_new_facts(tmp_path):
    home = tmp_path / "home"
    (home / ".systemtap").mkdir(parents=True)
    (home / ".systemtap/rc").write_text("--ldd\n")
    out = tmp_path / "h.tar.gz"
    r = subprocess.run(["dash", str(COLLECTOR), str(out)], capture_output=True, text=True,
                       env=dict(os.environ, HOME=str(home)))
    assert r.returncode == 0, r.stderr
    tree = tmp_path / "tree"
    with tarfile.open(out) as tf:
        tf.extractall(tree, filter="data")
    snap = snapshot.collect(str(tree))
    assert snap.text("/proc/cmdline") == open("/proc/cmdline").read()
    assert snap.files[hostfacts.RC_KEY]["text"] == "--ldd\n"
    got = {f.id: f for f in checks.run_checks(snap)}
    if shutil.which("gcc") and shutil.which("make"):
        assert snap.commands["gcc-version"]["rc"] == 0
        assert got["devel.toolchain"].status != "skip" and "gcc" in got["devel.toolchain"].evidence
    if shutil.which("dpkg"):
        assert "kernel-package" in snap.commands
