"""The roles' per-host decisions for platforms whose mirrors these machines cannot reach.

Ubuntu 12.10 / 22.04 / 24.04, Fedora 41 and RHEL are decided from stapdoctor's knowledge tables through
the playbooks' filter plugin; here the roles' own default expressions are rendered by Ansible's
templating engine with each platform's facts, so the test covers the wiring as well as the tables.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from ansible.parsing.dataloader import DataLoader
from ansible.plugins.loader import add_all_plugin_dirs
from ansible.template import Templar

from stapdoctor.testing.ansiblerun import PLAYBOOKS

add_all_plugin_dirs(str(PLAYBOOKS))


def _facts(distribution: str, version: str, kernel: str, os_family: str, pkg_mgr: str = "apt") -> dict:
    return {"distribution": distribution, "distribution_version": version, "architecture": "x86_64",
            "kernel": kernel, "os_family": os_family, "pkg_mgr": pkg_mgr, "processor_vcpus": 4}


def render(facts: dict, expr: str, **extra):
    """Render a Jinja expression with every role's defaults, as Ansible would for a host with `facts`."""
    variables: dict = {}
    for role in ("kernel_devel", "debuginfo", "systemtap_build", "stap_access", "doctor_collect"):
        variables.update(yaml.safe_load((PLAYBOOKS / "roles" / role / "defaults/main.yml").read_text()) or {})
    variables.update(ansible_facts=facts, **extra)
    templar = Templar(loader=DataLoader(), variables=variables)
    return templar.template(expr)


QUANTAL = _facts("Ubuntu", "12.10", "3.5.0-17-generic", "Debian")
JAMMY = _facts("Ubuntu", "22.04", "5.15.0-91-generic", "Debian")
NOBLE = _facts("Ubuntu", "24.04", "6.8.0-31-generic", "Debian")
FEDORA41 = _facts("Fedora", "41", "6.11.8-300.fc41.x86_64", "RedHat", "dnf5")
RHEL9 = _facts("RedHat", "9.4", "5.14.0-427.13.1.el9_4.x86_64", "RedHat", "dnf")
RHEL6 = _facts("RedHat", "6.10", "2.6.32-754.el6.x86_64", "RedHat", "yum")
BOOKWORM = _facts("Debian", "12.8", "6.1.0-56-amd64", "Debian")


def test_kernel_release_defaults_to_the_running_kernel():
    assert render(JAMMY, "{{ kernel_release }}") == "5.15.0-91-generic"
    assert render(JAMMY, "{{ kernel_devel_packages }}", kernel_release="5.15.0-94-generic") == \
        ["linux-headers-5.15.0-94-generic"]


@pytest.mark.parametrize("facts, headers", [
    (QUANTAL, ["linux-headers-3.5.0-17-generic"]),
    (NOBLE, ["linux-headers-6.8.0-31-generic"]),
    (BOOKWORM, ["linux-headers-6.1.0-56-amd64"]),
    (FEDORA41, ["kernel-devel-6.11.8-300.fc41.x86_64"]),
    (RHEL9, ["kernel-devel-5.14.0-427.13.1.el9_4.x86_64"]),
])
def test_header_packages(facts, headers):
    assert render(facts, "{{ kernel_devel_packages }}") == headers


def test_ubuntu_quantal_uses_launchpad_and_old_releases():
    p = render(QUANTAL, "{{ debuginfo_platform }}", debuginfo_kernel_package_version="3.5.0-17.28")
    assert render(QUANTAL, "{{ debuginfo_method }}", debuginfo_kernel_package_version="3.5.0-17.28") == "launchpad"
    assert p["debuginfo"] == ["linux-image-3.5.0-17-generic-dbgsym"]  # before 18.04: not -unsigned-
    assert p["eol"] is True
    assert p["old_releases_url"] == "http://old-releases.ubuntu.com/ubuntu"
    assert p["launchpad_url"] == \
        "https://launchpad.net/ubuntu/quantal/amd64/linux-image-3.5.0-17-generic-dbgsym/3.5.0-17.28"


def test_quantal_builds_release_4_9_for_kernel_3_5_and_gcc_4_7():
    assert render(QUANTAL, "{{ '3.5.0' | stapdoctor_systemtap_ref('4.7') }}") == "release-4.9"
    # and the inventory example runs Ansible's modules there with Python 2.7
    inv = yaml.safe_load((PLAYBOOKS / "inventories/examples/hosts.yml").read_text())
    quantal = inv["all"]["children"]["stap_hosts"]["children"]["ubuntu_quantal"]
    assert quantal["vars"]["ansible_python_interpreter"] == "/usr/bin/python2.7"


