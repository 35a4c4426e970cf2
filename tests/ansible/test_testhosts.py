"""The test-host harness itself: distinct hosts, no route out, and a complete teardown."""

from __future__ import annotations

import os
import subprocess
import urllib.error
import urllib.request

import pytest

from stapdoctor.testing.testhosts import bring_up_hosts

pytestmark = pytest.mark.ansible


def test_hosts_are_isolated_and_torn_down():
    if os.geteuid() != 0:
        pytest.skip("needs root; CI runs as root")
    with bring_up_hosts(2, name_prefix="harness-check") as fleet:
        names = [fleet.ssh(h, "hostname").stdout.strip() for h in fleet.hosts]
        assert names == ["harness-check1", "harness-check2"]
        routes = fleet.ssh(fleet.hosts[0], "cat", "/proc/net/route").stdout.splitlines()[1:]
        assert routes and all(line.split()[1] != "00000000" for line in routes), "a default route exists"
        # the host reaches the other host over the bridge, with sshd's host key pinned
        assert fleet.ssh(fleet.hosts[0], "python3", "-c",
                         f"import socket; socket.create_connection(('{fleet.hosts[1].address}', 22), 3)").returncode == 0
        # the apt proxy only forwards to the Debian mirror
        proxy = urllib.request.build_opener(urllib.request.ProxyHandler({"http": fleet.proxy.url}))
        with pytest.raises(urllib.error.HTTPError) as err:
            proxy.open("http://example.com/", timeout=10)
        assert err.value.code == 403
        netns = [h.netns for h in fleet.hosts]
        merged = [str(h.merged) for h in fleet.hosts]
        workdir = fleet.workdir
    assert not set(netns) & set(subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout.split())
    mounts = open("/proc/mounts").read()
    assert not any(m in mounts for m in merged)
    assert not workdir.exists()
