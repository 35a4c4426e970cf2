"""site.yml and check.yml on Ubuntu 24.04 and Fedora 40 stand-in hosts, through real apt and dnf.

The hosts are Debian roots whose identity files say Ubuntu noble / Fedora 40 (stapdoctor.testing.
distrohosts), reached over SSH like the Debian ones. Their packages come from signed local archives
(stapdoctor.testing.archives): an Ubuntu archive and a ddebs archive (signed-by keyrings, never
trusted=yes) and a Fedora archive tree of rpmsign'ed rpms (gpgcheck=1, the key imported by dnf from
the repo file's gpgkey as on a real host). Fedora 40 is end-of-life, so the roles first point its
stock repo files (metalink) at the archive: the test's archive URL stands in for
archives.fedoraproject.org. Their kernel is this machine's: Ubuntu targets the running release (its
build-id in /sys/kernel/notes), Fedora a Fedora-shaped release whose kernel-devel carries vmlinux.id.

The Ubuntu 12.10 host (Python 2.7, no apt bindings: the roles install through apt-get / dpkg there)
reads the signed old-releases stand-in (its key in /etc/apt/trusted.gpg.d, as 12.10's ubuntu-keyring
installed it) and gets its debug symbols through the Launchpad .ddeb fallback from a local HTTPS
stand-in for Launchpad (stapdoctor.testing.launchpad), verified against the published SHA-256.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from stapdoctor.testing import archives, distrohosts
from stapdoctor.testing.ansiblerun import PLAYBOOKS, VENV_BIN, recap, timed
from stapdoctor.testing.launchpad import FakeLaunchpad
from stapdoctor.testing.testhosts import bring_up_hosts

pytestmark = pytest.mark.ansible

UBUNTU = "noble-host"
FEDORA = "fedora40-host"
QUANTAL = "quantal-host"  # Ubuntu 12.10 stand-in: Debian 11 with only /usr/bin/python2.7
CONVERGED = f"{UBUNTU},{FEDORA}"
OS_RELEASE_DATA = Path(__file__).resolve().parents[1] / "data/doctor/os-release"
# 12.10's stock sources (archive.ubuntu.com is gone for quantal: the roles rewrite them to old-releases)
QUANTAL_SOURCES = """\
deb http://archive.ubuntu.com/ubuntu/ quantal main restricted
deb http://us.archive.ubuntu.com/ubuntu/ quantal-updates main restricted
deb http://security.ubuntu.com/ubuntu quantal-security main restricted
"""
PORT = 8080

STOCK_FEDORA_REPO = """\
[fedora]
name=Fedora $releasever - $basearch
#baseurl=http://download.example/pub/fedora/linux/releases/$releasever/Everything/$basearch/os/
metalink=https://mirrors.fedoraproject.org/metalink?repo=fedora-$releasever&arch=$basearch
enabled=1
countme=1
metadata_expire=7d
repo_gpgcheck=0
type=rpm
gpgcheck=1
gpgkey=file:///etc/pki/rpm-gpg/RPM-GPG-KEY-fedora-$releasever-$basearch
skip_if_unavailable=False

[fedora-debuginfo]
name=Fedora $releasever - $basearch - Debug
#baseurl=http://download.example/pub/fedora/linux/releases/$releasever/Everything/$basearch/debug/tree/
metalink=https://mirrors.fedoraproject.org/metalink?repo=fedora-debug-$releasever&arch=$basearch
enabled=0
metadata_expire=7d
repo_gpgcheck=0
type=rpm
gpgcheck=1
gpgkey=file:///etc/pki/rpm-gpg/RPM-GPG-KEY-fedora-$releasever-$basearch
skip_if_unavailable=False
"""
STOCK_FEDORA_UPDATES_REPO = """\
[updates]
name=Fedora $releasever - $basearch - Updates
#baseurl=http://download.example/pub/fedora/linux/updates/$releasever/Everything/$basearch/
metalink=https://mirrors.fedoraproject.org/metalink?repo=updates-released-f$releasever&arch=$basearch
enabled=1
repo_gpgcheck=0
type=rpm
gpgcheck=1
metadata_expire=6h
gpgkey=file:///etc/pki/rpm-gpg/RPM-GPG-KEY-fedora-$releasever-$basearch
skip_if_unavailable=False

