"""The ssh transport of `stapdoctor fleet` (doctor/fleetssh.py): inventory -> ssh argv as Ansible would
connect, refusal of what it cannot honour, the collector's stdin, and the caps and time budget of one run
(real local processes; the whole transport against real hosts is in tests/ansible/test_fleet.py)."""
from __future__ import annotations

import subprocess
import time

import pytest

from stapdoctor.doctor import fleet, fleetssh
from stapdoctor.doctor.fleetssh import Outcome, Target, Unsupported, collector_input, ssh_argv

BASE = {"host": "10.0.0.5", "port": 2222, "remote_user": "deploy", "private_key_file": "/k/id",
        "ssh_args": "-o ControlMaster=no", "ssh_common_args": "-o UserKnownHostsFile=/k/known -o IdentitiesOnly=yes",
        "ssh_extra_args": "", "timeout": 10, "host_key_checking": True}


def test_argv_follows_ansibles_order_and_becomes_root_with_sudo():
    argv = ssh_argv("web1", BASE)
    assert argv == ["ssh", "-o", "BatchMode=yes", "-o", "ControlMaster=no", "-o", "Port=2222",
                    "-o", 'IdentityFile="/k/id"', "-o", 'User="deploy"', "-o", "ConnectTimeout=10",
                    "-o", "UserKnownHostsFile=/k/known", "-o", "IdentitiesOnly=yes",
                    "--", "10.0.0.5", "sudo -H -n -u root -- /bin/sh -s"]
    assert "StrictHostKeyChecking=no" not in " ".join(argv)  # checking stays as ssh's config says


def test_host_key_checking_off_only_when_the_configuration_says_so():
    assert ssh_argv("web1", {**BASE, "host_key_checking": "False"})[5:7] == ["-o", "StrictHostKeyChecking=no"]
    assert "StrictHostKeyChecking=no" not in ssh_argv("web1", {**BASE, "host_key_checking": "yes"})


def test_become_user_is_quoted_and_same_user_skips_sudo():
    argv = ssh_argv("web1", {**BASE, "become_user": "ops; rm -rf /"})
    assert argv[-1] == "sudo -H -n -u 'ops; rm -rf /' -- /bin/sh -s"
    assert ssh_argv("web1", {**BASE, "remote_user": "root"})[-1] == "/bin/sh -s"  # as Ansible: no sudo
    assert ssh_argv("web1", {**BASE, "remote_user": "root", "become_method": "su"})[-1] == "/bin/sh -s"
    assert ssh_argv("web1", {**BASE, "remote_user": "root", "become_allow_same_user": True})[-1] == (
        "sudo -H -n -u root -- /bin/sh -s")
    assert ssh_argv("web1", {**BASE, "become": "no"})[-1] == "/bin/sh -s"
    assert ssh_argv("web1", {**BASE, "host": None, "remote_user": None})[-3:] == [
        "--", "web1", "sudo -H -n -u root -- /bin/sh -s"]  # no ansible_host: the inventory name


@pytest.mark.parametrize("extra, said", [
    ({"password": "hunter2"}, "SSH password"),
    ({"connection": "local"}, "connection 'local'"),
    ({"connection": "paramiko"}, "connection 'paramiko'"),
    ({"become_method": "su"}, "become method 'su'"),
    ({"become_pass": "x"}, "become password"),
    ({"become_flags": "-H -S -n -E"}, "become flags"),
    ({"become_exe": "/opt/bin/sudo"}, "become_exe"),
    ({"reconnection_retries": 3}, "retries"),
    ({"pkcs11_provider": "/usr/lib/p11.so"}, "PKCS#11"),
    ({"host": "{{ inventory_hostname }}.lan"}, "templated host"),
    ({"become": "maybe"}, "maybe"),
    ({"remote_user": 'a"b'}, "user with a double quote"),
    ({"private_key_file": "/k/id\nProxyCommand x"}, "key file with a double quote or control"),
])
def test_what_it_cannot_honour_is_refused_with_its_name(extra, said):
    with pytest.raises(Unsupported, match=said.replace("(", r"\(")):
        ssh_argv("web1", {**BASE, **extra})


