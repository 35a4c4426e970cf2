"""One package-manager table for the doctor's remedies and the playbooks (issues 12 item 4, 14 item 3).

Fedora <= 21 and RHEL/CentOS <= 7 have yum (debuginfo-install from yum-utils), later ones dnf, Fedora
>= 41 dnf5; Ubuntu >= 20.04 has no `python` package; end-of-life Fedora is pointed at the archive; the
on-host remedy for Ubuntu debug symbols adds the ddebs source and keyring before the -dbgsym install.
"""
from __future__ import annotations

import re
import subprocess

import pytest

from stapdoctor.doctor import checks, knowledge as k, snapshot


@pytest.mark.parametrize("distro,version,manager", [
    ("fedora", "17", "yum"), ("fedora", "21", "yum"), ("fedora", "22", "dnf"), ("fedora", "40", "dnf"),
    ("fedora", "41", "dnf5"), ("fedora", "43", "dnf5"),
    ("rhel", "6.10", "yum"), ("centos", "7", "yum"), ("centos", "7.9.2009", "yum"), ("rhel", "8.10", "dnf"),
    ("rocky", "9.4", "dnf"), ("ubuntu", "12.10", "apt"), ("debian", "12", "apt"),
])
def test_package_manager_per_release(distro, version, manager):
    assert k.package_manager(distro, version)["name"] == manager


@pytest.mark.parametrize("distro,version,release,install,cmd", [
    ("fedora", "17", "3.3.4-5.fc17.x86_64", "yum install -y", "debuginfo-install -y kernel-3.3.4-5.fc17.x86_64"),
    ("centos", "7", "3.10.0-1160.el7.x86_64", "yum install -y", "debuginfo-install -y kernel-3.10.0-1160.el7.x86_64"),
    ("fedora", "40", "6.8.5-301.fc40.x86_64", "dnf install -y", "dnf debuginfo-install -y kernel-6.8.5-301.fc40.x86_64"),
    ("fedora", "41", "6.11.8-300.fc41.x86_64", "dnf install -y",
     "dnf debuginfo-install -y kernel-core-6.11.8-300.fc41.x86_64"),
])
def test_platform_uses_the_release_manager(distro, version, release, install, cmd):
    p = k.platform_packages(distro, version, release)
    assert p["install_command"] == install and p["debuginfo_command"] == cmd
    assert p["debuginfo_method"] == ("yum-debuginfo" if install.startswith("yum") else "dnf-debuginfo")
    assert p["debuginfo_tool"] == {"yum": "yum-utils", "dnf": "dnf-plugins-core", "dnf5": ""}[p["package_manager"]]
    # the headers hint names the same tool
    assert k.headers_hint(release, distro, version).startswith(f"install the kernel headers for {release}: "
                                                                f"{install.split()[0]} install kernel-devel-")


def test_the_table_has_no_per_release_manager_copies():
    """The manager is decided by [[package_manager]] alone, not by keys scattered over release rows."""
    for key, row in k._distros()["release"].items():
        assert "debuginfo_method" not in row and "dnf" not in row, key


@pytest.mark.parametrize("version,deps_have_python2", [("12.10", True), ("18.04", True), ("20.04", False),
                                                        ("24.04", False)])
def test_ubuntu_build_deps_python(version, deps_have_python2):
    deps = k.platform_packages("ubuntu", version, "5.4.0-42-generic")["build_deps"]
    assert ("python" in deps) is deps_have_python2
    assert ("python3" in deps) is not deps_have_python2


@pytest.mark.parametrize("version,eol", [("17", True), ("40", True), ("41", True), ("42", True), ("43", False),
                                         ("44", False)])
def test_fedora_archive_for_end_of_life_releases(version, eol):
    p = k.platform_packages("fedora", version, "6.8.5-301.fc40.x86_64")
    assert p["eol"] is eol
    assert ("archive_repos" in p) is eol
    if eol:
        assert p["archive_repos"]["url"] == "https://archives.fedoraproject.org/pub/archive/fedora/linux"