[updates-debuginfo]
name=Fedora $releasever - $basearch - Updates - Debug
#baseurl=http://download.example/pub/fedora/linux/updates/$releasever/Everything/$basearch/debug/
metalink=https://mirrors.fedoraproject.org/metalink?repo=updates-released-debug-f$releasever&arch=$basearch
enabled=0
repo_gpgcheck=0
type=rpm
gpgcheck=1
metadata_expire=6h
gpgkey=file:///etc/pki/rpm-gpg/RPM-GPG-KEY-fedora-$releasever-$basearch
skip_if_unavailable=False
"""


@dataclass
class DistroEnv:
    fleet: object
    inventory: Path
    workdir: Path
    archives: archives.Archives
    server: object
    lp: FakeLaunchpad
    timings: dict = field(default_factory=dict)

    def _env(self) -> dict:
        return dict(os.environ, ANSIBLE_CONFIG=str(PLAYBOOKS / "ansible.cfg"), ANSIBLE_NOCOLOR="1",
                    ANSIBLE_FORCE_COLOR="0", HOME=str(self.workdir / "home"), SSL_CERT_FILE=str(self.lp.cert),
                    PATH=f"{VENV_BIN}:{os.environ.get('PATH', '')}")

    def playbook(self, name: str, *args: str, timeout: float = 1500) -> subprocess.CompletedProcess:
        argv = [str(VENV_BIN / "ansible-playbook"), "-i", str(self.inventory), str(PLAYBOOKS / name), *args]
        p = subprocess.run(argv, text=True, capture_output=True, env=self._env(), timeout=timeout, cwd=PLAYBOOKS)
        (self.workdir / "logs").mkdir(exist_ok=True)
        (self.workdir / "logs" / f"{name}-{time.time():.0f}.log").write_text(p.stdout + p.stderr)
        return p

    def facts(self) -> dict[str, dict]:
        p = subprocess.run([str(VENV_BIN / "ansible"), "-i", str(self.inventory), "all", "-m",
                            "ansible.builtin.setup", "-a", "filter=ansible_[dop]*"],
                           text=True, capture_output=True, timeout=300, cwd=PLAYBOOKS, env=self._env())
        assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-2000:]
        out = {}
        for name in (h.name for h in self.fleet.hosts):
            start = p.stdout.index(f"{name} | SUCCESS => ") + len(f"{name} | SUCCESS => ")
            out[name] = json.JSONDecoder().raw_decode(p.stdout[start:])[0]["ansible_facts"]
        return out


def _ubuntu_spec(arch: archives.Archives):
    files = distrohosts.ubuntu_identity("24.04", "noble", "Ubuntu 24.04.3 LTS")
    files.update({
        # as on a stock noble host: deb822 sources signed-by ubuntu-keyring's file (here: the test key)
        "/etc/apt/sources.list": "# Ubuntu sources have moved to /etc/apt/sources.list.d/ubuntu.sources\n",
        "/etc/apt/sources.list.d/ubuntu.sources": lambda gw: (
            f"Types: deb\nURIs: http://{gw}:{PORT}/ubuntu\nSuites: noble\nComponents: main\n"
            "Signed-By: /usr/share/keyrings/ubuntu-archive-keyring.gpg\n"),
        "/usr/share/keyrings/ubuntu-archive-keyring.gpg": arch.key_binary.read_bytes(),
    })
    return distrohosts.spec(UBUNTU, None, files)


def _fedora_spec(arch: archives.Archives):
    files = distrohosts.fedora_identity(arch.fedora_version)
    files.update({
        "/etc/yum.repos.d/fedora.repo": STOCK_FEDORA_REPO,
        "/etc/yum.repos.d/fedora-updates.repo": STOCK_FEDORA_UPDATES_REPO,
        # fedora-gpg-keys ships the release key at this path; here it is the test key
        f"/etc/pki/rpm-gpg/RPM-GPG-KEY-fedora-{arch.fedora_version}-x86_64": arch.key_armored,
    })
    return distrohosts.spec(FEDORA, distrohosts.fedora_base(), files)


def _quantal_spec(arch: archives.Archives):
    # 12.10's own os-release and lsb-release (tests/data/doctor/os-release, see SOURCES.md there)
    os_release = (OS_RELEASE_DATA / "ubuntu-12.10.os-release").read_text()
    files = {"/etc/os-release": os_release, "/usr/lib/os-release": os_release,
             "/etc/lsb-release": (OS_RELEASE_DATA / "ubuntu-12.10.lsb-release").read_text(),
             "/etc/debian_version": "wheezy/sid\n", "/etc/apt/sources.list": QUANTAL_SOURCES,
             # ubuntu-keyring's archive key (here: the test key), trusted by apt as on 12.10
             "/etc/apt/trusted.gpg.d/ubuntu-keyring-2012-archive.gpg": arch.key_binary.read_bytes()}
    return distrohosts.spec(QUANTAL, distrohosts.py27_base(), files, python="/usr/bin/python2.7")


@pytest.fixture(scope="module")
def distro_env(tmp_path_factory):
    if os.geteuid() != 0:
        pytest.skip("the Ansible tier needs root (mounts, network namespaces); CI runs as root")
    workdir = tmp_path_factory.mktemp("distros")
    (workdir / "home").mkdir()
    t0 = time.monotonic()
    arch = archives.build_archives()
    timings = {"archives": round(time.monotonic() - t0, 1)}
    lp = FakeLaunchpad(workdir / "launchpad", f"linux-image-{arch.ubuntu_release}-dbgsym", arch.ubuntu_pkg_version,
                       arch.launchpad_ddeb.read_bytes(), series="quantal")
    with lp, bring_up_hosts(specs=[_ubuntu_spec(arch), _fedora_spec(arch), _quantal_spec(arch)]) as fleet, \
            archives.serve(arch.root, fleet.gateway, PORT) as url:
        timings.update({f"hosts_{k}": v for k, v in fleet.timings.items()})
        # The Fedora host has this kernel installed but not booted: kernel-core owns /lib/modules/R/build.
        core = next((arch.root / f"fedora/linux/releases/{arch.fedora_version}/Everything/x86_64/os/Packages/k")
                    .glob("kernel-core-*.rpm"))
        fleet.ssh(FEDORA, "mkdir", "-p", "/var/tmp/preinstalled")
        with open(core, "rb") as f:
            subprocess.run(fleet.ssh_argv(FEDORA) + ["--", f"cat > /var/tmp/preinstalled/{core.name}"], stdin=f,
                           check=True, timeout=60)
        fleet.ssh(FEDORA, "dnf", "install", "-y", "-q", "--disablerepo=*", "--nogpgcheck",
                  f"/var/tmp/preinstalled/{core.name}", timeout=300)
        for h in fleet.hosts:
            fleet.ssh(h, "useradd", "--create-home", "alice")
        inventory = fleet.write_inventory(
            workdir / "inventory.yml",
            group_vars={
                "stap_users": ["alice"],
                "systemtap_install": "package",
                "systemtap_controller_cache": str(workdir / "controller-cache"),
                # the local stand-ins for archives.fedoraproject.org and ddebs.ubuntu.com
                "kernel_devel_fedora_archive_url": f"{url}/fedora/linux",
                "debuginfo_ddebs_url": f"{url}/ddebs",
            },
            host_vars={UBUNTU: {"kernel_release": arch.ubuntu_release},
                       FEDORA: {"kernel_release": arch.fedora_release},
                       QUANTAL: {"kernel_release": arch.ubuntu_release,
                                 "kernel_devel_ubuntu_old_releases_url": f"{url}/old-releases/ubuntu",
                                 # the stand-in's kernel has no /proc/version_signature to read it from
                                 "debuginfo_kernel_package_version": arch.ubuntu_pkg_version,
                                 "debuginfo_launchpad_api": lp.api}},
        )
        env = DistroEnv(fleet=fleet, inventory=inventory, workdir=workdir, archives=arch,
                        server=archives.serve.last, lp=lp, timings=timings)  # type: ignore[attr-defined]
        yield env
        (workdir / "timings.json").write_text(json.dumps(env.timings, indent=2))
        print(f"\ndistro hosts timings: {json.dumps(env.timings)}")


def test_facts_say_ubuntu_and_fedora(distro_env):
    facts = distro_env.facts()
    u, f = facts[UBUNTU], facts[FEDORA]
    assert (u["ansible_distribution"], u["ansible_distribution_version"], u["ansible_distribution_release"],
            u["ansible_os_family"], u["ansible_pkg_mgr"]) == ("Ubuntu", "24.04", "noble", "Debian", "apt")
    assert (f["ansible_distribution"], f["ansible_distribution_major_version"], f["ansible_os_family"],
            f["ansible_pkg_mgr"]) == ("Fedora", "40", "RedHat", "dnf")
    q = facts[QUANTAL]
    # (its release fact is "Quantal Quetzal", from os-release's VERSION: the stand-in has no lsb_release
    # program; the roles take the codename from the knowledge table, not from that fact)
    assert (q["ansible_distribution"], q["ansible_distribution_version"], q["ansible_os_family"]) == \
        ("Ubuntu", "12.10", "Debian")
    # ansible-core 2.16 manages it through Python 2.7, the only Python there
    assert q["ansible_python_version"].startswith("2.7."), q["ansible_python_version"]
    assert distro_env.fleet.ssh(QUANTAL, "sh", "-c", "command -v python3", check=False).returncode != 0


def test_site_converges_on_ubuntu_and_fedora(distro_env):
    env = distro_env
    arch = env.archives
    p = timed(env, "converge", "site.yml", "-l", CONVERGED)
    assert p.returncode == 0, p.stdout[-8000:] + p.stderr[-2000:]
    rc = recap(p.stdout)
    assert set(rc) == {UBUNTU, FEDORA} and all(r["failed"] == 0 for r in rc.values()), rc
    # Ubuntu: headers from the archive, the keyring, the signed-by ddebs source, the .ddeb
    R = arch.ubuntu_release
    q = env.fleet.ssh(UBUNTU, "dpkg-query", "-W", "-f", "${Package} ${Status}\n", f"linux-headers-{R}",
                      f"linux-image-unsigned-{R}-dbgsym", "ubuntu-dbgsym-keyring", "systemtap")
    assert q.stdout.count("install ok installed") == 4, q.stdout
    ddebs = env.fleet.ssh(UBUNTU, "cat", "/etc/apt/sources.list.d/ddebs.list").stdout
    assert f"deb [signed-by=/usr/share/keyrings/ubuntu-dbgsym-keyring.gpg] http://{env.fleet.gateway}:{PORT}/ddebs noble main restricted universe multiverse" in ddebs
    assert "trusted" not in ddebs
    assert "ddebs/pool/main/l/linux-image-unsigned-" in " ".join(env.server.requests)
    assert any(r.endswith(".ddeb") for r in env.server.requests)
    # Fedora: the stock repo files now point at the archive (no metalink), gpgcheck on, key imported
    repo = env.fleet.ssh(FEDORA, "cat", "/etc/yum.repos.d/fedora.repo").stdout
    assert f"baseurl=http://{env.fleet.gateway}:{PORT}/fedora/linux/releases/$releasever/Everything/$basearch/os/" in repo
    assert "\nmetalink=" not in repo and "#metalink=" in repo and "gpgcheck=1" in repo
    keys = env.fleet.ssh(FEDORA, "rpm", "-q", "gpg-pubkey", "--qf", "%{VERSION}\n").stdout.split()
    assert arch.key_id[-8:].lower() in keys, keys
    FR = arch.fedora_release
    rpms = env.fleet.ssh(FEDORA, "rpm", "-q", f"kernel-devel-{FR}", f"kernel-debuginfo-{FR}",
                         f"kernel-debuginfo-common-x86_64-{FR}", "systemtap", "dnf-plugins-core", check=False)
    assert rpms.returncode == 0 and "not installed" not in rpms.stdout, rpms.stdout
    # signatures were checked: every installed test rpm carries the key's signature
    sig = env.fleet.ssh(FEDORA, "rpm", "-q", "--qf", "%{NAME} %{RSAHEADER:pgpsig}\n", f"kernel-devel-{FR}",
                        f"kernel-debuginfo-{FR}").stdout
    assert sig.count(arch.key_id[-16:].lower()) == 2, sig
    for h in (UBUNTU, FEDORA):
        assert {"stapusr", "stapdev"} <= set(env.fleet.ssh(h, "id", "-nG", "alice").stdout.split())


def test_second_run_changes_nothing(distro_env):
    p = timed(distro_env, "second_run", "site.yml", "-l", CONVERGED)
    assert p.returncode == 0, p.stdout[-6000:]
    rc = recap(p.stdout)
    assert rc and all(r["changed"] == 0 for r in rc.values()), rc


def test_check_passes_devel_and_debuginfo(distro_env):
    from stapdoctor.doctor import fleet

    env = distro_env
    dest = env.workdir / "snapshots"
    p = timed(env, "check", "check.yml", "-e", f"doctor_collect_dest={dest}")
    assert p.returncode == 0, p.stdout[-4000:]
    reports = fleet.collect_reports(dest)
    assert set(reports) == {UBUNTU, FEDORA, QUANTAL}
    # the collector ran on the Python 2.7 host, and `stapdoctor fleet` shows it
    from rich.console import Console

    console = Console(record=True, width=400)
    fleet.print_table(console, reports, {})
    assert QUANTAL in console.export_text()
    assert reports[QUANTAL]["kernel_release"] == env.archives.ubuntu_release
    for host, rep in ((h, reports[h]) for h in (UBUNTU, FEDORA)):
        by = {f["id"]: f for f in rep["findings"]}
        for cid in ("devel.build", "debuginfo.vmlinux", "stap.installed", "access.user"):
            assert by[cid]["status"] == "pass", (host, by[cid])
        assert env.archives.build_id in by["debuginfo.vmlinux"]["evidence"], by["debuginfo.vmlinux"]


def test_python27_host_converges_through_apt_get(distro_env):
    """Ubuntu 12.10 through Python 2.7, which has no apt bindings (the apt module cannot run there):
    site.yml rewrites the sources to old-releases, installs the headers and systemtap from the signed
    stand-in with apt-get, the Launchpad .ddeb with dpkg -i after its SHA-256 matched, sets up stap
    access; a second run, and a --check run, change nothing."""
    env, arch, fl = distro_env, distro_env.archives, distro_env.fleet
    assert fl.ssh(QUANTAL, "python2.7", "-c", "import apt_pkg", check=False).returncode != 0
    p = timed(env, "quantal_converge", "site.yml", "-l", QUANTAL)
    assert p.returncode == 0, p.stdout[-8000:] + p.stderr[-2000:]
    assert recap(p.stdout)[QUANTAL]["failed"] == 0
    assert f"Install with apt-get install linux-headers-{arch.ubuntu_release}" in p.stdout
    assert "Install with dpkg -i (waiting for the dpkg lock) linux-image-" in p.stdout
    sources = fl.ssh(QUANTAL, "cat", "/etc/apt/sources.list").stdout
    old = f"http://{fl.gateway}:{PORT}/old-releases/ubuntu"
    assert sources.splitlines() == [f"deb {old}/ quantal main restricted", f"deb {old}/ quantal-updates main restricted",
                                    f"deb {old} quantal-security main restricted"], sources
    # signed: apt read InRelease and checked it against the trusted.gpg.d key (nothing trusted=yes)
    assert "/old-releases/ubuntu/dists/quantal/InRelease" in env.server.requests
    assert "trusted=yes" not in fl.ssh(QUANTAL, "sh", "-c", "cat /etc/apt/sources.list /etc/apt/sources.list.d/* "
                                                           "2>/dev/null", check=False).stdout
    R = arch.ubuntu_release
    q = fl.ssh(QUANTAL, "dpkg-query", "-W", "-f", "${Package} ${Version} ${Status}\n", f"linux-headers-{R}",
               f"linux-image-{R}-dbgsym", "systemtap")
    assert q.stdout.count("install ok installed") == 3, q.stdout
    assert f"linux-image-{R}-dbgsym {arch.ubuntu_pkg_version} " in q.stdout
    # the .ddeb came from Launchpad's stand-in, after the API named it with its SHA-256
    assert any("ws.op=getPublishedBinaries" in r for r in env.lp.requests) and env.lp.file_path in env.lp.requests
    cached = env.workdir / "home/.cache/stapdoctor/ddebs" / env.lp.filename
    assert hashlib.sha256(cached.read_bytes()).hexdigest() == env.lp.published_sha256
    assert fl.ssh(QUANTAL, "test", "-L", f"/lib/modules/{R}/build").returncode == 0
    assert {"stapusr", "stapdev"} <= set(fl.ssh(QUANTAL, "id", "-nG", "alice").stdout.split())
    again = timed(env, "quantal_second_run", "site.yml", "-l", QUANTAL)
    assert again.returncode == 0 and recap(again.stdout)[QUANTAL]["changed"] == 0, again.stdout[-5000:]
    # and --check agrees (dpkg-query and Launchpad's answer are read under --check too)
    check = timed(env, "quantal_check_mode", "site.yml", "--check", "-l", QUANTAL)
    assert check.returncode == 0 and recap(check.stdout)[QUANTAL]["changed"] == 0, check.stdout[-5000:]


APT_INSTALL_PLAY = """\
- name: The roles' apt install step, alone
  hosts: {host}
  gather_facts: false
  become: true
  tasks:
{includes}
"""
APT_INCLUDE = """\
    - name: Install {packages}
      ansible.builtin.include_tasks: {tasks}
      vars:
        apt_install_packages: {packages}
        apt_install_update_cache: true
        apt_install_cache_valid_time: 3600
        apt_install_lock_timeout: 30
