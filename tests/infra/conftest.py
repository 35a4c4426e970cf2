"""testinfra suite for hosts converged by playbooks/site.yml.

Run it against your own fleet with your Ansible inventory:
    pytest tests/infra --hosts='ansible://stap_hosts' --ansible-inventory=hosts [--force-ansible]
Expectations come from the same inventory variables the playbooks read (kernel_release,
systemtap_install, systemtap_ref, stap_users, systemtap_prefix_root), so a host is checked against
what site.yml was asked to do. Without --hosts this directory collects nothing (it would otherwise test
the machine running pytest); tests/ansible runs it against the test hosts.
"""

from __future__ import annotations

import pytest


def pytest_ignore_collect(collection_path, config):
    if collection_path.name.startswith("test_") and not config.getoption("hosts", None):
        return True
    return None


@pytest.fixture
def hostvars(host) -> dict:
    """Inventory variables for the host (empty when not using the ansible backend)."""
    try:
        return host.ansible.get_variables()
    except (AttributeError, RuntimeError, TypeError):
        return {}


@pytest.fixture
def kernel_release(host, hostvars) -> str:
    return hostvars.get("kernel_release") or host.check_output("uname -r")
