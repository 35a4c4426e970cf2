"""Fixtures for the real-host Ansible tier: three Debian 12 test hosts reached over SSH."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from stapdoctor.testing import gitserve
from stapdoctor.testing.testhosts import Fleet, bring_up_hosts

from stapdoctor.testing.ansiblerun import PLAYBOOKS, VENV_BIN


@dataclass
class AnsibleEnv:
    fleet: Fleet
    inventory: Path
    workdir: Path
    kernel_release: str
    #: {tag: commit} of the served systemtap repository (upstream's release trees)
    systemtap_tags: dict[str, str] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)

    def playbook(self, name: str, *args: str, timeout: float = 1500) -> subprocess.CompletedProcess:
        """Run a playbook against the test hosts; the output goes to the test log too."""
        env = dict(os.environ, ANSIBLE_CONFIG=str(PLAYBOOKS / "ansible.cfg"), ANSIBLE_NOCOLOR="1",
                   ANSIBLE_FORCE_COLOR="0", HOME=str(self.workdir / "home"),
                   PATH=f"{VENV_BIN}:{os.environ.get('PATH', '')}")
        argv = [str(VENV_BIN / "ansible-playbook"), "-i", str(self.inventory), str(PLAYBOOKS / name), *args]
        p = subprocess.run(argv, text=True, capture_output=True, env=env, timeout=timeout, cwd=PLAYBOOKS)
        (self.workdir / "logs").mkdir(exist_ok=True)
        log = self.workdir / "logs" / f"{name}-{time.time():.0f}.log"
        log.write_text(p.stdout + p.stderr)
        return p


def _debian_kernel_release(fleet: Fleet) -> str:
    """The ABI of the current linux-image-amd64 (e.g. 6.1.0-56-amd64), as the hosts' apt sees it."""
    host = fleet.hosts[0]
    fleet.ssh(host, "apt-get", "update", "-q")
    deps = fleet.ssh(host, "apt-cache", "depends", "linux-image-amd64").stdout
    m = re.search(r"Depends: linux-image-(\S+-amd64)\b", deps)
    assert m, deps
    return m.group(1)


def _seed_e2e_cache(cache: Path) -> None:
    """Build once, reuse across tiers too: the verified Debian 12 builds this tier compiled go into the e2e
    tier's controller cache (when it lacks them), as an operator's later run would find them."""
    dest = Path(os.environ.get("STAPDOCTOR_SYSTEMTAP_BUILDS", "/var/cache/stapdoctor/systemtap-builds"))
    if not cache.is_dir():
        return
    for archive in cache.glob("debian-12-*.tar.gz"):
        if not (dest / archive.name).exists():
            dest.mkdir(parents=True, exist_ok=True)
            shutil.copy2(archive, dest / (archive.name + ".part"))
            os.replace(dest / (archive.name + ".part"), dest / archive.name)


@pytest.fixture(scope="session")
def ansible_env(tmp_path_factory):
    if os.geteuid() != 0:
        pytest.skip("the Ansible tier needs root (mounts, network namespaces); CI runs as root")
    workdir = tmp_path_factory.mktemp("ansible")
    (workdir / "home").mkdir()
    t0 = time.monotonic()
    with bring_up_hosts(3) as fleet:
        timings = dict(fleet.timings)
        repos = workdir / "git"
        gitserve.mirror_bundle(repos / "systemtap.git")
        with gitserve.git_daemon(repos, fleet.gateway) as git_url:
            kernel_release = _debian_kernel_release(fleet)
            for h in fleet.hosts:
                fleet.ssh(h, "useradd", "--create-home", "alice")
            hosts = [h.name for h in fleet.hosts]
            inventory = fleet.write_inventory(
                workdir / "inventory.yml",
                group_vars={
                    # The hosts run the build machine's kernel; target the Debian kernel instead
                    # (this is how a kernel that is installed but not running is prepared).
                    "kernel_release": kernel_release,
                    # Real upstream source, built for real (systemtap_ref left to the role's choice).
                    "systemtap_install": "build",
                    "systemtap_git_url": f"{git_url}/systemtap.git",
                    "systemtap_controller_cache": str(workdir / "controller-cache"),
                    "systemtap_build_poll": 5,
                    "stap_users": ["alice"],
                },
                host_vars={hosts[2]: {"systemtap_install": "package"}},
            )
            timings["hosts_up_total"] = round(time.monotonic() - t0, 1)
            env = AnsibleEnv(fleet=fleet, inventory=inventory, workdir=workdir, kernel_release=kernel_release,
                             systemtap_tags=gitserve.tag_commits(repos / "systemtap.git"), timings=timings)
            yield env
            _seed_e2e_cache(workdir / "controller-cache")
            report = workdir / "timings.json"
            report.write_text(json.dumps(env.timings, indent=2))
            print(f"\nansible tier timings: {json.dumps(env.timings)}")
