"""The POSIX-sh fleet collector on this machine: the controller's verdicts equal `stapdoctor check`'s."""
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from stapdoctor.doctor import fleet

COLLECTOR = Path(__file__).resolve().parents[3] / "playbooks/roles/doctor_collect/files/collect.sh"


@pytest.mark.parametrize("shell", ["dash", "bash"])
def test_collector_tree_gives_the_live_verdicts(tmp_path, shell):
    if shutil.which(shell) is None:
        pytest.fail(f"{shell} is not installed (tests/apt-packages.txt)")
    r = subprocess.run([shell, str(COLLECTOR), str(tmp_path / "thishost.tar.gz")], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    reports = fleet.collect_reports(tmp_path)
    rep = reports["thishost"]
    live = json.loads(subprocess.run([sys.executable, "-m", "stapdoctor.doctor", "check", "--json"],
                                     capture_output=True, text=True).stdout)
    got = {f["id"]: f["status"] for f in rep["findings"]}
    want = {f["id"]: f["status"] for f in live["findings"]}
    assert rep["source"]["kind"] == "collector"
    assert rep["kernel_release"] == live["kernel_release"]
    assert got == want


def test_hostile_archive_is_refused(tmp_path):
    import io
    import tarfile
    evil = tmp_path / "evil.tar.gz"
    with tarfile.open(evil, "w:gz") as tf:
        data = b"owned\n"
        info = tarfile.TarInfo("../../escaped")
        info.size = len(data)
        tf.addfile(info, io.BytesIO(data))
    reports = fleet.collect_reports(tmp_path)
    assert reports["evil"]["ready"] is False and reports["evil"]["error"]
    assert not (tmp_path.parent / "escaped").exists()