"""


def _apt_install_play(env, name: str, *package_lists: list[str], host: str = QUANTAL) -> Path:
    play = env.workdir / f"{name}.yml"
    play.write_text(APT_INSTALL_PLAY.format(host=host, includes="".join(
        APT_INCLUDE.format(packages=json.dumps(pkgs), tasks=PLAYBOOKS / "tasks/apt_install.yml")
        for pkgs in package_lists)))
    return play


def test_apt_get_fallback_check_mode_and_errors(distro_env):
    """The apt-get path (after the converge): --check reports what it would install and installs
    nothing; an unknown package and a version pin fail with a clear message; apt_install_method
    chooses the path where the inventory says so."""
    env, R = distro_env, distro_env.archives.ubuntu_release
    missing = "stapdoctor-no-such-package"
    play = _apt_install_play(env, "apt-check", [f"linux-headers-{R}", "systemtap"], [missing])
    p = env.playbook(str(play), "--check")
    assert p.returncode == 0, p.stdout[-4000:]
    assert recap(p.stdout)[QUANTAL]["changed"] == 1, p.stdout[-4000:]  # only the missing one
    assert f"would install {missing}" in p.stdout
    assert env.fleet.ssh(QUANTAL, "dpkg-query", "-W", missing, check=False).returncode != 0
    p = env.playbook(str(_apt_install_play(env, "apt-missing", [missing])))
    assert p.returncode != 0
    assert f"apt-get could not install {missing}" in p.stdout and "Unable to locate package" in p.stdout, \
        p.stdout[-4000:]
    p = env.playbook(str(_apt_install_play(env, "apt-pin", ["systemtap=5.0.2-1ubuntu1"])))
    assert p.returncode != 0 and "must be plain package names" in p.stdout, p.stdout[-4000:]
    # apt_install_method=apt-get takes that path on a host whose Python has the bindings, too
    noble = _apt_install_play(env, "apt-noble", [missing], host=UBUNTU)
    p = env.playbook(str(noble), "--check", "-e", "apt_install_method=apt-get")
    assert p.returncode == 0 and re.search(f"would (read the package lists, )?install {missing}", p.stdout), \
        p.stdout[-4000:]
    p = env.playbook(str(noble), "--check", "-e", "apt_install_method=yum")
    assert p.returncode != 0 and "apt_install_method must be auto, module or apt-get" in p.stdout, p.stdout[-3000:]


# Holds dpkg's locks as another apt or dpkg would (the frontend lock, and the database lock that every
# dpkg takes) until the test tells it to let go (or 120 s), then notes when it did.
LOCK_HOLDER = """\
import fcntl, os, time
locks = [open(p, 'w') for p in ('/var/lib/dpkg/lock-frontend', '/var/lib/dpkg/lock')]
for f in locks:
    fcntl.lockf(f, fcntl.LOCK_EX)
