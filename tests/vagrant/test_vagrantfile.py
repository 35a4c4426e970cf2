"""The Vagrantfile, as Vagrant itself loads it (Debian's `vagrant` + `vagrant-libvirt`).

No VM provider runs on the CI machines, so nothing here boots a VM: the tests run `vagrant
validate`/`vagrant status`, ask Vagrant's own objects (tests/vagrant/describe_vagrantfile.rb) what
each machine would get, feed the inventory Vagrant's ansible provisioner would write to Ansible's
own parser, and check the after-up trigger's command line with the script in dry-run mode.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from vagrantcheck import HERE, ROOT, VENV_BIN, describe, require, vagrant

MACHINES = ["quantal", "fedora", "bookworm"]
BOXES = {"quantal": "quantal64", "fedora": "fedora/43-cloud-base", "bookworm": "debian/bookworm64"}
PLATFORM_GROUPS = {"quantal": "ubuntu", "fedora": "redhat", "bookworm": "debian"}  # knowledge families
LEGACY_SSH = ["-o HostKeyAlgorithms=+ssh-rsa", "-o PubkeyAcceptedAlgorithms=+ssh-rsa"]
CONNECTION_VARS = {"ansible_host", "ansible_port", "ansible_user", "ansible_ssh_private_key_file"}


def ansible_inventory(path: Path) -> dict:
    proc = subprocess.run([str(VENV_BIN / "ansible-inventory"), "-i", str(path), "--list"],
                          capture_output=True, text=True, timeout=120, check=False,
                          env={**os.environ, "ANSIBLE_INVENTORY_UNPARSED_FAILED": "True"})
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def group_hosts(inv: dict, group: str) -> set[str]:
    return set(inv.get(group, {}).get("hosts", []))


# --- Vagrant's own commands ---------------------------------------------------------------------

def test_vagrant_validate_passes(vagrant_env):
    # Default provider here is libvirt (VirtualBox is not installed), so its blocks are validated.
    proc = vagrant(vagrant_env, "validate")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "validated successfully" in proc.stdout
    # Everything but provider blocks, as a VirtualBox user's Vagrant would see it.
    proc = vagrant(vagrant_env, "validate", "--ignore-provider")
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_vagrant_status_lists_the_three_machines(vagrant_env):
    proc = vagrant(vagrant_env, "status", "--machine-readable")
    assert proc.returncode == 0, proc.stderr
    rows = [line.split(",") for line in proc.stdout.splitlines()]
    states = {r[1]: r[3] for r in rows if len(r) > 3 and r[2] == "state"}
    assert states == {name: "not_created" for name in MACHINES}


def test_bad_resource_override_is_a_one_line_error(vagrant_env):
    proc = vagrant(vagrant_env, "validate", extra_env={"STAPDOCTOR_VM_MEMORY": "lots"})
    assert proc.returncode != 0
    out = (proc.stdout + proc.stderr).strip()
    assert "STAPDOCTOR_VM_MEMORY must be a whole number >= 4096" in out
    assert "Traceback" not in out and ".rb:" not in out
    # Too small to build systemtap is refused too.
    proc = vagrant(vagrant_env, "validate", extra_env={"STAPDOCTOR_VM_CPUS": "1"})
    assert proc.returncode != 0 and "STAPDOCTOR_VM_CPUS" in proc.stdout + proc.stderr


# --- machine definitions, from Vagrant's loaded configuration -----------------------------------

def test_machine_names_and_boxes(described):
    assert described["machines"] == MACHINES
    for name in MACHINES:
        assert described["details"][name]["box"] == BOXES[name]
        assert described["details"][name]["box_check_update"] is False


def test_quantal_box_comes_by_url_without_an_invented_checksum(described):
    q = described["details"]["quantal"]
    assert q["box_url"] == [
        "https://cloud-images.ubuntu.com/vagrant/quantal/current/"
        "quantal-server-cloudimg-amd64-vagrant-disk1.box",
        "http://opscode-vm-bento.s3.amazonaws.com/vagrant/virtualbox/"
        "opscode_ubuntu-12.10_chef-provisionerless.box",
    ]
    # No published checksum was found for these boxes (docs/vagrant.md): none may be made up.
    assert q["box_download_checksum"] in ("", None)
    for name in ("fedora", "bookworm"):  # catalog names that resolve by themselves
        assert described["details"][name]["box_url"] is None


def test_memory_and_cpus_enough_to_build_systemtap(described):
    for name in MACHINES:
        providers = described["details"][name]["providers"]
        assert providers["libvirt"]["memory"] >= 4096
        assert providers["libvirt"]["cpus"] >= 2
        vb = providers["virtualbox"]
        assert vb["name"] == f"stapdoctor-{name}"
        modifyvm = {c[1][2]: int(c[1][3]) for c in vb["customizations"] if c[1][0] == "modifyvm"}
        assert modifyvm["--memory"] >= 4096 and modifyvm["--cpus"] >= 2


def test_resource_overrides_reach_both_providers(vagrant_env):
    d = describe(vagrant_env, extra_env={"STAPDOCTOR_VM_MEMORY": "8192", "STAPDOCTOR_VM_CPUS": "4"})
    providers = d["details"]["bookworm"]["providers"]
    assert providers["libvirt"] == {"memory": 8192, "cpus": 4}
    assert ["pre-boot", ["modifyvm", "id", "--memory", "8192"]] in providers["virtualbox"]["customizations"]


def test_no_synced_folder(described):
    # Ansible works over SSH; 12.10's old guest additions and libvirt's NFS default stay out.
    for name in MACHINES:
        assert described["details"][name]["synced_folders"]["/vagrant"]["disabled"] is True


def test_provisioner_order_and_bootstraps(described, tmp_path):
    kinds = {n: [(p["name"], p["type"]) for p in described["details"][n]["provisioners"]]
             for n in MACHINES}
    assert kinds == {
        "quantal": [("bootstrap", "shell"), ("site", "ansible")],
        "fedora": [("bootstrap", "shell"), ("site", "ansible")],
        "bookworm": [("site", "ansible")],
    }
    quantal = described["details"]["quantal"]["provisioners"][0]["inline"]
    fedora = described["details"]["fedora"]["provisioners"][0]["inline"]
    assert "/usr/bin/python2.7" in quantal and "old-releases.ubuntu.com" in quantal
    assert "python3-libdnf5" in fedora
    for name, script in (("quantal", quantal), ("fedora", fedora)):
        path = tmp_path / f"{name}.sh"
        path.write_text(script)
        proc = subprocess.run(["sh", "-n", str(path)], capture_output=True, text=True, check=False)
        assert proc.returncode == 0, proc.stderr


def test_ansible_provisioner_runs_site_yml_from_the_host(described):
    for name in MACHINES:
        detail = described["details"][name]
        site = [p for p in detail["provisioners"] if p["type"] == "ansible"]
        assert len(site) == 1  # remote ansible: 12.10 cannot run Ansible itself
        site = site[0]
        assert site["playbook"] == "playbooks/site.yml"
        assert site["compatibility_mode"] == "2.0"
        assert site["config_file"] == "playbooks/ansible.cfg"
        assert site["inventory_path"] is None  # Vagrant generates it from groups/host_vars
        # Inventory only: a Vagrant run must configure a host the way a fleet run does.
        assert site["extra_vars"] in (None, {})
        assert site["raw_ssh_args"] == (LEGACY_SSH if name == "quantal" else None)
        # Vagrant's own pre-run check that the playbook exists on the host.
        assert detail["playbook_check"] == "ok"


def test_playbook_check_catches_a_wrong_playbook_path(vagrant_env, tmp_path):
    # The same Vagrantfile in a tree without playbooks/site.yml: Vagrant's check must refuse it.
    (tmp_path / "Vagrantfile").write_text((ROOT / "Vagrantfile").read_text())
    d = describe(vagrant_env, project=tmp_path)
    assert "does not exist on the host" in d["details"]["bookworm"]["playbook_check"]


def test_quantal_ssh_accepts_openssh_6_0(described):
    q = described["details"]["quantal"]["ssh"]
    assert q["extra_args"] == [a for opt in LEGACY_SSH for a in opt.split()]
    assert q["insert_key"] is False
    for name in ("fedora", "bookworm"):
        assert described["details"][name]["ssh"]["extra_args"] is None
    # The installed OpenSSH client understands the options and re-enables ssh-rsa with them.
    proc = subprocess.run([require("ssh"), "-G", *q["extra_args"], "quantal"],
                          capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr
    conf = dict(line.split(" ", 1) for line in proc.stdout.splitlines() if " " in line)
    assert "ssh-rsa" in conf["hostkeyalgorithms"].split(",")
    assert "ssh-rsa" in conf["pubkeyacceptedalgorithms"].split(",")


def test_after_up_triggers_run_the_checks(described):
    for name in MACHINES:
        triggers = described["details"][name]["triggers"]
        assert sorted(t["command"] for t in triggers) == ["provision", "up"]
        assert all(t["ruby"] for t in triggers)


# --- the inventory: what Vagrant writes, as Ansible reads it ------------------------------------

@pytest.fixture(scope="module")
def vagrant_inventory(described, tmp_path_factory) -> dict:
    """Vagrant's generated inventory (same for every machine), parsed by ansible-inventory."""
    texts = {described["details"][n]["inventory"] for n in MACHINES}
    assert len(texts) == 1, "every machine's provisioner must describe the whole fleet"
    path = tmp_path_factory.mktemp("inventory") / "vagrant_ansible_inventory"
    path.write_text(texts.pop())
    return ansible_inventory(path)


