"""`stapdoctor fleet` against real Debian 12 hosts over SSH (network namespaces): a normal host, a hostile
host whose collector sends an escaping archive, a host whose facts carry terminal escapes, and an inventory
host nobody answers for. The controller must not be written to, and the table must say what happened: the
same through both transports (ssh: one ssh command per host from stapdoctor; ansible: check.yml)."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from stapdoctor.testing.ansiblerun import PLAYBOOKS, VENV_BIN
from stapdoctor.testing.testhosts import bring_up_hosts

pytestmark = pytest.mark.ansible

# Replaces tar on the hostile host: whatever it is asked to write, it writes an archive that tries to
# escape (a '..' name, an absolute name, a link and a file through the link).
EVIL_TAR = r'''#!/usr/bin/python3
import io, sys, tarfile
out = sys.argv[sys.argv.index("-czf") + 1]
with tarfile.open(out, "w:gz") as tf:
    for name, kind, target in (("escape", tarfile.SYMTYPE, "/tmp"), ):
        info = tarfile.TarInfo(name); info.type = kind; info.linkname = target; tf.addfile(info)
    for name in ("escape/stapdoctor-pwned", "../../stapdoctor-pwned", "/tmp/stapdoctor-pwned"):
        data = b"owned\n"; info = tarfile.TarInfo(name); info.size = len(data); tf.addfile(info, io.BytesIO(data))
'''
ESCAPES = 'ID=debian\nVERSION_ID="12"\nPRETTY_NAME="\x1b]0;owned\x07\x1b[2JDebian 12"\n'


@pytest.fixture(scope="module")
def fleet_env(tmp_path_factory):
    if os.geteuid() != 0:
        pytest.skip("the Ansible tier needs root (mounts, network namespaces); CI runs as root")
    work = tmp_path_factory.mktemp("fleet")
    with bring_up_hosts(3, name_prefix="fleet") as fl:
        h1, h2, h3 = fl.hosts
        fl.ssh(h2, "sh", "-c", f"cat > /usr/local/bin/tar <<'EOF'\n{EVIL_TAR}EOF\nchmod 755 /usr/local/bin/tar")
        (h3.merged / "etc/os-release").unlink()
        (h3.merged / "etc/os-release").write_text(ESCAPES)
        inv = fl.write_inventory(work / "inventory.yml")
        data = json.loads(inv.read_text())
        # an inventory host nobody answers for: the bridge address, a closed port
        data["all"]["children"]["stap_hosts"]["hosts"]["ghost"] = dict(
            fl.ansible_host_vars()[h1.name], ansible_host=fl.gateway, ansible_port=1)
        inv.write_text(json.dumps(data))
        yield fl, inv, work


TRANSPORTS = pytest.mark.parametrize("transport", ["ssh", "ansible"])


def stapdoctor(work: Path, *args: str, transport: str = "ssh", timeout: float = 300) -> subprocess.CompletedProcess:
    env = dict(os.environ, HOME=str(work), COLUMNS="100", PATH=f"{VENV_BIN}:{os.environ.get('PATH', '')}")
    return subprocess.run([str(VENV_BIN / "stapdoctor"), "fleet", "--transport", transport, *args],
                          capture_output=True, text=True, timeout=timeout, env=env, cwd=work)


@TRANSPORTS
def test_table_keep_hostile_and_unreachable_hosts(fleet_env, transport):
    fl, inv, work = fleet_env
    h1, h2, h3 = fl.hosts
    keep = work / f"keep-{transport}"
    (keep / "other").mkdir(parents=True)
    (keep / "other" / "notes.txt").write_text("mine\n")
    (keep / "other.tar.gz").write_bytes(b"not from this run")
    victim = work / f"victim-{transport}.txt"
    victim.write_text("precious\n")
    (keep / f"{h1.name}.tar.gz").symlink_to(victim)  # a link where this run writes: replaced, not followed
    p = stapdoctor(work, "-i", str(inv), "--keep", str(keep), transport=transport)
    out = p.stdout
    assert p.returncode == 1, out + p.stderr  # bare Debian hosts are not ready, one host is unreachable
    lines = out.splitlines()
    assert all(len(line) <= 100 for line in lines), out
    at = next(i for i, line in enumerate(lines) if "verdict" in line)
    assert lines[at].split() == ["host", "verdict", "kernel", "devel", "debuginfo", "systemtap", "policy", "access"]
    body = lines[at + 2: lines.index("No snapshot:")]
    row = {line.split()[0]: line.split()[1:] for line in body if line.strip()}
    assert sorted(row) == sorted([h1.name, h2.name, h3.name, "ghost"])  # one row per host
    assert row[h1.name][:2] == ["NOT", "READY"] and "FAIL" in row[h1.name]  # no stap: systemtap FAIL
    assert row[h2.name] == ["error"] and row["ghost"] == ["unreachable"]
    # why: whole, below the table, not cut into the kernel column
    assert f"{h2.name}: its collector output was refused: member '/escape' is not a regular file" in out
    ghost = out[out.index("ghost:"):]
    assert "unreachable:" in ghost and "Connection refused" in ghost, out
    assert f"{h1.name} stap.installed (FAIL): ansible-playbook playbooks/site.yml --tags systemtap" in out
    # nothing was written by the hostile host, on the controller or its /tmp
    assert not list(Path("/tmp").glob("stapdoctor-pwned")) and not list(work.rglob("stapdoctor-pwned"))
    # --keep: this run's archives written; nothing else touched; the link replaced, its target intact
    assert (keep / "other" / "notes.txt").read_text() == "mine\n"
    assert (keep / "other.tar.gz").read_bytes() == b"not from this run"
    assert victim.read_text() == "precious\n"
    assert (keep / f"{h1.name}.tar.gz").is_file() and not (keep / f"{h1.name}.tar.gz").is_symlink()
    assert (keep / f"{h3.name}.tar.gz").is_file()
    assert sorted(p.name for p in keep.iterdir()) == sorted(
        ["other", "other.tar.gz", f"{h1.name}.tar.gz", f"{h2.name}.tar.gz", f"{h3.name}.tar.gz"])


@TRANSPORTS
def test_json_and_one_host_detail(fleet_env, transport):
    fl, inv, work = fleet_env
    h1, h2, h3 = fl.hosts
    p = stapdoctor(work, "-i", str(inv), "--json", transport=transport)
    data = json.loads(p.stdout)
    assert data["schema"] == "stapdoctor.fleet/1" and data["ready"] is False
    rows = {r["host"]: r for r in data["table"]}
    assert rows[h1.name]["systemtap"] == "fail" and rows[h1.name]["verdict"] == "NOT READY"
    assert rows["ghost"]["verdict"] == "unreachable" and "Connection refused" in data["unreachable"]["ghost"]
    assert data["hosts"][h3.name]["distribution"]["name"].startswith("\x1b]0;owned")  # JSON keeps it as said
    p = stapdoctor(work, "-i", str(inv), "--host", h3.name, transport=transport)
    assert p.returncode == 1
    assert f"stapdoctor fleet — {h3.name}: kernel" in p.stdout and "?]0;owned??[2JDebian 12" in p.stdout
    assert "\x1b" not in p.stdout and "\x07" not in p.stdout
    assert "  FAIL  stap.installed" in p.stdout and "NOT READY" in p.stdout


@TRANSPORTS
def test_inventory_without_the_group_says_which_group(fleet_env, transport):
    fl, inv, work = fleet_env
    h1 = fl.hosts[0]
    other = work / "web.yml"
    fl.write_inventory(other, group="web")
    p = stapdoctor(work, "-i", str(other), transport=transport)
    assert p.returncode == 2, p.stdout + p.stderr
    assert "'stap_hosts'" in p.stderr and "--hosts all" in p.stderr and h1.name in p.stderr
    p = stapdoctor(work, "-i", str(other), "--hosts", "web", "-l", h1.name, transport=transport)
    assert p.returncode == 1 and h1.name in p.stdout and "NOT READY" in p.stdout, p.stdout + p.stderr


@TRANSPORTS
def test_a_failing_collector_shows_its_own_words(fleet_env, transport):
    fl, inv, work = fleet_env
    h3 = fl.hosts[2]
    fl.ssh(h3, "sh", "-c", "printf '#!/bin/sh\\necho \"mktemp: read-only file system\" >&2\\nexit 1\\n' "
                           "> /usr/local/bin/mktemp && chmod 755 /usr/local/bin/mktemp")
    try:
        p = stapdoctor(work, "-i", str(inv), "-l", h3.name, transport=transport)
    finally:
        fl.ssh(h3, "rm", "-f", "/usr/local/bin/mktemp")
    assert p.returncode == 1
    assert f"{h3.name}   failed" in p.stdout
    assert "the collector failed (exit 1)" in p.stdout and "mktemp: read-only file system" in p.stdout, p.stdout


def test_ssh_transport_hands_what_it_cannot_honour_to_ansible_and_keeps_host_keys_checked(fleet_env):
    """A host with an option the ssh transport does not implement goes through Ansible (and the run says
    so); a host whose key is not known is refused (BatchMode, no StrictHostKeyChecking=no added); a
    collector that hangs is stopped at --timeout."""
    fl, inv, work = fleet_env
    h1, h2, h3 = fl.hosts
    hv = fl.ansible_host_vars()
    empty = work / "no_known_hosts"
    empty.write_text("")
    data = {"all": {"children": {"stap_hosts": {"hosts": {
        h1.name: hv[h1.name],
        "viaansible": dict(hv[h2.name], ansible_ssh_retries=1),
        "stranger": dict(hv[h1.name],
                         ansible_ssh_common_args=f"-o UserKnownHostsFile={empty} -o IdentitiesOnly=yes"),
        h3.name: hv[h3.name]}}}}}
    mixed = work / "mixed.yml"
    mixed.write_text(json.dumps(data))
    fl.ssh(h3, "sh", "-c", "printf '#!/bin/sh\\nsleep 120\\n' > /usr/local/bin/mktemp && chmod 755 /usr/local/bin/mktemp")
    try:
        p = stapdoctor(work, "-i", str(mixed), "--json", "--timeout", "8")
    finally:
        fl.ssh(h3, "rm", "-f", "/usr/local/bin/mktemp")
    data = json.loads(p.stdout)
    rows = {r["host"]: r["verdict"] for r in data["table"]}
    assert rows == {h1.name: "NOT READY", "viaansible": "error", "stranger": "unreachable", h3.name: "failed"}
    assert "viaansible: collected through Ansible (the ssh transport cannot honour SSH retries" in p.stderr
    assert "member '/escape' is not a regular file" in data["hosts"]["viaansible"]["error"]  # h2's hostile tar
    assert "Host key verification failed" in data["unreachable"]["stranger"]
    assert "no answer within 8 s" in data["unreachable"][h3.name]


def test_check_playbook_standalone_writes_archives(fleet_env):
    from stapdoctor.doctor import fleet
    fl, inv, work = fleet_env
    h1 = fl.hosts[0]
    dest = work / "snapshots"
    env = dict(os.environ, ANSIBLE_CONFIG=str(PLAYBOOKS / "ansible.cfg"), HOME=str(work),
               PATH=f"{VENV_BIN}:{os.environ.get('PATH', '')}")
    p = subprocess.run([str(VENV_BIN / "ansible-playbook"), "-i", str(inv), str(PLAYBOOKS / "check.yml"),
                        "-l", f"{h1.name},localhost", "-e", f"doctor_collect_dest={dest}"],
                       capture_output=True, text=True, env=env, timeout=300)
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-2000:]
    reports = fleet.collect_reports(dest)
    assert list(reports) == [h1.name] and reports[h1.name]["kernel_release"] == os.uname().release