open('/run/stapdoctor-test-locked', 'w').close()
deadline = time.time() + 120
while not os.path.exists('/run/stapdoctor-test-release') and time.time() < deadline:
    time.sleep(0.1)
open('/run/stapdoctor-test-released', 'w').write('%d' % time.time())
for f in locks:
    f.close()
"""
APT_DEB_PLAY = """\
- name: The roles' .deb install step, alone
  hosts: {host}
  gather_facts: false
  become: true
  tasks:
    - name: Install the .deb
      ansible.builtin.include_tasks: {tasks}
      vars:
        apt_install_deb: {deb}
        apt_install_lock_timeout: 30
"""


def _hold_dpkg_lock(fl) -> None:
    fl.ssh(QUANTAL, "rm", "-f", "/run/stapdoctor-test-locked", "/run/stapdoctor-test-release",
           "/run/stapdoctor-test-released")
    fl.ssh(QUANTAL, "sh", "-c", 'setsid python2.7 -c "$1" </dev/null >/dev/null 2>&1 &', "sh", LOCK_HOLDER)
    fl.ssh(QUANTAL, "sh", "-c", "for i in $(seq 50); do [ -e /run/stapdoctor-test-locked ] && exit 0; sleep 0.1; done;"
           " exit 1")


def _play_while_locked(env, play: Path, blocked) -> subprocess.CompletedProcess:
    """Run the play while the lock is held; let go once blocked(output so far) says the install is
    waiting for it (or after 90 s, which the assertions then catch)."""
    argv = [str(VENV_BIN / "ansible-playbook"), "-i", str(env.inventory), str(play)]
    proc = subprocess.Popen(argv, text=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, cwd=PLAYBOOKS,
                            env=dict(env._env(), PYTHONUNBUFFERED="1"))
    out: list[str] = []
    reader = threading.Thread(target=lambda: out.extend(proc.stdout), daemon=True)  # type: ignore[arg-type]
    reader.start()
    deadline = time.monotonic() + 90
    try:
        while proc.poll() is None and time.monotonic() < deadline and not blocked("".join(out)):
            time.sleep(0.5)
    finally:
        env.fleet.ssh(QUANTAL, "touch", "/run/stapdoctor-test-release")
    rc = proc.wait(timeout=300)
    reader.join(30)
    return subprocess.CompletedProcess(argv, rc, "".join(out), "")


def _installed_after_release(fl, package: str) -> bool:
    """dpkg wrote the package's file list no earlier than the second the lock holder let go."""
    released = int(fl.ssh(QUANTAL, "cat", "/run/stapdoctor-test-released").stdout)
    listed = int(fl.ssh(QUANTAL, "stat", "-c", "%Y", f"/var/lib/dpkg/info/{package}.list").stdout)
    return listed >= released


