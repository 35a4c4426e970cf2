"""Bad input: every one gives a clear finding or message, never a traceback."""
import gzip
import json
import os
import shutil
import subprocess
import sys

import pytest

from stapdoctor.doctor import checks, snapshot


def run_cli(*args, **kw):
    return subprocess.run([sys.executable, "-m", "stapdoctor.doctor", *args], capture_output=True, text=True, **kw)


def copy_host(host_root, name, tmp_path):
    dst = tmp_path / name
    shutil.copytree(host_root(name), dst, symlinks=True)
    return dst


def by_id(root):
    return {f.id: f for f in checks.run_checks(snapshot.collect(str(root)))}


def test_binary_config(host_root, tmp_path):
    root = copy_host(host_root, "ubuntu-12.04", tmp_path)
    rel = (root / "proc/sys/kernel/osrelease").read_text().strip()
    (root / f"boot/config-{rel}").write_bytes(os.urandom(4096) + b"\0CONFIG_UPROBES=y")
    (root / f"usr/src/linux-headers-{rel}/.config").unlink()
    got = by_id(root)
    assert got["kernel.config"].status == "fail"
    assert "binary data" in got["kernel.config"].evidence
    assert got["kernel.uprobes"].status == "skip"


def test_garbled_proc_config_gz(host_root, tmp_path):
    root = copy_host(host_root, "fedora-41", tmp_path)
    (root / "proc/config.gz").write_bytes(b"\x1f\x8b garbage that is not gzip")
    f = by_id(root)["kernel.config"]
    assert f.status == "pass" and "/proc/config.gz (not a gzip file" in f.evidence


def test_proc_config_gz_is_read(host_root, tmp_path):
    root = copy_host(host_root, "ubuntu-22.04", tmp_path)
    rel = (root / "proc/sys/kernel/osrelease").read_text().strip()
    text = (root / f"boot/config-{rel}").read_text()
    (root / "proc/config.gz").write_bytes(gzip.compress(text.encode()))
    (root / f"boot/config-{rel}").unlink()
    f = by_id(root)["kernel.config"]
    assert f.status == "pass" and "/proc/config.gz" in f.evidence


def test_truncated_os_release(host_root, tmp_path):
    root = copy_host(host_root, "ubuntu-22.04", tmp_path)
    (root / "etc/os-release").write_text('NAME="Ubu')
    r = run_cli("check", "--root", str(root), "--json")
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert json.loads(r.stdout)["distribution"]["id"] in ("", "ubuntu")


def test_future_stap_version(host_root, tmp_path):
    root = copy_host(host_root, "fedora-41", tmp_path)
    (root / ".stapdoctor/commands/stap-V.out").write_text(
        "Systemtap translator/driver (version 9.3/0.205, non-git sources)\n"
        "tested kernel versions: 4.18 ... 9.1.0-rc1\nenabled features: NEW FEATURES\n")
    got = by_id(root)
    assert got["stap.installed"].status == "pass" and "9.3" in got["stap.installed"].evidence
    assert got["stap.kernel_range"].status == "pass"


def test_future_stap_without_range_is_a_warning(host_root, tmp_path):
    root = copy_host(host_root, "fedora-41", tmp_path)
    (root / ".stapdoctor/commands/stap-V.out").write_text("Systemtap translator/driver (version 12.0/1.0, x)\n")
    f = by_id(root)["stap.kernel_range"]
    assert f.status == "warn" and "cannot tell" in f.evidence


def test_stap_v_garbage(host_root, tmp_path):
    root = copy_host(host_root, "fedora-41", tmp_path)
    (root / ".stapdoctor/commands/stap-V.out").write_text("Segmentation fault\n")
    (root / ".stapdoctor/commands/stap-V.rc").write_text("139\n")
    f = by_id(root)["stap.installed"]
    assert f.status == "fail" and "exited 139" in f.evidence


def test_old_stap_prints_version_on_stderr(host_root):
    f = by_id(host_root("rhel-6"))["stap.installed"]
    assert f.status == "pass" and "2.5" in f.evidence


