"""The systemtap ref the role and the doctor build, limited to what the repository has; and the check a
packed prefix passes on the controller before hosts unpack it as root."""

from __future__ import annotations

import io
import subprocess
import tarfile
from pathlib import Path

import importlib.util

import pytest

from stapdoctor.doctor import knowledge
from stapdoctor.testing import gitserve
from stapdoctor.testing.ansiblerun import PLAYBOOKS

_spec = importlib.util.spec_from_file_location("stapdoctor_knowledge_filters",
                                               PLAYBOOKS / "filter_plugins/stapdoctor_knowledge.py")
_plugin = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_plugin)
UPSTREAM = ("release-4.9", "release-5.4", "release-5.5")  # the tags of ../shared/systemtap's bundle


def _filter(name: str):
    return _plugin.FilterModule().filters()[name]


def test_table_pick_when_the_repository_was_not_asked():
    ref, why = knowledge.choose_systemtap_build("6.1.192", "12.2.0", None)
    assert ref == knowledge.choose_systemtap_ref("6.1.192", "12.2.0")
    assert "not asked" in why


def test_newest_covering_tag_the_repository_has():
    newest = knowledge.choose_systemtap_ref("6.1.192", "12.2.0")
    assert newest not in UPSTREAM, "the table's newest release is in the bundle: pick a case that shows the fallback"
    ref, why = knowledge.choose_systemtap_build("6.1.192", "12.2.0", UPSTREAM)
    assert ref == "release-5.5"
    assert f"{newest} would be the pick" in why and "no such tag" in why and "6.1.192" in why


def test_old_kernel_and_compiler_get_a_release_they_can_build():
    # Ubuntu 12.10: kernel 3.5, gcc 4.7 -> 4.9 is the newest release before the 3.10 floor of 5.0.
    assert knowledge.choose_systemtap_build("3.5.7", "4.7.2", UPSTREAM)[0] == "release-4.9"


def test_repository_without_release_tags_is_an_error():
    with pytest.raises(LookupError, match="none of the known release tags"):
        knowledge.choose_systemtap_build("6.1.192", "12.2.0", ["master", "v1"])


def test_ls_remote_parsing_peels_annotated_tags_and_skips_garbage():
    a, b, c = "a" * 40, "b" * 40, "c" * 40
    text = (f"{a}\trefs/tags/release-5.5\n{b}\trefs/tags/release-5.5^{{}}\n{c}\trefs/tags/release-5.4\n"
            f"{c}\trefs/heads/master\nnot a line\n{a}\trefs/tags/bad name\n")
    assert knowledge.parse_ls_remote_tags(text) == {"release-5.5": b, "release-5.4": c}
    assert _filter("stapdoctor_git_refs")(text) == {"release-5.5": b, "release-5.4": c, "master": c}


def test_git_refs_of_the_real_bundle(tmp_path):
    if not gitserve.BUNDLE.is_file():
        pytest.fail(f"{gitserve.BUNDLE} is missing (../shared/systemtap beside the project; CI has it)")
    repo = gitserve.mirror_bundle(tmp_path / "systemtap.git")
    out = subprocess.run(["git", "ls-remote", "--tags", "--heads", str(repo)], capture_output=True, text=True,
                         check=True).stdout
    refs = _filter("stapdoctor_git_refs")(out)
    assert {t: refs[t] for t in UPSTREAM} == gitserve.tag_commits(repo)
    choice = _filter("stapdoctor_systemtap_build")("6.1.192", "12.2.0", refs)
    assert choice["ref"] == "release-5.5"


# ---------------------------------------------------------------- packed prefixes
def _tar(path: Path, members: list[tuple[str, str, str]]) -> Path:
    with tarfile.open(path, "w:gz") as tf:
        for name, kind, extra in members:
            ti = tarfile.TarInfo(name)
            if kind == "dir":
                ti.type = tarfile.DIRTYPE
                tf.addfile(ti)
            elif kind == "file":
                data = extra.encode()
                ti.size = len(data)
                tf.addfile(ti, io.BytesIO(data))
            elif kind == "sym":
                ti.type, ti.linkname = tarfile.SYMTYPE, extra
                tf.addfile(ti)
            elif kind == "hard":
                ti.type, ti.linkname = tarfile.LNKTYPE, extra
                tf.addfile(ti)
            elif kind == "fifo":
                ti.type = tarfile.FIFOTYPE
                tf.addfile(ti)
    return path


def test_clean_prefix_archive_passes(tmp_path):
    ok = _tar(tmp_path / "ok.tar.gz", [("5.5", "dir", ""), ("5.5/bin/stap", "file", "x"),
                                       ("5.5/bin/dtrace", "sym", "stap"), ("5.5/lib/x", "sym", "../bin/stap")])
    assert _filter("stapdoctor_prefix_archive_problems")(str(ok), "5.5") == []


@pytest.mark.parametrize("member, what", [
    (("../etc/cron.d/x", "file", "x"), "outside"),
    (("/etc/passwd", "file", "x"), "outside"),
    (("5.4/bin/stap", "file", "x"), "outside"),
    (("5.5/bin/sh", "sym", "/bin/sh"), "leads out"),
    (("5.5/bin/up", "sym", "../../etc"), "leads out"),
    (("5.5/bin/h", "hard", "/etc/shadow"), "not a file"),
    (("5.5/p", "fifo", ""), "not a file"),
])
def test_hostile_prefix_archive_is_refused(tmp_path, member, what):
    bad = _tar(tmp_path / "bad.tar.gz", [("5.5", "dir", ""), member])
    problems = _filter("stapdoctor_prefix_archive_problems")(str(bad), "5.5")
    assert problems and what in problems[0], problems


def test_unreadable_or_oversized_archive_is_refused(tmp_path):
    junk = tmp_path / "junk.tar.gz"
    junk.write_bytes(b"\x1f\x8b not really gzip")
    assert "unreadable" in _filter("stapdoctor_prefix_archive_problems")(str(junk), "5.5")[0]
    big = _tar(tmp_path / "big.tar.gz", [("5.5/a", "file", "x" * 100), ("5.5/b", "file", "y" * 100)])
    assert "more than 150 bytes" in _filter("stapdoctor_prefix_archive_problems")(str(big), "5.5", 150)[0]