def _apt_get_waiting(fl) -> bool:
    return fl.ssh(QUANTAL, "pgrep", "-x", "apt-get", check=False).returncode == 0


def test_apt_get_fallback_waits_for_the_dpkg_lock(distro_env):
    """Another apt holds the lock: apt-get waits (DPkg::Lock::Timeout) and dpkg -i is retried, within
    the lock timeout, instead of failing at once."""
    env, fl, R = distro_env, distro_env.fleet, distro_env.archives.ubuntu_release
    headers = f"linux-headers-{R}"
    fl.ssh(QUANTAL, "dpkg", "-r", headers)
    _hold_dpkg_lock(fl)
    play = _apt_install_play(env, "apt-locked", [headers])
    # let go once apt-get runs (it cannot get the lock), after a moment to find it held
    p = _play_while_locked(env, play, lambda out: "Install with apt-get install" in out and _apt_get_waiting(fl)
                           and not time.sleep(2))
    assert p.returncode == 0, p.stdout[-4000:]
    assert f"Install with apt-get install {headers}" in p.stdout and _installed_after_release(fl, headers)
    deb = f"/var/cache/apt/archives/{env.lp.filename[:-len('.ddeb')]}.deb"
    dbgsym = f"linux-image-{R}-dbgsym"
    fl.ssh(QUANTAL, "dpkg", "-r", dbgsym)
    play = env.workdir / "deb-locked.yml"
    play.write_text(APT_DEB_PLAY.format(host=QUANTAL, tasks=PLAYBOOKS / "tasks/apt_install.yml", deb=deb))
    _hold_dpkg_lock(fl)
    p = _play_while_locked(env, play, lambda out: "FAILED - RETRYING" in out)
    assert p.returncode == 0, p.stdout[-4000:]
    assert "FAILED - RETRYING" in p.stdout, p.stdout[-4000:]  # dpkg found the lock held, and was retried
    assert _installed_after_release(fl, dbgsym)
    q = fl.ssh(QUANTAL, "dpkg-query", "-W", "-f", "${Status}\n", headers, dbgsym)
    assert q.stdout.count("install ok installed") == 2, q.stdout