STOCK_FEDORA_40_REPO = """\
[fedora]
name=Fedora $releasever - $basearch
#baseurl=http://download.example/pub/fedora/linux/releases/$releasever/Everything/$basearch/os/
metalink=https://mirrors.fedoraproject.org/metalink?repo=fedora-$releasever&arch=$basearch
enabled=1

[fedora-debuginfo]
name=Fedora $releasever - $basearch - Debug
#baseurl=http://download.example/pub/fedora/linux/releases/$releasever/Everything/$basearch/debug/tree/
metalink=https://mirrors.fedoraproject.org/metalink?repo=fedora-debug-$releasever&arch=$basearch
enabled=0
"""
STOCK_FEDORA_17_REPO = """\
[fedora]
#baseurl=http://download.fedoraproject.org/pub/fedora/linux/releases/$releasever/Everything/$basearch/os/
mirrorlist=https://mirrors.fedoraproject.org/metalink?repo=fedora-$releasever&arch=$basearch
"""


@pytest.mark.parametrize("stock", [STOCK_FEDORA_40_REPO, STOCK_FEDORA_17_REPO])
def test_archive_rewrite_regexes_on_stock_repo_files(stock, tmp_path):
    """The same regexes drive the role's replace tasks (Python re) and the doctor's sed remedy (ERE)."""
    a = k.platform_packages("fedora", "17", "3.3.4-5.fc17.x86_64")["archive_repos"]
    py = re.sub(a["metalink_regex"], r"#\1=", stock, flags=re.M)
    py = re.sub(a["mirror_prefix_regex"], "baseurl=" + a["url"], py, flags=re.M)
    assert "\nmetalink=" not in py and "\nmirrorlist=" not in py
    assert "baseurl=https://archives.fedoraproject.org/pub/archive/fedora/linux/releases/$releasever/Everything/" in py
    # the remedy's sed does the same to a copy of the file
    repo = tmp_path / "fedora.repo"
    repo.write_text(stock)
    sed = k.debuginfo_commands(k.platform_packages("fedora", "17", "3.3.4-5.fc17.x86_64"))[0]
    assert sed.startswith("sed -i -E")
    cmd = sed.split(" /etc/yum.repos.d/")[0] + f" {repo}"
    subprocess.run(["sh", "-c", cmd], check=True)
    assert repo.read_text() == py


def test_ubuntu_remedy_adds_the_ddebs_source_and_keyring_first():
    cmds = k.debuginfo_commands(k.platform_packages("ubuntu", "24.04", "6.8.0-31-generic"))
    assert cmds[0] == "apt-get install -y ubuntu-dbgsym-keyring"
    assert "deb [signed-by=/usr/share/keyrings/ubuntu-dbgsym-keyring.gpg] http://ddebs.ubuntu.com noble main" in cmds[1]
    assert cmds[1].endswith("> /etc/apt/sources.list.d/ddebs.list") and cmds[2] == "apt-get update"
    assert cmds[3] == "apt-get install -y linux-image-unsigned-6.8.0-31-generic-dbgsym"
    # 16.04 has no keyring package: the key comes from the keyserver
    old = k.debuginfo_commands(k.platform_packages("ubuntu", "16.04", "4.4.0-21-generic"))
    assert old[0].startswith("apt-key adv --keyserver keyserver.ubuntu.com --recv-keys ")


def test_remedies_quote_what_the_host_reported():
    cmds = k.debuginfo_commands(k.platform_packages("debian", "12", "6.1.0-5-amd64;reboot"))
    assert cmds == ["apt-get install -y 'linux-image-6.1.0-5-amd64;reboot-dbg'"]


def test_doctor_remedy_on_ubuntu_22_04_names_the_ddebs_source(host_root):
    found = {f.id: f for f in checks.run_checks(snapshot.collect(str(host_root("ubuntu-22.04"))))}
    f = found["debuginfo.vmlinux"]
    assert f.status == "fail"
    on_host = f.remedy.split("or on the host: ", 1)[1]
    steps = on_host.split(" && ")
    assert steps[0] == "apt-get install -y ubuntu-dbgsym-keyring"
    assert "ddebs.ubuntu.com jammy main" in steps[1] and steps[-1].endswith("-dbgsym")


def test_doctor_remedy_on_centos_6_uses_yum(host_root):
    found = {f.id: f for f in checks.run_checks(snapshot.collect(str(host_root("rhel-6"))))}
    remedy = found["debuginfo.vmlinux"].remedy
    assert "yum install -y yum-utils && debuginfo-install -y kernel-2.6.32-220.el6.x86_64" in remedy
    assert "dnf" not in remedy
