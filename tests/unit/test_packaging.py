"""A plain `pip install .` (README's first command) must ship every subpackage, data file and playbook,
and every command must work from it on stock Debian 12's python3 (3.11.2, not this machine's 3.11.7).

setuptools only installs the packages pyproject lists; a forgotten subpackage works in the editable
checkout and breaks for users. Build the wheel for real and look inside; then install it for real.
"""
import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    # Build from a clean copy: a stale build/ directory in the checkout would hide a missing package.
    tmp = tmp_path_factory.mktemp("wheel")
    src = tmp / "src"
    shutil.copytree(ROOT, src, ignore=shutil.ignore_patterns(".git", ".venv", "build", "*.egg-info", ".artefacts",
                                                             "__pycache__", ".hypothesis", ".vagrant", "tests"))
    shutil.copytree(ROOT / "tests" / "harness", src / "tests" / "harness",
                    ignore=shutil.ignore_patterns("__pycache__"))
    r = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w",
                        str(tmp), str(src)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-3000:]
    return next(tmp.glob("stapdoctor-*.whl"))


def test_wheel_has_every_module_and_data_file(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    mapping = {"doctor": "stapdoctor/doctor", "profiler": "stapdoctor/profiler", "tests/harness": "stapdoctor/testing"}
    for src, dest in mapping.items():
        for f in (ROOT / src).rglob("*"):
            if f.is_file() and "__pycache__" not in f.parts and f.suffix in (".py", ".toml", ".stp", ".json", ".js", ".css", ".sh"):
                rel = f"{dest}/{f.relative_to(ROOT / src).as_posix()}"
                assert rel in names, f"{rel} is missing from the wheel (pyproject packages/package-data)"
    # every tracked playbook file: `stapdoctor fleet` runs check.yml from the install
    tracked = subprocess.run(["git", "ls-files", "playbooks"], cwd=ROOT, capture_output=True, text=True).stdout.split()
    assert tracked
    for rel in tracked:
        assert f"stapdoctor/{rel}" in names, f"{rel} is missing from the wheel (pyproject package-data)"


# ---------------------------------------------------------------- stock Debian 12 python3
def _run(argv, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(argv, capture_output=True, text=True, **kw)


@pytest.mark.ansible
def test_plain_install_on_debian_12_python(wheel, tmp_path):
    """The wheel in a fresh venv made by Debian 12's own python3 (the test hosts' debootstrap root, in an
    overlay so the cached root is untouched): check, fleet against a real test host over SSH,
    flamegraph, profile --help. Dependencies come as cp311 manylinux wheels from PyPI; the chroot has
    no network of its own."""
    if os.geteuid() != 0:
        pytest.skip("needs root (overlay mount, chroot, test hosts); CI runs as root")
    from stapdoctor.testing.testhosts import base_root, bring_up_hosts

    wh = tmp_path / "wheelhouse"
    dl = _run([sys.executable, "-m", "pip", "download", "-q", "--only-binary=:all:", "--implementation", "cp",
               "--python-version", "3.11", "--platform", "manylinux2014_x86_64", "--platform",
               "manylinux_2_17_x86_64", "--platform", "manylinux_2_28_x86_64", "-d", str(wh), str(wheel), "pip"],
              timeout=900)
    assert dl.returncode == 0, dl.stderr[-3000:]
    pip_whl = next(wh.glob("pip-*.whl"))

    base = base_root()
    upper, work, merged = tmp_path / "upper", tmp_path / "work", tmp_path / "root"
    for d in (upper, work, merged):
        d.mkdir()
    mounts: list[Path] = []

    def mount(*args: str, target: Path) -> None:
        r = _run(["mount", *args, str(target)])
        assert r.returncode == 0, r.stderr
        mounts.append(target)

    try:
        mount("-t", "overlay", "overlay", "-o", f"lowerdir={base},upperdir={upper},workdir={work}", target=merged)
        mount("-t", "proc", "proc", target=merged / "proc")
        mount("--bind", "/dev", target=merged / "dev")
        shutil.copytree(wh, merged / "opt/wheelhouse")
        shutil.copy(ROOT / "tests/data/collapse/busy-debian-unstable/input.txt", merged / "opt/stap.out")

        def chroot(*argv: str, timeout: float = 600) -> subprocess.CompletedProcess:
            env = {"PATH": "/opt/venv/bin:/usr/local/bin:/usr/bin:/bin", "HOME": "/root", "LANG": "C.UTF-8",
                   "COLUMNS": "100"}
            return _run([shutil.which("chroot") or "/usr/sbin/chroot", str(merged), *argv], env=env, timeout=timeout)

        v = chroot("python3", "-c", "import sys; print(sys.version.split()[0])")
        assert v.stdout.strip() == "3.11.2", v.stdout + v.stderr  # stock Debian 12, not this machine's
        r = chroot("python3", "-m", "venv", "--without-pip", "/opt/venv")
        assert r.returncode == 0, r.stderr
        r = chroot("/opt/venv/bin/python", f"/opt/wheelhouse/{pip_whl.name}/pip", "install", "-q", "--no-index",
                   "--find-links", "/opt/wheelhouse", f"/opt/wheelhouse/{wheel.name}", timeout=1200)
        assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-3000:]

        r = chroot("stapdoctor", "check")
        assert r.returncode in (0, 1) and "stapdoctor check" in r.stdout and "Traceback" not in r.stderr, \
            r.stdout + r.stderr
        r = chroot("stapdoctor", "flamegraph", "/opt/stap.out", "-o", "/opt/flame.svg")
        assert r.returncode == 0, r.stdout + r.stderr
        assert (merged / "opt/flame.svg").read_text().lstrip().startswith(("<?xml", "<svg"))
        r = chroot("stapdoctor", "profile", "--help")
        assert r.returncode == 0 and "--duration" in r.stdout, r.stdout + r.stderr

        with bring_up_hosts(1, name_prefix="pkgcheck") as fl:
            h = fl.hosts[0]
            ssh_dir = merged / "root/fleet-ssh"
            ssh_dir.mkdir(mode=0o700)
            shutil.copy(fl.key_file, ssh_dir / "id")
            (ssh_dir / "id").chmod(0o600)
            shutil.copy(fl.known_hosts, ssh_dir / "known_hosts")
            hostvars = fl.ansible_host_vars()[h.name]
            hostvars["ansible_ssh_private_key_file"] = "/root/fleet-ssh/id"
            hostvars["ansible_ssh_common_args"] = hostvars["ansible_ssh_common_args"].replace(
                str(fl.known_hosts), "/root/fleet-ssh/known_hosts")
            (merged / "root/hosts.yml").write_text(json.dumps(
                {"all": {"children": {"stap_hosts": {"hosts": {h.name: hostvars}}}}}))
            r = chroot("stapdoctor", "fleet", "-i", "/root/hosts.yml", timeout=600)
        # a bare Debian host is not ready (no stap): exit 1 with its row, not an error about playbooks
        assert r.returncode == 1, r.stdout + r.stderr
        row = next(line for line in r.stdout.splitlines() if line.strip().startswith(h.name))
        assert "NOT READY" in row and "FAIL" in row, r.stdout
    finally:
        for target in reversed(mounts):
            if _run(["umount", str(target)]).returncode != 0:
                _run(["umount", "-l", str(target)])