# Stand-in for stap on the Python-2.7 host (POSIX sh: tests/unit/profiler_run/fake_stap.py needs Python 3,
# which this host has not). It logs its argv and the script it was given, waits out -G duration_ms like
# the script's timer, and writes to -o what profile-symbolised.stp prints: print_ustack frame lines
# (leaf first) with the real addresses of busy's functions (nm), then a TAB and the count.
SH_STAP = r"""#!/bin/sh
set -eu
log=/var/tmp/stand-in-stap
printf '%s\n' "$@" > "$log.argv"
out= ms= exe= pid=
while [ $# -gt 1 ]; do
    case $1 in
        -o) out=$2; shift 2 ;;
        -x) pid=$2; shift 2 ;;
        -d) exe=$2; shift 2 ;;
        -G) ms=${2#duration_ms=}; shift 2 ;;
        *) shift ;;
    esac
done
cp "$1" "$log.script"
[ -d "/proc/$pid" ] || { echo "ERROR: no process $pid" >&2; exit 1; }
sleep $((ms / 1000))
frame() { printf ' 0x%s : %s+0x0/0x10 [%s]\n' "$(nm "$exe" | awk -v f="$1" '$3 == f {print $1}')" "$1" "$exe"; }
{ frame func_c; frame func_b; frame func_a; frame main; printf '\t%d\n' 700
  frame func_c; frame func_a; frame main; printf '\t%d\n' 300; } > "$out"
"""