def test_dangling_build_link(host_root, tmp_path):
    root = copy_host(host_root, "fedora-41", tmp_path)
    shutil.rmtree(next((root / "usr/src").iterdir()))
    f = by_id(root)["devel.build"]
    assert f.status == "fail" and "does not resolve" in f.evidence


def test_no_kernel_release_in_root(tmp_path):
    (tmp_path / "etc").mkdir()
    r = run_cli("check", "--root", str(tmp_path))
    assert r.returncode == 2 and "cannot tell which kernel" in r.stderr and "Traceback" not in r.stderr


def test_missing_root_and_snapshot(tmp_path):
    r = run_cli("check", "--root", str(tmp_path / "nope"))
    assert r.returncode == 2 and "Traceback" not in r.stderr
    r = run_cli("check", "--snapshot", str(tmp_path / "nope.json"))
    assert r.returncode == 2 and "does not exist" in r.stderr and "Traceback" not in r.stderr


@pytest.mark.parametrize("content", [b"", b"{not json", b"\xff\xfe\x00binary", b'{"schema": "other"}',
                                     b'{"schema": "stapdoctor.snapshot/99"}', b'[1, 2]',
                                     b'{"schema": "stapdoctor.snapshot/1", "files": 3}'])
def test_garbage_snapshot_files(tmp_path, content):
    p = tmp_path / "s.json"
    p.write_bytes(content)
    r = run_cli("check", "--snapshot", str(p))
    assert r.returncode == 2, r.stdout
    assert "stapdoctor:" in r.stderr and "Traceback" not in r.stderr


def test_root_and_snapshot_together_is_usage_error(tmp_path):
    r = run_cli("check", "--root", str(tmp_path), "--snapshot", str(tmp_path / "x.json"))
    assert r.returncode == 2 and "alternatives" in r.stderr


def test_unreadable_files_when_not_root(host_root):
    """As an ordinary user, root-only files become 'unreadable' findings, not crashes."""
    import tempfile
    base = tempfile.mkdtemp(prefix="stapdoctor-nonroot-")   # pytest's tmp dirs are 0700: nobody can't enter
    try:
        os.chmod(base, 0o755)
        root = os.path.join(base, "ready")
        shutil.copytree(host_root("ready"), root, symlinks=True)
        for dirpath, _, _ in os.walk(root):
            os.chmod(dirpath, 0o755)
        os.chmod(os.path.join(root, "sys/kernel/security/lockdown"), 0o600)
        os.chmod(os.path.join(root, "sys/kernel/notes"), 0o600)
        os.chmod(os.path.join(root, "sys/module/module/parameters/sig_enforce"), 0o600)
        r = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", sys.executable, "-m",
                            "stapdoctor.doctor", "check", "--root", root, "--json"],
                           capture_output=True, text=True, env=dict(os.environ, HOME="/tmp"), cwd="/")
    finally:
        shutil.rmtree(base)
    assert "Traceback" not in r.stderr and r.stdout, r.stderr
    got = {f["id"]: f for f in json.loads(r.stdout)["findings"]}
    assert got["policy.lockdown"]["status"] == "warn" and "unreadable" in got["policy.lockdown"]["evidence"]
    assert got["debuginfo.vmlinux"]["status"] == "warn" and "unknown" in got["debuginfo.vmlinux"]["evidence"]
    assert got["policy.sig_enforce"]["status"] == "warn" and "unreadable" in got["policy.sig_enforce"]["evidence"]


def test_garbage_elf_in_debug_path(host_root, tmp_path):
    root = copy_host(host_root, "debian-12-stap-4.8", tmp_path)
    rel = (root / "proc/sys/kernel/osrelease").read_text().strip()
    p = root / f"usr/lib/debug/boot/vmlinux-{rel}"
    p.parent.mkdir(parents=True)
    p.write_bytes(b"\x7fELF" + os.urandom(200))
    f = by_id(root)["debuginfo.vmlinux"]
    assert f.status == "fail" and "not a readable ELF" in f.evidence