@pytest.mark.parametrize("shell", ["sh", "bash"])  # bash (Fedora's /bin/sh) reads its script line by line
def test_collector_input_quotes_arguments_and_no_command_can_eat_the_script(shell):
    # `cat` reads stdin: if the shell ran the script while reading it, cat would swallow the next lines
    script = "#!/bin/sh\ncat\necho \"[$1][$2]\"\necho done\n"
    data = collector_input(script, "a'b $(touch /tmp/x) `id`", "6.1.0-18-amd64")
    p = subprocess.run([shell, "-s"], input=data, capture_output=True, timeout=10)
    assert p.stdout.decode() == "[a'b $(touch /tmp/x) `id`][6.1.0-18-amd64]\ndone\n", p.stderr


def test_collect_user_default_matches_the_role():
    assert fleetssh.collect_user({}) == ""
    assert fleetssh.collect_user({"stap_users": ["alice", "bob"]}) == "alice"
    assert fleetssh.collect_user({"stap_users": [{"name": "carol", "groups": ["stapusr"]}]}) == "carol"
    assert fleetssh.collect_user({"stap_users": ["alice"], "doctor_collect_user": "dave"}) == "dave"


INVENTORY = """
[stap_hosts]
web1 ansible_host=10.0.0.1 ansible_user=root ansible_ssh_private_key_file=/k/id
web2 ansible_host=10.0.0.2 ansible_port=2200 ansible_password=secret
web3 ansible_host=10.0.0.3 ansible_connection=local
web4 ansible_host=10.0.0.4 kernel_release=6.1.0-9-amd64 stap_users='["alice"]'
[other]
db1 ansible_host=10.0.0.9
[stap_hosts:vars]
ansible_ssh_common_args='-o UserKnownHostsFile=/k/known'
"""


def test_resolve_reads_the_inventory_as_ansible_does(tmp_path, monkeypatch):
    monkeypatch.setenv("ANSIBLE_CONFIG", str(fleet.default_playbooks() / "ansible.cfg"))
    monkeypatch.setenv("ANSIBLE_REMOTE_USER", "ops")
    monkeypatch.delenv("ANSIBLE_HOST_KEY_CHECKING", raising=False)
    inv = tmp_path / "hosts.ini"
    inv.write_text(INVENTORY)
    targets, fallback = fleetssh.resolve(inv, "stap_hosts", None, fleet.default_playbooks())
    by = {t.name: t for t in targets}
    assert sorted(by) == ["web1", "web4"]
    assert "SSH password" in fallback["web2"] and "connection 'local'" in fallback["web3"]
    w1 = by["web1"].argv
    assert w1[:5] == ["ssh", "-o", "BatchMode=yes", "-o", "ControlMaster=no"]
    assert w1[-3:] == ["--", "10.0.0.1", "/bin/sh -s"] and 'IdentityFile="/k/id"' in w1
    assert "UserKnownHostsFile=/k/known" in w1 and "StrictHostKeyChecking=no" not in w1
    w4 = by["web4"]
    assert 'User="ops"' in w4.argv and w4.argv[-1] == "sudo -H -n -u root -- /bin/sh -s"  # env honoured
    assert b"set -- alice 6.1.0-9-amd64\n" in w4.stdin and b"stapdoctor-collect/1" in w4.stdin
    # -l limits as in Ansible; the environment's host_key_checking is Ansible's, not weakened or ignored
    monkeypatch.setenv("ANSIBLE_HOST_KEY_CHECKING", "False")
    targets, fallback = fleetssh.resolve(inv, "stap_hosts", "web1", fleet.default_playbooks())
    assert [t.name for t in targets] == ["web1"] and not fallback
    assert "StrictHostKeyChecking=no" in targets[0].argv
    monkeypatch.setenv("ANSIBLE_BECOME_METHOD", "su")  # Ansible's default method, for hosts not root
    targets, fallback = fleetssh.resolve(inv, "stap_hosts", "web1,web4", fleet.default_playbooks())
    assert [t.name for t in targets] == ["web1"] and "become method 'su'" in fallback["web4"]