def test_inventory_groups(vagrant_inventory):
    assert group_hosts(vagrant_inventory, "stap_hosts") == set(MACHINES)
    for name, group in PLATFORM_GROUPS.items():
        assert group_hosts(vagrant_inventory, group) == {name}


def test_inventory_variables(vagrant_inventory):
    hostvars = vagrant_inventory["_meta"]["hostvars"]
    quantal = hostvars["quantal"]
    assert quantal["ansible_python_interpreter"] == "/usr/bin/python2.7"
    assert quantal["systemtap_install"] == "build"
    # the apt-get / dpkg path tests/ansible/test_distros.py proves on its 12.10 stand-in
    assert quantal["apt_install_method"] == "apt-get"
    assert quantal["ansible_ssh_common_args"] == " ".join(LEGACY_SSH)
    # The role picks the systemtap ref from the knowledge table (release-4.9 for 3.5 + gcc 4.7).
    assert "systemtap_ref" not in quantal
    for name in MACHINES:
        assert hostvars[name]["stap_users"] == ["vagrant"]  # a list, as the roles expect
        assert hostvars[name]["ansible_user"] == "vagrant"
    for name in ("fedora", "bookworm"):
        assert hostvars[name]["ansible_python_interpreter"] == "/usr/bin/python3"
        assert "systemtap_install" not in hostvars[name]  # the role decides from the knowledge
        assert "apt_install_method" not in hostvars[name]  # detected (the apt module there)


