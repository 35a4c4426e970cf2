"""Sysroots and snapshots from elsewhere: nothing in them hangs, exhausts or crashes `stapdoctor check`.

Each case ran for ever, took a gigabyte, or gave a traceback / "internal error" FAILs before.
"""
import gzip
import json
import os
import shutil
import subprocess
import sys

import pytest

from stapdoctor.doctor import safeio, snapshot


# Runs the CLI in-process in a fresh interpreter and reports VmHWM at exit: the peak RSS of that process's own
# memory map since its exec. (ru_maxrss of a child counts the parent's size at fork: a large test session
# made a 40 MiB check look like 220-345 MiB.)
_MEASURED = (
    "import atexit, runpy, sys\n"
    "def _hwm():\n"
    "    for line in open('/proc/self/status'):\n"
    "        if line.startswith('VmHWM:'):\n"
    "            sys.stderr.write('\\nSTAPDOCTOR-TEST-VMHWM-KB ' + line.split()[1] + '\\n')\n"
    "atexit.register(_hwm)\n"
    "sys.argv = ['stapdoctor'] + sys.argv[1:]\n"
    "runpy.run_module('stapdoctor.doctor', run_name='__main__')\n"
)


def run_cli(*args, timeout=120):
    """`stapdoctor ARGS` in a child; (process, that process's own peak RSS in MiB)."""
    p = subprocess.run([sys.executable, "-c", _MEASURED, *args], capture_output=True, text=True, timeout=timeout)
    head, sep, tail = p.stderr.rpartition("\nSTAPDOCTOR-TEST-VMHWM-KB ")
    assert sep, f"no peak reported: {p.stderr[-500:]}"
    p.stderr = head
    return p, int(tail.split()[0]) / 1024


def sysroot(host_root, tmp_path, name="debian-12-stap-4.8"):
    dst = tmp_path / name
    shutil.copytree(host_root(name), dst, symlinks=True)
    return dst


def test_fifo_in_the_sysroot_does_not_hang(host_root, tmp_path):
    root = sysroot(host_root, tmp_path)
    (root / "etc/os-release").unlink()
    os.mkfifo(root / "etc/os-release")
    p, _ = run_cli("check", "--root", str(root), "--json", timeout=60)
    assert p.returncode in (0, 1), p.stderr
    fact = json.loads(p.stdout)
    assert fact["kernel_release"]


def test_fifo_where_a_debug_vmlinux_belongs_does_not_hang(host_root, tmp_path):
    root = sysroot(host_root, tmp_path)
    rel = (root / "proc/sys/kernel/osrelease").read_text().strip()
    (root / "usr/lib/debug/boot").mkdir(parents=True, exist_ok=True)
    os.mkfifo(root / f"usr/lib/debug/boot/vmlinux-{rel}")
    p, _ = run_cli("check", "--root", str(root), "--json", timeout=60)
    assert p.returncode in (0, 1), p.stderr
    assert "a FIFO, not a regular file" in p.stdout


def test_link_to_dev_zero_is_not_read(host_root, tmp_path):
    root = sysroot(host_root, tmp_path)
    (root / "etc/os-release").unlink()
    (root / "etc/os-release").symlink_to("/dev/zero")  # absolute links stay inside the root ...
    (root / "dev").mkdir(exist_ok=True)
    os.mknod(root / "dev/zero", 0o666 | 0o020000, os.makedev(1, 5))  # ... where a real /dev/zero waits
    snap = snapshot.collect(str(root))
    assert snap.files["/etc/os-release"] == {"status": "error",
                                             "error": "a character device, not a regular file: not read"}


def test_config_gz_bomb_is_not_inflated(host_root, tmp_path):
    """A 509 KB /proc/config.gz took 1 GB to decompress; now it stops after 4 MiB."""
    root = sysroot(host_root, tmp_path, "fedora-41")
    with gzip.open(root / "proc/config.gz", "wb", compresslevel=9) as gz:
        block = b"CONFIG_X=y\n" * 100_000
        for _ in range(300):  # 330 MB of config, ~1 MB compressed
            gz.write(block)
    p, peak_mib = run_cli("check", "--root", str(root), "--json")
    assert p.returncode in (0, 1), p.stderr
    kcfg = next(f for f in json.loads(p.stdout)["findings"] if f["id"] == "kernel.config")
    assert "inflates to more than 4 MiB" in kcfg["evidence"]
    assert peak_mib < 200, f"check --root peaked at {peak_mib:.0f} MiB"


def test_os_release_of_nuls_is_parsed_in_linear_time(host_root, tmp_path):
    """1 MB of NULs took 33 s (the shell lexer is quadratic in one token's length); 4 MB would take
    minutes. Bounded by the timeout: a hang, not a speed claim (bench/ measures speed)."""
    root = sysroot(host_root, tmp_path)
    (root / "etc/os-release").write_bytes(b"\0" * (4 * 1024 * 1024))
    p, _ = run_cli("check", "--root", str(root), timeout=60)
    assert p.returncode in (0, 1), p.stderr


def test_oversized_file_is_reported_not_truncated(host_root, tmp_path):
    root = sysroot(host_root, tmp_path)
    (root / "proc/version").write_bytes(b"Linux version " + b"x" * (snapshot.MAX_TEXT + 1))
    fact = snapshot.collect(str(root)).files["/proc/version"]
    assert fact == {"status": "error", "error": "larger than 4 MiB: not read"}