def test_profile_on_the_python27_host_with_stap_alone(distro_env, tmp_path):
    """profile.yml on a host without stapdoctor: stap runs the symbolising script there, the controller
    draws the flame graph from the fetched output with stapdoctor's parser."""
    env = distro_env
    fl = env.fleet
    busy = (Path(__file__).resolve().parents[1] / "data/profiler_run/busy.c").read_text()
    fl.ssh(QUANTAL, "mkdir", "-p", "/opt/profile-test")
    subprocess.run(fl.ssh_argv(QUANTAL) + ["--", "cat > /opt/profile-test/busy.c"], input=busy, text=True,
                   check=True, timeout=60)
    subprocess.run(fl.ssh_argv(QUANTAL) + ["--", "cat > /opt/profile-test/stap && chmod 755 /opt/profile-test/stap"],
                   input=SH_STAP, text=True, check=True, timeout=60)
    fl.ssh(QUANTAL, "gcc", "-O1", "-std=gnu99", "-o", "/opt/profile-test/busy", "/opt/profile-test/busy.c")
    pid = fl.ssh(QUANTAL, "sh", "-c", "setsid /opt/profile-test/busy </dev/null >/dev/null 2>&1 & echo $!"
                 ).stdout.strip()
    try:
        dest = tmp_path / "profiles"
        p = timed(env, "quantal_profile", "profile.yml", "-l", QUANTAL, "-e", f"pid={pid}", "-e", "duration=2",
                   "-e", f"profile_dest={dest}", "-e", "profile_stap_bin=/opt/profile-test/stap", timeout=600)
        assert p.returncode == 0, p.stdout[-5000:] + p.stderr[-2000:]
    finally:
        fl.ssh(QUANTAL, "kill", pid, check=False)
    argv = fl.ssh(QUANTAL, "cat", "/var/tmp/stand-in-stap.argv").stdout.splitlines()
    assert argv[:8] == ["-d", "/opt/profile-test/busy", "--ldd", "-x", pid, "-G", "duration_ms=2000", "-o"], argv
    assert argv[-1].endswith("/profile-symbolised.stp")
    script = fl.ssh(QUANTAL, "cat", "/var/tmp/stand-in-stap.script").stdout
    assert "usymdata(" in script and "probe end" in script  # the symbolising script, not profile.stp
    # the run's private directory is gone from the host
    assert fl.ssh(QUANTAL, "test", "-e", argv[-1].rsplit("/", 1)[0], check=False).returncode != 0
    out = dest / f"{QUANTAL}-{pid}"
    folded = (out / "stacks.folded").read_text().splitlines()
    assert sorted(folded) == ["main;func_a;func_b;func_c 700", "main;func_a;func_c 300"], folded
    svg = (out / "flamegraph.svg").read_text()
    assert svg.startswith("<?xml") and "func_b" in svg
    assert json.loads((out / "profile.speedscope.json").read_text())["shared"]["frames"]