def _target(script: str) -> Target:
    return Target("h", ["sh", "-c", script], b"")


def test_run_caps_stdout_stderr_and_time():
    res = fleetssh.run_target(_target("head -c 5000000 /dev/zero"), 30, 1_000_000)
    assert res.over_cap and res.stdout == b""
    res = fleetssh.run_target(_target("head -c 500000 /dev/zero >&2; echo out"), 30, 1_000_000)
    assert res.rc == 0 and res.stdout == b"out\n" and len(res.stderr) == fleetssh.MAX_STDERR
    t0 = time.monotonic()
    res = fleetssh.run_target(_target("sleep 30"), 0.5, 1_000_000)
    assert res.timed_out and time.monotonic() - t0 < 5
    res = fleetssh.run_target(Target("h", ["sh", "-c", "cat; echo fed"], b"x" * 300_000), 30, 1_000_000)
    assert res.rc == 0 and res.stdout == b"x" * 300_000 + b"fed\n"  # more stdin than a pipe holds


def test_judge_says_what_the_ansible_transport_says():
    rep, why = fleetssh.judge("h", Outcome(255, b"", b"ssh: connect to host 10.0.0.1 port 22: Connection refused\r\n"),
                              300, None)
    assert rep is None and why == ("unreachable: Failed to connect to the host via ssh: "
                                   "ssh: connect to host 10.0.0.1 port 22: Connection refused")
    rep, why = fleetssh.judge("h", Outcome(1, b"", b"mktemp: read-only file system\n"), 300, None)
    assert why == "the collector failed (exit 1): mktemp: read-only file system"
    rep, why = fleetssh.judge("h", Outcome(None, b"", b"", timed_out=True), 300, None)
    assert rep is None and "no answer within 300 s" in why
    rep, why = fleetssh.judge("h", Outcome(0, b"", b"", over_cap=True), 300, None)
    assert why is None and "collector output is larger than 24 MiB" in rep["error"]
    rep, why = fleetssh.judge("h", Outcome(0, b"hello\n", b""), 300, None)
    assert why is None and "no snapshot in the collector's output" in rep["error"]


def test_a_host_handed_to_ansible_is_never_dropped(tmp_path):
    """A host the ssh transport cannot honour goes through ansible-playbook, and the run says so; when that
    run gives nothing for it (here: a broken check.yml), its row says why instead of vanishing."""
    import os
    import shutil

    from stapdoctor.testing.ansiblerun import VENV_BIN

    books = tmp_path / "playbooks"
    shutil.copytree(fleet.default_playbooks() / "roles", books / "roles")
    shutil.copy(fleet.default_playbooks() / "ansible.cfg", books / "ansible.cfg")
    (books / "check.yml").write_text("- hosts: [unclosed\n")
    inv = tmp_path / "hosts.ini"
    inv.write_text("[stap_hosts]\nweb1 ansible_host=192.0.2.1 ansible_password=secret\n")
    env = dict(os.environ, HOME=str(tmp_path), COLUMNS="100", PATH=f"{VENV_BIN}:{os.environ.get('PATH', '')}")
    p = subprocess.run([str(VENV_BIN / "stapdoctor"), "fleet", "-i", str(inv), "--playbooks", str(books)],
                       capture_output=True, text=True, env=env, timeout=120)
    assert p.returncode == 1, p.stdout + p.stderr
    assert "web1: collected through Ansible (the ssh transport cannot honour an SSH password" in p.stderr
    assert "web1" in p.stdout and "failed" in p.stdout
    assert "web1: failed: no result came back from Ansible (exit 4)" in p.stdout, p.stdout


def test_an_interrupted_run_stops_its_ssh_and_starts_no_more():
    targets = [_target("true")] + [Target(f"h{i}", ["sleep", "30"], b"") for i in range(4)]

    def interrupt(done: int) -> None:
        raise KeyboardInterrupt

    t0 = time.monotonic()
    with pytest.raises(KeyboardInterrupt):
        fleetssh.collect(targets, 2, 60, None, interrupt)
    assert time.monotonic() - t0 < 10  # the running `sleep 30` was killed, the other three never started