def test_control_characters_from_the_sysroot_never_reach_the_terminal(host_root, tmp_path):
    root = sysroot(host_root, tmp_path)
    (root / "etc/os-release").write_text('ID=debian\nVERSION_ID="12"\nPRETTY_NAME="\x1b]0;owned\x07\x1b[2JDebian"\n')
    p, _ = run_cli("check", "--root", str(root))
    assert "Debian" in p.stdout and "\x1b" not in p.stdout and "\x07" not in p.stdout


# ---------------------------------------------------------------- saved snapshots
@pytest.fixture
def good_snapshot(host_root):
    return json.loads(snapshot.collect(str(host_root("debian-12-stap-4.8"))).to_json())


@pytest.mark.parametrize("mutate, where", [
    (lambda d: d["files"].__setitem__("/proc/version", None), "files['/proc/version']: expected a table, got null"),
    (lambda d: d["files"]["/proc/version"].__setitem__("text", 5), "files['/proc/version'].text: expected a string"),
    (lambda d: d["files"]["/proc/version"].pop("status"), "files['/proc/version']: has no 'status'"),
    (lambda d: d.__setitem__("commands", {"stap-V": {"stdout": ["4.8"]}}), "commands['stap-V'].stdout"),
    (lambda d: d.__setitem__("user", {"uid": "0", "groups": []}), "user.uid: expected a whole number"),
    (lambda d: d.__setitem__("user", {"groups": [None]}), "user.groups[0]: expected a string, got null"),
    (lambda d: d.__setitem__("tools", {"staprun": {"status": "ok", "mode": "4754"}}), "tools['staprun'].mode"),
    (lambda d: d.__setitem__("elf", {"/boot/vmlinux": {"status": "ok", "has_dwarf": "yes"}}), "has_dwarf"),
    (lambda d: d.__setitem__("env", {"DEBUGINFOD_URLS": 1}), "env['DEBUGINFOD_URLS']"),
    (lambda d: d.__setitem__("target", {"objects": [{"path": 7}]}), "target.objects[0].path"),
    (lambda d: d.__setitem__("files", {"/x": {"status": "ok", "hex": "zz"}}), "files['/x'].hex: expected a hex"),
    (lambda d: d.__setitem__("extra", [[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]),
     "nested more than 32 levels deep"),
])
def test_malformed_snapshot_is_a_usage_error_saying_where(good_snapshot, tmp_path, mutate, where):
    mutate(good_snapshot)
    path = tmp_path / "snap.json"
    path.write_text(json.dumps(good_snapshot))
    p, _ = run_cli("check", "--snapshot", str(path))
    assert p.returncode == 2, p.stdout + p.stderr
    assert "malformed snapshot" in p.stderr and where in p.stderr, p.stderr
    assert "Traceback" not in p.stderr and "internal error" not in p.stdout


def test_deeply_nested_snapshot_is_a_usage_error(tmp_path):
    path = tmp_path / "deep.json"
    path.write_text('{"schema": "stapdoctor.snapshot/1", "kernel_release": "6.1", "files": ' + "[" * 100_000
                    + "]" * 100_000 + "}")
    p, _ = run_cli("check", "--snapshot", str(path))
    assert p.returncode == 2 and "malformed snapshot" in p.stderr and "Traceback" not in p.stderr, p.stderr


def test_snapshot_that_is_a_fifo_does_not_hang(tmp_path):
    os.mkfifo(tmp_path / "snap.json")
    p, _ = run_cli("check", "--snapshot", str(tmp_path / "snap.json"), timeout=60)
    assert p.returncode == 2 and "a FIFO, not a regular file" in p.stderr, p.stderr


def test_valid_snapshot_still_loads(good_snapshot, tmp_path):
    path = tmp_path / "snap.json"
    path.write_text(json.dumps(good_snapshot))
    p, _ = run_cli("check", "--snapshot", str(path))
    assert p.returncode in (0, 1), p.stderr


# ---------------------------------------------------------------- the helpers themselves
def test_gunzip_bounds_and_members():
    two = gzip.compress(b"a" * 10) + gzip.compress(b"b" * 10)
    assert safeio.gunzip(two, 20) == b"a" * 10 + b"b" * 10
    with pytest.raises(ValueError, match="inflates to more than 19 bytes"):
        safeio.gunzip(two, 19)
    with pytest.raises(ValueError, match="truncated"):
        safeio.gunzip(gzip.compress(b"x" * 1000)[:-12], 10_000)
    with pytest.raises(ValueError, match="not a gzip file"):
        safeio.gunzip(b"\x1f\x8b garbage", 100)


def test_printable():
    assert safeio.printable("a\x1b[31mb\x07c\u202ed\te\nf") == "a?[31mb?c?d e?f"
    assert safeio.printable("a\nb\x1bc", newlines=True) == "a\nb?c"


def test_snapshot_command_prints_no_escapes_from_the_sysroot(host_root, tmp_path):
    root = sysroot(host_root, tmp_path)
    rel = (root / "proc/sys/kernel/osrelease").read_text().strip()
    (root / "proc/sys/kernel/osrelease").write_text(rel + "\x1b]0;owned\x07\n")
    p, _ = run_cli("snapshot", "--root", str(root), "-o", str(tmp_path / "s.json"))
    assert p.returncode == 0 and "kernel " in p.stderr, p.stderr
    assert "\x1b" not in p.stderr and "\x07" not in p.stderr
