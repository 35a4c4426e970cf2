"""`profile` judges its own arguments first, with one clear line and exit 2 (issues 13.2, 13.10, 14.11)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from .conftest import FAKE_STAP, run_cli, ubuntu_1204_snapshot


def _no_traceback(r):
    assert "Traceback" not in r.stderr and "Traceback" not in r.stdout, r.stderr


@pytest.mark.parametrize("args,needle", [
    (["--duration", "nan"], "--duration nan: must be a positive, finite number"),
    (["--duration", "inf"], "--duration inf: must be a positive, finite number"),
    (["--duration", "-inf"], "must be a positive, finite number"),
    (["--duration", "1e12"], "at most 86400 s"),
    (["--maxskipped", "-5"], "--maxskipped -5: must be 0 or more"),
])
def test_bad_numbers_are_usage_errors(tmp_path, fake_stap, idle_proc, args, needle):
    r = run_cli(["--stap", str(FAKE_STAP), "-o", str(tmp_path / "o"), "--force", "--pid", str(idle_proc.pid), *args])
    _no_traceback(r)
    assert r.returncode == 2, r.stderr
    assert needle in r.stderr
    assert not (tmp_path / "stap-argv.json").exists()  # stap never ran


def _free_pid() -> int:
    pid_max = int(Path("/proc/sys/kernel/pid_max").read_text())
    for pid in range(pid_max - 1, 1, -1):
        if not os.path.exists(f"/proc/{pid}"):
            return pid
    raise AssertionError("no free pid")


def test_a_missing_pid_is_named_before_the_host_findings(tmp_path):
    """Without --force, on a host the gate refuses: the user's mistake is what they must see."""
    snap = ubuntu_1204_snapshot(tmp_path)
    pid = _free_pid()
    r = run_cli(["--stap", str(FAKE_STAP), "-o", str(tmp_path / "o"), "--pid", str(pid), "--host-snapshot", str(snap)])
    _no_traceback(r)
    assert r.returncode == 2, r.stderr
    assert f"--pid {pid}: no such process" in r.stderr
    assert "not ready" not in r.stderr and "FAIL" not in r.stderr


@pytest.fixture
def other_user() -> int:
    assert os.geteuid() == 0, "these tests create files owned by another user: run as root (as CI does)"
    return 65534  # nobody


def _refused(tmp_path, out: Path, idle_proc, needle: str):
    r = run_cli(["--stap", str(FAKE_STAP), "-o", str(out), "--force", "--pid", str(idle_proc.pid), "--duration", "1"])
    _no_traceback(r)
    assert r.returncode == 2, r.stderr
    assert needle in r.stderr
    assert not (tmp_path / "stap-argv.json").exists()
    return r


def test_output_directory_of_another_user_is_refused(tmp_path, fake_stap, idle_proc, other_user):
    out = tmp_path / "theirs"
    out.mkdir()
    os.chown(out, other_user, other_user)
    (out / "flamegraph.svg").symlink_to("/etc/passwd")  # what such a user could plant
    _refused(tmp_path, out, idle_proc, "belongs to another user")
    assert not (out / "stap.out").exists()


def test_world_writable_output_directory_is_refused(tmp_path, fake_stap, idle_proc):
    out = tmp_path / "shared"
    out.mkdir()
    out.chmod(0o1777)
    _refused(tmp_path, out, idle_proc, "writable by every user")


def test_symlink_of_another_user_as_output_is_refused(tmp_path, fake_stap, idle_proc, other_user):
    mine = tmp_path / "mine"
    mine.mkdir()
    link = tmp_path / "link"
    link.symlink_to(mine)
    os.lchown(link, other_user, other_user)
    _refused(tmp_path, link, idle_proc, "symbolic link owned by another user")


def test_own_existing_directory_is_used(tmp_path, fake_stap, idle_proc):
    out = tmp_path / "own"
    out.mkdir(mode=0o700)
    r = run_cli(["--stap", str(FAKE_STAP), "-o", str(out), "--force", "--pid", str(idle_proc.pid), "--duration", "1"])
    _no_traceback(r)
    assert (out / "stap.out").is_file(), r.stderr


HOSTILE_MODULE_C = r"""
static const char vermagic[] __attribute__((section(".modinfo"), used, aligned(1))) = "vermagic=%s SMP mod_unload ";
static const char name[] __attribute__((section(".modinfo"), used, aligned(1))) = "name=../../../tmp/evil";
int init_module(void) { return 0; }
"""


def test_module_with_a_hostile_name_is_refused(tmp_path):
    """No .gnu.linkonce.this_module, so the .modinfo name= is the one that would be used."""
    from stapdoctor.profiler.prebuilt import inspect
    from stapdoctor.profiler.request import ProfileError

    src = tmp_path / "m.c"
    src.write_text(HOSTILE_MODULE_C % os.uname().release)
    ko = tmp_path / "prof.ko"
    subprocess.run(["gcc", "-c", "-o", str(ko), str(src)], check=True)
    with pytest.raises(ProfileError) as e:
        inspect(ko)
    assert e.value.code == 1 and "not a usable module" in str(e.value) and "../../../tmp/evil" in str(e.value)