@pytest.mark.parametrize("facts, codename, pkg", [
    (JAMMY, "jammy", "linux-image-unsigned-5.15.0-91-generic-dbgsym"),
    (NOBLE, "noble", "linux-image-unsigned-6.8.0-31-generic-dbgsym"),
])
def test_current_ubuntu_uses_the_ddebs_archive(facts, codename, pkg):
    p = render(facts, "{{ debuginfo_platform }}")
    assert render(facts, "{{ debuginfo_method }}") == "apt-ddebs"
    assert render(facts, "{{ debuginfo_packages }}") == [pkg]
    repo = p["ddebs_repo"]
    assert repo["url"] == "http://ddebs.ubuntu.com"
    assert repo["suites"][:2] == [codename, f"{codename}-updates"]
    assert repo["keyring_package"] == "ubuntu-dbgsym-keyring"
    assert repo["key_fingerprint"] == "F2EDC64DC5AEE1F6B9C621F0C8CAB6595FDFF622"
    assert p["eol"] is False


def test_debian_uses_the_dbg_package():
    assert render(BOOKWORM, "{{ debuginfo_packages }}") == ["linux-image-6.1.0-56-amd64-dbg"]
    assert render(BOOKWORM, "{{ debuginfo_method }}") == "apt"


def test_fedora_41_uses_dnf5_debuginfo_install():
    p = render(FEDORA41, "{{ debuginfo_platform }}")
    assert p["debuginfo_method"] == "dnf-debuginfo"
    assert p["debuginfo_command"] == "dnf debuginfo-install -y kernel-core-6.11.8-300.fc41.x86_64"
    assert render(FEDORA41, "{{ debuginfo_platform['debuginfo_command'] | split }}")[:2] == ["dnf", "debuginfo-install"]


def test_rhel_debuginfo_and_variants():
    p = render(RHEL9, "{{ debuginfo_platform }}")
    assert p["debuginfo_command"] == "dnf debuginfo-install -y kernel-5.14.0-427.13.1.el9_4.x86_64"
    rt = render(RHEL9, "{{ debuginfo_platform }}", kernel_release="5.14.0-427.13.1.el9_4.x86_64+rt")
    assert rt["kernel_variant"] == "rt"
    assert rt["headers"] == ["kernel-rt-devel-5.14.0-427.13.1.el9_4.x86_64"]
    assert rt["debuginfo"] == ["kernel-rt-debuginfo-5.14.0-427.13.1.el9_4.x86_64"]
    dbg = render(RHEL9, "{{ debuginfo_platform }}", kernel_release="5.14.0-427.13.1.el9_4.x86_64+debug")
    assert dbg["headers"] == ["kernel-debug-devel-5.14.0-427.13.1.el9_4.x86_64"]
    old = render(RHEL6, "{{ debuginfo_platform }}")
    assert old["debuginfo_method"] == "yum-debuginfo"
    assert old["debuginfo_command"] == "debuginfo-install -y kernel-2.6.32-754.el6.x86_64"


def test_systemtap_ref_and_package_range():
    # Debian 12's systemtap 4.8 does not cover its own 6.1.192 kernel (pass 4 fails there): build.
    assert render(BOOKWORM, "{{ '4.8' | stapdoctor_stap_covers('6.1.192') }}") is False
    assert render(BOOKWORM, "{{ '6.1.192' | stapdoctor_systemtap_ref('12.2') }}").startswith("release-5.")
    assert render(BOOKWORM, "{{ ('' | stapdoctor_stap_covers('6.1.192')) is none }}") is True  # unknown: build


def test_upstream_kernel_version_from_proc_version():
    debian = ("Linux version 6.1.0-56-amd64 (debian-kernel@lists.debian.org) (gcc-12 (Debian 12.2.0-14) "
              "12.2.0, GNU ld (GNU Binutils for Debian) 2.40) #1 SMP PREEMPT_DYNAMIC Debian 6.1.192-2 (2025-10-01)")
    assert render(BOOKWORM, "{{ v | stapdoctor_upstream_version('6.1.0-56-amd64') }}", v=debian) == "6.1.192"
    assert render(FEDORA41, "{{ '' | stapdoctor_upstream_version('6.11.8-300.fc41.x86_64') }}") == "6.11.8"
    sig = "Ubuntu 3.5.0-17.28-generic 3.5.5"
    assert render(QUANTAL, "{{ '' | stapdoctor_upstream_version('3.5.0-17-generic', s) }}", s=sig) == "3.5.5"


def test_build_id_from_kernel_notes_matches_the_doctor():
    import base64

    from stapdoctor.doctor import elfinfo

    notes = Path("/sys/kernel/notes").read_bytes()
    want = elfinfo.build_id_from_notes(notes)
    got = render(BOOKWORM, "{{ n | stapdoctor_build_id_from_notes }}", n=base64.b64encode(notes).decode())
    assert got == want and got


def test_default_stap_user_for_the_collector():
    assert render(BOOKWORM, "{{ doctor_collect_user }}", stap_users=["alice", "bob"]) == "alice"
    assert render(BOOKWORM, "{{ doctor_collect_user }}", stap_users=[{"name": "carol"}]) == "carol"
    assert render(BOOKWORM, "{{ doctor_collect_user }}") == ""
