#!/usr/bin/env python3
"""Host-side checks the Vagrantfile's trigger runs after `vagrant up`/`vagrant provision`.

Why a script: the trigger hands over the machine's live SSH endpoint (ports and addresses change
between boots, so Vagrant's last generated inventory can be stale) and the Vagrantfile's inventory
tables; this writes a one-host inventory with the same groups and variables, then runs, against the
VM, what an operator would run against a fleet host:

  1. the testinfra suite:  pytest tests/infra --hosts=ansible://NAME --ansible-inventory=INV
  2. stapdoctor's checks, the fleet way (12.10's Python 2.7.3 cannot run stapdoctor itself):
     stapdoctor fleet -i INV -l NAME --keep DIR --playbooks playbooks
     (playbooks/check.yml's POSIX-sh collector brings the snapshot back; the checks run here).

Every command is an argv list (no shell). `--dry-run` prints the inventory and the commands as
JSON instead of running them (the tests use it; no VM provider runs on CI machines).
"""
from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path


def ssh_extra_args(more_identity_files: list[str]) -> str:
    """SSH options for Ansible and testinfra (both read ANSIBLE_SSH_EXTRA_ARGS).

    A throwaway VM gets new host keys on every `vagrant up`: don't record or check them. Both
    tools split this string like a shell would, hence the quoting of key paths.
    """
    opts = ["-o UserKnownHostsFile=/dev/null", "-o StrictHostKeyChecking=no"]
    opts += [f"-o IdentityFile={shlex.quote(path)}" for path in more_identity_files]
    return " ".join(opts)


def build_inventory(name: str, host: str, port: int, user: str, identity_file: str,
                    tables: dict) -> dict:
    """One-host YAML/JSON inventory with the Vagrantfile's groups and variables.

    Only the first SSH key goes here; further keys reach SSH through ssh_extra_args().
    """
    host_vars = {
        "ansible_host": host,
        "ansible_port": port,
        "ansible_user": user,
        "ansible_ssh_private_key_file": identity_file,
    }
    host_vars.update(tables.get("host_vars", {}).get(name, {}))
    children: dict = {}
    for group, members in tables.get("groups", {}).items():
        if name not in members:
            continue
        children[group] = {"hosts": {name: host_vars if group == "stap_hosts" else {}}}
    if "stap_hosts" not in children:
        raise SystemExit(f"verify_machine: {name} is not in the stap_hosts group of the Vagrantfile")
    if tables.get("stap_hosts_vars"):
        children["stap_hosts"]["vars"] = dict(tables["stap_hosts_vars"])
    return {"all": {"children": children}}


def tool(root: Path, name: str) -> str:
    """The project's venv tool if present (pinned ansible-core, stapdoctor), else PATH's."""
    venv = root / ".venv" / "bin" / name
    return str(venv) if venv.exists() else (shutil.which(name) or name)


def commands(root: Path, name: str, inventory: Path, snapshot_dir: Path) -> list[dict]:
    """The checks, in order, as argv lists with a short label each."""
    return [
        {"label": "testinfra suite (tests/infra)",
         "argv": [tool(root, "python"), "-m", "pytest", "-p", "no:cacheprovider",
                  str(root / "tests" / "infra"),
                  f"--hosts=ansible://{name}", f"--ansible-inventory={inventory}"]},
        {"label": "stapdoctor's checks (stapdoctor fleet, collecting with playbooks/check.yml)",
         "argv": [tool(root, "stapdoctor"), "fleet", "-i", str(inventory), "-l", name,
                  "--keep", str(snapshot_dir), "--playbooks", str(root / "playbooks")]},
    ]


def run(step: dict, env: dict, cwd: Path) -> bool:
    print(f"==> stapdoctor: {step['label']}", flush=True)
    return subprocess.run(step["argv"], env=env, cwd=cwd, check=False).returncode == 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, required=True, help="project directory")
    parser.add_argument("--name", required=True, help="Vagrant machine name (= inventory host)")
    parser.add_argument("--host", required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--user", required=True)
    parser.add_argument("--identity-file", action="append", required=True,
                        help="SSH private key; repeat for each key Vagrant offers, first is used first")
    parser.add_argument("--inventory-json", required=True,
                        help="the Vagrantfile's tables: groups, host_vars, stap_hosts_vars")
    parser.add_argument("--dry-run", action="store_true",
                        help="print the inventory and commands as JSON; run nothing")
    args = parser.parse_args(argv)

    try:
        tables = json.loads(args.inventory_json)
    except json.JSONDecodeError as exc:
        parser.error(f"--inventory-json is not JSON: {exc}")
    root = args.root.resolve()
    workdir = root / ".vagrant" / "stapdoctor" / args.name
    inventory_path = workdir / "inventory.yml"  # JSON is YAML: Ansible's yaml plugin reads it
    snapshot_dir = workdir / "snapshots"
    inventory = build_inventory(args.name, args.host, args.port, args.user, args.identity_file[0],
                                tables)
    steps = commands(root, args.name, inventory_path, snapshot_dir)

    env_overrides = {
        "ANSIBLE_CONFIG": str(root / "playbooks" / "ansible.cfg"),
        "ANSIBLE_HOST_KEY_CHECKING": "False",
        "ANSIBLE_SSH_EXTRA_ARGS": ssh_extra_args(args.identity_file[1:]),
    }

    if args.dry_run:
        json.dump({"inventory_path": str(inventory_path), "inventory": inventory,
                   "snapshot_dir": str(snapshot_dir), "env": env_overrides,
                   "commands": steps}, sys.stdout, indent=2)
        print()
        return 0

    workdir.mkdir(parents=True, exist_ok=True)
    inventory_path.write_text(json.dumps(inventory, indent=2) + "\n")
    if snapshot_dir.exists():
        shutil.rmtree(snapshot_dir)
    env = {**os.environ, **env_overrides}

    # Run every step: a failing testinfra test should not hide what stapdoctor says.
    ok = all([run(step, env, root) for step in steps])
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
