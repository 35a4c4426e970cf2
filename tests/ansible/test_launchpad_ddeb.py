"""The Launchpad .ddeb fallback (roles/debuginfo/tasks/launchpad.yml, Ubuntu EOL series such as 12.10)
verifies what it downloads: the URL and SHA-256 come from Launchpad's API, a mismatching file or an
http:// link is refused before anything reaches the host.

Launchpad is not reachable from CI: a local HTTPS server (its own CA, trusted through SSL_CERT_FILE)
answers the two API calls the role makes, shaped like api.launchpad.net/devel's answers, and serves a
real .deb built with dpkg-deb (stapdoctor.testing.launchpad, shared with test_distros.py's Ubuntu 12.10
host). The host is a real Debian 12 test host over SSH; its facts are Ubuntu 12.10's (the role decides
from facts), set by a test-only module.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
from pathlib import Path

import pytest

from stapdoctor.testing.ansiblerun import PLAYBOOKS, VENV_BIN
from stapdoctor.testing.launchpad import FakeLaunchpad
from stapdoctor.testing.testhosts import bring_up_hosts

pytestmark = pytest.mark.ansible

R, VERSION = "3.5.0-17-generic", "3.5.0-17.28"
PKG = f"linux-image-{R}-dbgsym"
DDEB = f"{PKG}_{VERSION}_amd64.ddeb"

FACTS_MODULE = '''#!/usr/bin/python3
from ansible.module_utils.basic import AnsibleModule
m = AnsibleModule(argument_spec={"facts": {"type": "dict", "required": True}})
m.exit_json(changed=False, ansible_facts=m.params["facts"])
'''
QUANTAL = {"distribution": "Ubuntu", "distribution_version": "12.10", "distribution_release": "quantal",
           "os_family": "Debian", "architecture": "x86_64", "kernel": R}

PLAY = """
- hosts: target
  gather_facts: false
  tasks:
    - name: Ubuntu 12.10's facts
      fake_facts:
        facts: {facts}
    - name: The Launchpad fallback
      ansible.builtin.include_role:
        name: debuginfo
        tasks_from: launchpad.yml
"""


def _ddeb(tmp: Path) -> bytes:
    root = tmp / "pkg"
    (root / "DEBIAN").mkdir(parents=True)
    (root / "DEBIAN/control").write_text(
        f"Package: {PKG}\nVersion: {VERSION}\nArchitecture: all\nMaintainer: stapdoctor tests <t@example.org>\n"
        "Description: test stand-in for a Launchpad .ddeb\n")
    (root / "usr/lib/debug/boot").mkdir(parents=True)
    (root / f"usr/lib/debug/boot/vmlinux-{R}").write_text("not really DWARF\n")
    subprocess.run(["dpkg-deb", "--root-owner-group", "-b", str(root), str(tmp / DDEB)], check=True,
                   capture_output=True)
    return (tmp / DDEB).read_bytes()


@pytest.fixture(scope="module")
def lp_env(tmp_path_factory):
    if os.geteuid() != 0:
        pytest.skip("the Ansible tier needs root (mounts, network namespaces); CI runs as root")
    work = tmp_path_factory.mktemp("launchpad")
    lp = FakeLaunchpad(work / "lp", PKG, VERSION, _ddeb(work))
    (work / "library").mkdir()
    (work / "library/fake_facts.py").write_text(FACTS_MODULE)
    (work / "play.yml").write_text(PLAY.format(facts=json.dumps(QUANTAL)))
    with bring_up_hosts(1, name_prefix="lp") as fl:
        h = fl.hosts[0]
        inv = {"all": {"hosts": {"target": dict(fl.ansible_host_vars()[h.name], kernel_release=R,
                                                debuginfo_kernel_package_version=VERSION,
                                                debuginfo_lock_timeout=120,
                                                debuginfo_launchpad_api=lp.api),
                                 "localhost": {"ansible_connection": "local",
                                               "ansible_python_interpreter": str(VENV_BIN / "python")}}}}
        (work / "inventory.yml").write_text(json.dumps(inv))
        yield fl, h, lp, work
    lp.close()


def play(work: Path, cache: Path, cert: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, ANSIBLE_CONFIG=str(PLAYBOOKS / "ansible.cfg"), ANSIBLE_LIBRARY=str(work / "library"),
               ANSIBLE_NOCOLOR="1", HOME=str(work), SSL_CERT_FILE=str(cert),
               PATH=f"{VENV_BIN}:{os.environ.get('PATH', '')}")
    return subprocess.run([str(VENV_BIN / "ansible-playbook"), "-i", str(work / "inventory.yml"), str(work / "play.yml"),
                           "-e", json.dumps({"debuginfo_controller_cache": str(cache)})],
                          capture_output=True, text=True, env=env, timeout=600)


def installed(fl, h) -> bool:
    q = fl.ssh(h, "dpkg-query", "-W", "-f", "${Status}", PKG, check=False)
    return q.stdout == "install ok installed"


def test_a_file_that_does_not_match_the_published_sha256_is_refused(lp_env):
    fl, h, lp, work = lp_env
    lp.published_sha256 = hashlib.sha256(b"another file").hexdigest()
    try:
        p = play(work, work / "cache-bad", lp.cert)
    finally:
        lp.published_sha256 = hashlib.sha256(lp.ddeb).hexdigest()
    assert p.returncode != 0, p.stdout[-3000:]
    assert "did not match" in p.stdout, p.stdout[-3000:]
    assert not installed(fl, h)
    assert not list((work / "cache-bad").glob("*.ddeb"))
    assert lp.file_path in lp.requests  # it did download, then refused


def test_an_http_link_is_refused_before_downloading(lp_env):
    fl, h, lp, work = lp_env
    lp.scheme, before = "http", len(lp.requests)
    try:
        p = play(work, work / "cache-http", lp.cert)
    finally:
        lp.scheme = "https"
    assert p.returncode != 0
    assert "must come over https with a published SHA-256" in p.stdout, p.stdout[-3000:]
    assert not any("/+files/" in r for r in lp.requests[before:])
    assert not installed(fl, h)


def test_a_verified_ddeb_is_installed(lp_env):
    fl, h, lp, work = lp_env
    p = play(work, work / "cache", lp.cert)
    assert p.returncode == 0, p.stdout[-4000:] + p.stderr[-2000:]
    assert installed(fl, h)
    assert fl.ssh(h, "test", "-s", f"/usr/lib/debug/boot/vmlinux-{R}").returncode == 0
    assert (work / "cache" / DDEB).read_bytes() == lp.ddeb