def test_stapdoctor_fleet_shows_the_python27_host(distro_env):
    """`stapdoctor fleet` itself (check.yml + the checks here) on the Python-2.7 host, after site.yml
    converged it: the headers from old-releases and the Launchpad vmlinux pass devel and debuginfo."""
    env = distro_env
    t0 = time.monotonic()
    p = subprocess.run([str(VENV_BIN / "stapdoctor"), "fleet", "-i", str(env.inventory), "-l", QUANTAL, "--json"],
                       text=True, capture_output=True, timeout=600, env=env._env())
    env.timings["quantal_fleet"] = round(time.monotonic() - t0, 1)
    doc = json.loads(p.stdout)
    assert doc["schema"].startswith("stapdoctor.fleet/")
    text = json.dumps(doc)
    assert QUANTAL in text and env.archives.ubuntu_release in text
    hosts = doc.get("hosts", doc)
    rep = hosts[QUANTAL] if isinstance(hosts, dict) else next(h for h in hosts if QUANTAL in json.dumps(h))
    by = {f["id"]: f for f in rep["findings"]}
    for cid in ("devel.build", "debuginfo.vmlinux", "stap.installed", "access.user", "kernel.config"):
        assert by[cid]["status"] == "pass", (cid, by[cid])
    assert env.archives.build_id in by["debuginfo.vmlinux"]["evidence"], by["debuginfo.vmlinux"]
    # What still fails is this machine's kernel (shared by the stand-ins, e.g. no CONFIG_MODULES), and
    # the exit code says so.
    failing = {cid for cid, f in by.items() if f["status"] == "fail"}
    assert not {c for c in failing if not c.startswith(("kernel.", "policy."))}, failing
    assert p.returncode == (1 if failing else 0), (p.returncode, failing, p.stderr[-2000:])