# --- the after-up checks: same inventory, same commands an operator would run -------------------

@pytest.mark.parametrize("name", MACHINES)
def test_checks_use_the_same_groups_and_variables(name, described, vagrant_inventory, tmp_path):
    argv = described["details"][name]["verify_argv"]
    assert Path(argv[1]) == HERE / "verify_machine.py"
    proc = subprocess.run([*argv, "--dry-run"], capture_output=True, text=True, timeout=60,
                          check=False)
    assert proc.returncode == 0, proc.stderr
    plan = json.loads(proc.stdout)
    path = tmp_path / "inventory.yml"
    path.write_text(json.dumps(plan["inventory"]))
    theirs = ansible_inventory(path)

    ours = vagrant_inventory["_meta"]["hostvars"][name]
    got = theirs["_meta"]["hostvars"][name]
    assert {k: v for k, v in got.items() if k not in CONNECTION_VARS} == \
        {k: v for k, v in ours.items() if k not in CONNECTION_VARS}
    groups_of = {g for g in vagrant_inventory if name in group_hosts(vagrant_inventory, g)}
    assert {g for g in theirs if name in group_hosts(theirs, g)} == groups_of
    assert got["ansible_port"] == ours["ansible_port"]
    assert got["ansible_ssh_private_key_file"] == f"/keys/{name}"

    commands = [c["argv"] for c in plan["commands"]]
    infra, fleet = commands
    assert infra[1:3] == ["-m", "pytest"] and str(ROOT / "tests" / "infra") in infra
    assert f"--hosts=ansible://{name}" in infra
    assert f"--ansible-inventory={plan['inventory_path']}" in infra
    assert Path(fleet[0]).name == "stapdoctor"
    assert fleet[1:] == ["fleet", "-i", plan["inventory_path"], "-l", name,
                         "--keep", plan["snapshot_dir"], "--playbooks", str(ROOT / "playbooks")]
    assert plan["inventory_path"].startswith(str(ROOT / ".vagrant" / "stapdoctor" / name))
    assert plan["env"]["ANSIBLE_CONFIG"] == str(ROOT / "playbooks" / "ansible.cfg")
    # The playbooks, and the checks' pytest, exist where the commands point.
    for path in (ROOT / "playbooks" / "check.yml", ROOT / "playbooks" / "ansible.cfg"):
        assert path.is_file(), path


def test_checks_pass_every_key_vagrant_offers(tmp_path):
    tables = {"groups": {"stap_hosts": ["quantal"]}, "host_vars": {}, "stap_hosts_vars": {}}
    proc = subprocess.run(
        [sys.executable, str(HERE / "verify_machine.py"), "--root", str(tmp_path), "--name", "quantal",
         "--host", "127.0.0.1", "--port", "2222", "--user", "vagrant",
         "--identity-file", "/k/rsa", "--identity-file", "/k/my ed25519",
         "--inventory-json", json.dumps(tables), "--dry-run"],
        capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr
    plan = json.loads(proc.stdout)
    assert plan["inventory"]["all"]["children"]["stap_hosts"]["hosts"]["quantal"][
        "ansible_ssh_private_key_file"] == "/k/rsa"
    assert "-o IdentityFile='/k/my ed25519'" in plan["env"]["ANSIBLE_SSH_EXTRA_ARGS"]


def test_checks_refuse_a_machine_outside_stap_hosts(tmp_path):
    tables = {"groups": {"stap_hosts": ["fedora"]}, "host_vars": {}}
    proc = subprocess.run(
        [sys.executable, str(HERE / "verify_machine.py"), "--root", str(tmp_path), "--name", "quantal",
         "--host", "h", "--port", "22", "--user", "u", "--identity-file", "k",
         "--inventory-json", json.dumps(tables), "--dry-run"],
        capture_output=True, text=True, check=False)
    assert proc.returncode != 0
    assert "not in the stap_hosts group" in proc.stderr and "Traceback" not in proc.stderr
