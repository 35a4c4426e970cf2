"""The roles' package-manager and archive decisions for releases no test host here can be (no yum).

Rendered with Ansible's templating engine from the roles' own defaults and vars, as in
test_decisions.py: Fedora <= 21 and RHEL/CentOS <= 7 get yum and yum-utils' debuginfo-install, Fedora
22-40 dnf with dnf-plugins-core, Fedora >= 41 dnf5 (debuginfo-install built in); end-of-life Fedora
gets the archive URL; the ddebs source is signed-by the keyring from 18.04 on.
"""
from __future__ import annotations

import pytest
import yaml

from stapdoctor.testing.ansiblerun import PLAYBOOKS

from test_decisions import _facts, render  # noqa: E402 - the shared renderer of the roles' defaults

FEDORA17 = _facts("Fedora", "17", "3.3.4-5.fc17.x86_64", "RedHat", "yum")
FEDORA40 = _facts("Fedora", "40", "6.8.5-301.fc40.x86_64", "RedHat", "dnf")
FEDORA43 = _facts("Fedora", "43", "6.17.1-300.fc43.x86_64", "RedHat", "dnf5")
CENTOS7 = _facts("CentOS", "7.9", "3.10.0-1160.el7.x86_64", "RedHat", "yum")
RHEL8 = _facts("RedHat", "8.10", "4.18.0-553.el8_10.x86_64", "RedHat", "dnf")
XENIAL = _facts("Ubuntu", "16.04", "4.4.0-210-generic", "Debian")
NOBLE = _facts("Ubuntu", "24.04", "6.8.0-31-generic", "Debian")


@pytest.mark.parametrize("facts,tool,cmd", [
    (FEDORA17, "yum-utils", "debuginfo-install -y kernel-3.3.4-5.fc17.x86_64"),
    (CENTOS7, "yum-utils", "debuginfo-install -y kernel-3.10.0-1160.el7.x86_64"),
    (FEDORA40, "dnf-plugins-core", "dnf debuginfo-install -y kernel-6.8.5-301.fc40.x86_64"),
    (RHEL8, "dnf-plugins-core", "dnf debuginfo-install -y kernel-4.18.0-553.el8_10.x86_64"),
    (FEDORA43, "", "dnf debuginfo-install -y kernel-core-6.17.1-300.fc43.x86_64"),
])
def test_debuginfo_tool_and_command(facts, tool, cmd):
    p = render(facts, "{{ debuginfo_platform }}")
    assert p["debuginfo_tool"] == tool and p["debuginfo_command"] == cmd


@pytest.mark.parametrize("facts,argv", [
    (FEDORA17, ["yum", "info", "-q"]), (CENTOS7, ["yum", "info", "-q"]),
    (FEDORA40, ["dnf", "info", "-q"]), (FEDORA43, ["dnf", "info", "-q"]),
])
def test_systemtap_candidate_query_uses_the_release_manager(facts, argv):
    rh = yaml.safe_load((PLAYBOOKS / "roles/systemtap_build/vars/RedHat.yml").read_text())
    assert render(facts, rh["_systemtap_candidate_cmd"], **{}) == argv


@pytest.mark.parametrize("facts,url", [
    (FEDORA17, "https://archives.fedoraproject.org/pub/archive/fedora/linux"),
    (FEDORA40, "https://archives.fedoraproject.org/pub/archive/fedora/linux"),
    (FEDORA43, ""), (CENTOS7, ""), (NOBLE, ""),
])
def test_fedora_archive_url_only_for_end_of_life_fedora(facts, url):
    assert render(facts, "{{ kernel_devel_fedora_archive_url }}") == url


def test_ddebs_source_is_signed_by_the_keyring_from_18_04():
    assert render(NOBLE, "{{ debuginfo_ddebs_options }}") == \
        "[signed-by=/usr/share/keyrings/ubuntu-dbgsym-keyring.gpg]"
    assert render(NOBLE, "{{ debuginfo_ddebs_url }}") == "http://ddebs.ubuntu.com"
    assert render(XENIAL, "{{ debuginfo_ddebs_options }}") == ""  # key imported with apt-key there
