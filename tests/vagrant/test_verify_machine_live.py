"""The after-up checks over real SSH, with a Debian test host standing in for a VM.

No VM provider runs on the CI machines, so the Vagrantfile's trigger can never fire here. What it
runs can: tests/vagrant/verify_machine.py gets the Vagrantfile's inventory tables (as Vagrant
evaluates them) and a live SSH endpoint, writes its one-host inventory, and runs testinfra (ansible
backend) and the real `stapdoctor fleet` with the real playbooks/check.yml, exactly as after
`vagrant up`. Only tests/infra is replaced, by one test that proves testinfra reached the host with
the Vagrant groups and variables: the real suite expects a host that site.yml has prepared.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from stapdoctor.testing.testhosts import bring_up_hosts
from vagrantcheck import HERE, ROOT, VENV_BIN

pytestmark = pytest.mark.ansible

INFRA_TEST = '''
def test_reached_with_the_vagrant_inventory(host):
    assert host.file("/etc/debian_version").exists
    hostvars = host.ansible.get_variables()
    assert hostvars["stap_users"] == ["vagrant"]
    assert "stap_hosts" in hostvars["group_names"] and "debian" in hostvars["group_names"]
    assert hostvars["ansible_python_interpreter"] == "/usr/bin/python3"
'''


@pytest.fixture(scope="module")
def vagrant_tables(described) -> str:
    """The inventory tables the Vagrantfile's trigger passes, as Vagrant evaluates them."""
    argv = described["details"]["bookworm"]["verify_argv"]
    return argv[argv.index("--inventory-json") + 1]


def test_checks_reach_a_host_with_the_vagrant_inventory(vagrant_tables, tmp_path):
    if os.geteuid() != 0:
        pytest.skip("test hosts need root (mounts, network namespaces); CI runs as root")
    project = tmp_path / "project"
    (project / "tests" / "infra").mkdir(parents=True)
    (project / "tests" / "infra" / "test_reach.py").write_text(INFRA_TEST)
    (project / "playbooks").symlink_to(ROOT / "playbooks")  # the real check.yml and collector
    with bring_up_hosts(1, name_prefix="vagrantcheck") as fleet:
        h = fleet.hosts[0]
        argv = [sys.executable, str(HERE / "verify_machine.py"), "--root", str(project),
                "--name", "bookworm", "--host", h.address, "--port", "22", "--user", "root",
                "--identity-file", str(fleet.key_file), "--inventory-json", vagrant_tables]
        env = dict(os.environ, PATH=f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}",
                   HOME=str(tmp_path / "home"), COLUMNS="200")
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=900, env=env, check=False)
    out = proc.stdout + proc.stderr
    assert "testinfra suite" in out and "stapdoctor fleet" in out
    assert "1 passed" in out, out  # the tests/infra test ran against the host
    # A bare Debian host is not ready (no stap): fleet says so for this host, it did not fail to
    # reach or collect it; hence the overall exit status 1.
    workdir = project / ".vagrant" / "stapdoctor" / "bookworm"
    assert list((workdir / "snapshots").glob("*.tar.gz")), out
    assert "bookworm" in proc.stdout and "unreachable" not in out.lower(), out
    assert proc.returncode == 1, out
    inventory = json.loads((workdir / "inventory.yml").read_text())
    assert inventory["all"]["children"]["stap_hosts"]["hosts"]["bookworm"]["ansible_host"] == h.address
