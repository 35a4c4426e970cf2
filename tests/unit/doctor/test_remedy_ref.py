"""The doctor's remedy names the release the systemtap role would build: the table's pick, limited to the
tags of the repository named by STAPDOCTOR_SYSTEMTAP_REPO (asked with `git ls-remote`, only then)."""
import subprocess

import pytest

from stapdoctor.doctor import checks, snapshot
from stapdoctor.testing import gitserve


def _range_finding(snap):
    return {f.id: f for f in checks.run_checks(snap)}["stap.kernel_range"]


def test_remedy_without_a_repository_names_the_table_pick(host_root):
    snap = snapshot.collect(str(host_root("debian-12-stap-4.8")))
    assert "systemtap-tags" not in snap.commands
    f = _range_finding(snap)
    assert f.status == "warn" and "not asked" in f.evidence


def test_remedy_with_the_real_repository_names_a_tag_it_has(host_root, tmp_path, monkeypatch):
    if not gitserve.BUNDLE.is_file():
        pytest.fail(f"{gitserve.BUNDLE} is missing (../shared/systemtap beside the project; CI has it)")
    repo = gitserve.mirror_bundle(tmp_path / "systemtap.git")
    monkeypatch.setenv("STAPDOCTOR_SYSTEMTAP_REPO", str(repo))
    # A live collection asks the repository (a sysroot collection runs no command): record what it does.
    ls = subprocess.run(["git", "ls-remote", "--tags", "--", str(repo)], capture_output=True, text=True, check=True)
    snap = snapshot.collect(str(host_root("debian-12-stap-4.8")))
    snap.commands["systemtap-tags"] = {"argv": ["git"], "rc": 0, "stdout": ls.stdout, "stderr": ""}
    f = _range_finding(snap)
    assert f.status == "warn"
    assert "-e systemtap_ref=release-5.5" in f.remedy and "no such tag" in f.evidence, f


def test_live_collection_asks_the_named_repository(tmp_path, monkeypatch):
    if not gitserve.BUNDLE.is_file():
        pytest.fail(f"{gitserve.BUNDLE} is missing (../shared/systemtap beside the project; CI has it)")
    repo = gitserve.mirror_bundle(tmp_path / "systemtap.git")
    monkeypatch.setenv("STAPDOCTOR_SYSTEMTAP_REPO", str(repo))
    snap = snapshot.collect("/")
    res = snap.commands["systemtap-tags"]
    assert res["rc"] == 0 and "refs/tags/release-5.5" in res["stdout"]


def test_unreachable_repository_is_said(host_root, monkeypatch):
    snap = snapshot.collect(str(host_root("debian-12-stap-4.8")))
    snap.env["STAPDOCTOR_SYSTEMTAP_REPO"] = "https://example.invalid/systemtap.git"
    snap.commands["systemtap-tags"] = {"argv": ["git"], "rc": 128, "stdout": "",
                                       "stderr": "fatal: unable to access 'https://example.invalid/systemtap.git/'"}
    f = _range_finding(snap)
    assert "could not list the tags of https://example.invalid/systemtap.git" in f.evidence
