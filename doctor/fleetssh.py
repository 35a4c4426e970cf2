"""The direct-SSH transport of `stapdoctor fleet`: one `ssh HOST sh -s` per host from a bounded thread pool.

Why: with one `raw` task per host, a fleet run's cost is Ansible's own per-host work on the controller (a
fork, templating, callbacks): a bare one-task play is already 5.5x one host at 30 hosts on two cores. Here
the inventory stays the source of truth, read once in-process with Ansible's inventory and config API, and
each host's connection settings are resolved by Ansible's own precedence rules (host vars > group vars >
ANSIBLE_* environment > ansible.cfg > default) for its `ssh` connection and `sudo` become plugins. What
this transport cannot honour (a password, another connection or become method, become flags, a templated
value, retries ...) is never ignored: that host goes through the Ansible transport, and the run says so.

The collector and its arguments go in on stdin as check.yml passes them (`set -- ARGS`, each shlex.quote'd,
then collect.sh), wrapped in `{ ...; } </dev/null` so the remote shell parses the whole script before any
of it runs (nothing in it can read the rest of the script as input). ssh runs as an argument list; the
remote command is fixed text plus the shlex.quote'd become user. BatchMode=yes; host keys are checked as the
Ansible configuration says (only `host_key_checking = False` adds StrictHostKeyChecking=no, as Ansible
does). Each host's stdout is capped at the collector-output cap, its stderr at 64 KiB, its run at a time
budget; the output goes to the same reader and checks as the Ansible transport's (doctor/fleet.py).
"""
from __future__ import annotations

import contextlib
import os
import selectors
import shlex
import subprocess
import threading
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping

from .safeio import human

MAX_STDERR = 64 * 1024
DEFAULT_TIMEOUT = 300.0
DEFAULT_FORKS = 32  # hosts at once: each is one ssh process (~6 MB) and a thread; see README's fleet section
SSH_ARGS_DEFAULT = "-o ControlMaster=no"  # as the Ansible transport sets ANSIBLE_SSH_ARGS: no lingering master
# Ansible connection/become options this transport honours, or that do not matter for one command over ssh
_HONOURED = {"host", "port", "remote_user", "private_key_file", "ssh_args", "ssh_common_args", "ssh_extra_args",
             "timeout", "host_key_checking", "ssh_executable", "become_user"}
_IRRELEVANT = {"sshpass_prompt", "sftp_executable", "scp_executable", "scp_extra_args", "sftp_extra_args",
               "pipelining", "control_path", "control_path_dir", "sftp_batch_mode", "ssh_transfer_method",
               "scp_if_ssh", "use_tty"}
_SSH_CONNECTIONS = {"ssh", "smart", "ansible.builtin.ssh", "ansible.legacy.ssh"}
_SUDO = {"sudo", "ansible.builtin.sudo", "ansible.legacy.sudo"}


class Unsupported(ValueError):
    """A host's settings that the ssh transport cannot honour (the message names them)."""


@dataclass
class Target:
    name: str
    argv: list[str]
    stdin: bytes


@dataclass
class Outcome:
    """What one host's ssh run gave: its exit status and (capped) output, or that it ran out of time."""
    rc: int | None
    stdout: bytes
    stderr: bytes
    over_cap: bool = False
    timed_out: bool = False


# ---------------------------------------------------------------- settings -> argv
def _is_template(value: Any) -> bool:
    return isinstance(value, str) and ("{{" in value or "{%" in value)


def _quoted(value: str, what: str) -> str:
    """An -o value as ssh's config parser reads it whole (as Ansible writes it: in double quotes)."""
    if '"' in value or any(ord(c) < 32 or ord(c) == 127 for c in value):
        raise Unsupported(f"a {what} with a double quote or control character")
    return f'"{value}"'


def ssh_argv(name: str, opts: Mapping[str, Any]) -> list[str]:
    """The ssh command for one host from its resolved Ansible options (ssh plugin options plus `connection`,
    `become`, `become_method`, `become_allow_same_user` and the sudo plugin's `become_*`). Raises
    Unsupported for what it cannot honour.

    The order follows Ansible's ssh plugin (the first value of an -o option wins in ssh): ssh_args, host key
    checking, port, key, user, connect timeout, common args, extra args."""
    from ansible.module_utils.parsing.convert_bool import boolean

    bad = [k for k, v in sorted(opts.items()) if _is_template(v)]
    if bad:
        raise Unsupported(f"templated {', '.join(bad)} (only Ansible can render it)")
    conn = str(opts.get("connection") or "ssh")
    if conn not in _SSH_CONNECTIONS:
        raise Unsupported(f"connection {conn!r} (only ssh)")
    if opts.get("password"):
        raise Unsupported("an SSH password (ansible_password): ssh runs in BatchMode, keys only")
    if opts.get("pkcs11_provider"):
        raise Unsupported("a PKCS#11 provider (ansible_ssh_pkcs11_provider)")
    if int(opts.get("reconnection_retries") or 0):
        raise Unsupported("SSH retries (ansible_ssh_retries)")
    try:
        become = boolean(opts.get("become", True), strict=True)
        checking = boolean(opts.get("host_key_checking", True), strict=True)
    except TypeError as e:
        raise Unsupported(str(e)) from None
    user = opts.get("remote_user")
    become_user = str(opts.get("become_user") or "root")
    # Ansible skips become when the SSH user already is the become user (unless become_allow_same_user)
    become = become and (not user or str(user) != become_user or bool(opts.get("become_allow_same_user")))
    if become:
        method = str(opts.get("become_method") or "sudo")
        if method not in _SUDO:
            raise Unsupported(f"become method {method!r} (only sudo)")
        if opts.get("become_pass"):
            raise Unsupported("a become password (ansible_become_password): sudo runs with -n")
        if str(opts.get("become_exe") or "sudo") != "sudo":
            raise Unsupported(f"become_exe {opts['become_exe']!r}")
        if str(opts.get("become_flags") or "-H -S -n").split() != ["-H", "-S", "-n"]:
            raise Unsupported(f"become flags {opts['become_flags']!r} (only the default -H -S -n)")
    argv = [str(opts.get("ssh_executable") or "ssh"), "-o", "BatchMode=yes"]
    argv += shlex.split(str(opts.get("ssh_args") or ""))
    if not checking:
        argv += ["-o", "StrictHostKeyChecking=no"]
    if opts.get("port") not in (None, ""):
        argv += ["-o", f"Port={int(opts['port'])}"]
    if opts.get("private_key_file"):
        argv += ["-o", f"IdentityFile={_quoted(os.path.expanduser(str(opts['private_key_file'])), 'key file')}"]
    if user:
        argv += ["-o", f"User={_quoted(str(user), 'user')}"]
    argv += ["-o", f"ConnectTimeout={int(opts.get('timeout') or 10)}"]
    argv += shlex.split(str(opts.get("ssh_common_args") or ""))
    argv += shlex.split(str(opts.get("ssh_extra_args") or ""))
    host = str(opts.get("host") or name)
    remote = ["/bin/sh", "-s"]
    if become:
        remote = ["sudo", "-H", "-n", "-u", become_user, "--", *remote]
    return [*argv, "--", host, shlex.join(remote)]


def collector_input(script: str, user: str, kernel_release: str) -> bytes:
    """stdin for `sh -s`: check.yml's `set -- USER KERNEL_RELEASE` and collect.sh, parsed whole before it runs."""
    return (f"{{\nset -- {shlex.quote(user)} {shlex.quote(kernel_release)}\n{script.rstrip()}\n}} </dev/null\n"
            ).encode()


def collect_user(hv: Mapping[str, Any]) -> str:
    """doctor_collect's default: doctor_collect_user, else the first of stap_users (its name), else ''."""
    if "doctor_collect_user" in hv:
        return str(hv["doctor_collect_user"] or "")
    users = hv.get("stap_users") or []
    first = users[0] if isinstance(users, list) and users else ""
    return str((first.get("name") or "") if isinstance(first, dict) else first)


# ---------------------------------------------------------------- the inventory
def _use_config(playbooks: Path) -> None:
    # The Ansible transport runs with ANSIBLE_CONFIG=playbooks/ansible.cfg; Ansible reads it at import time.
    os.environ["ANSIBLE_CONFIG"] = str(playbooks / "ansible.cfg")


def resolve(inventory: Path, pattern: str, limit: str | None, playbooks: Path
            ) -> tuple[list[Target], dict[str, str]]:
    """(the hosts the ssh transport collects, {host: why it goes through Ansible}) for `pattern` limited
    by `limit`, exactly as ansible-playbook would select them."""
    _use_config(playbooks)
    from ansible import constants as C
    from ansible.inventory.manager import InventoryManager
    from ansible.parsing.dataloader import DataLoader
    from ansible.plugins.loader import become_loader, connection_loader
    from ansible.vars.manager import VariableManager

    connection_loader.get("ssh", class_only=True)  # loads the plugins' option definitions into C.config
    become_loader.get("sudo", class_only=True)
    loader = DataLoader()
    inv = InventoryManager(loader=loader, sources=[str(inventory)])
    if limit:
        inv.subset(limit)
    varm = VariableManager(loader=loader, inventory=inv)
    script = (playbooks / "roles" / "doctor_collect" / "files" / "collect.sh").read_text()
    ssh_opts = C.config.get_configuration_definitions("connection", "ssh")
    sudo_opts = C.config.get_configuration_definitions("become", "sudo")
    targets: list[Target] = []
    fallback: dict[str, str] = {}
    for h in inv.get_hosts(pattern):
        hv = varm.get_vars(host=h, include_hostvars=False, include_delegate_to=False)
        opts: dict[str, Any] = {}
        try:
            for plugin_type, plugin, defs in (("connection", "ssh", ssh_opts), ("become", "sudo", sudo_opts)):
                for opt in defs:
                    value, origin = C.config.get_config_value_and_origin(
                        opt, plugin_type=plugin_type, plugin_name=plugin, variables=hv)
                    if opt == "ssh_args" and origin == "default":
                        opts[opt] = SSH_ARGS_DEFAULT
                    elif opt in _HONOURED or opt in _IRRELEVANT:
                        opts[opt] = value
                    elif origin != "default" and value not in (None, "", 0, False):
                        opts[opt] = value  # checked by ssh_argv (password, retries, become_pass ...)
            opts["connection"] = hv.get("ansible_connection") or C.config.get_config_value("DEFAULT_TRANSPORT")
            opts["become"] = hv.get("ansible_become", True)  # check.yml's play says become: true
            opts["become_allow_same_user"] = C.config.get_config_value("BECOME_ALLOW_SAME_USER")
            opts["become_method"] = hv.get("ansible_become_method",
                                           C.config.get_config_value("DEFAULT_BECOME_METHOD"))
            if opts["host"] == "inventory_hostname" or not opts["host"]:
                opts["host"] = h.name
            args = {"doctor_collect_user": collect_user(hv),
                    "doctor_collect_kernel_release": str(hv.get("doctor_collect_kernel_release",
                                                                hv.get("kernel_release", "")) or "")}
            bad = [k for k, v in args.items() if _is_template(v)]
            if bad:
                raise Unsupported(f"templated {', '.join(bad)}")
            argv = ssh_argv(h.name, opts)
        except (Unsupported, ValueError) as e:
            fallback[h.name] = str(e)
            continue
        targets.append(Target(h.name, argv, collector_input(script, args["doctor_collect_user"],
                                                            args["doctor_collect_kernel_release"])))
    return targets, fallback


# ---------------------------------------------------------------- running
class Running:
    """The ssh processes of a run, so that an interrupted run stops them all (also one starting just then)."""

    def __init__(self) -> None:
        self.procs: set[subprocess.Popen] = set()
        self.stopping = threading.Event()

    def add(self, proc: subprocess.Popen) -> None:
        self.procs.add(proc)
        if self.stopping.is_set():  # stop() may have listed the processes before this one was added
            proc.kill()

    def stop(self) -> None:
        self.stopping.set()
        for proc in list(self.procs):
            with contextlib.suppress(OSError):
                proc.kill()


def run_target(target: Target, timeout: float, max_stdout: int, running: Running | None = None) -> Outcome:
    """Run one host's ssh with its stdin; stdout kept up to max_stdout (then stopped), stderr up to 64 KiB."""
    proc = subprocess.Popen(target.argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            bufsize=0)
    if running is not None:
        running.add(proc)
    out, err = bytearray(), bytearray()
    over = timed_out = False
    data, pos = memoryview(target.stdin), 0
    os.set_blocking(proc.stdin.fileno(), False)
    deadline = time.monotonic() + timeout
    with selectors.DefaultSelector() as sel:
        sel.register(proc.stdin, selectors.EVENT_WRITE)
        sel.register(proc.stdout, selectors.EVENT_READ)
        sel.register(proc.stderr, selectors.EVENT_READ)
        try:
            while sel.get_map() and not over:
                left = deadline - time.monotonic()
                if left <= 0:
                    timed_out = True
                    break
                for key, _ in sel.select(left):
                    if key.fileobj is proc.stdin:
                        try:
                            pos += os.write(key.fd, data[pos:pos + 65536])
                        except BrokenPipeError:
                            pos = len(data)
                        if pos >= len(data):
                            sel.unregister(proc.stdin)
                            proc.stdin.close()
                        continue
                    chunk = os.read(key.fd, 65536)
                    if not chunk:
                        sel.unregister(key.fileobj)
                    elif key.fileobj is proc.stdout:
                        out += chunk
                        if len(out) > max_stdout:
                            over = True
                            break
                    elif len(err) < MAX_STDERR:
                        err += chunk[:MAX_STDERR - len(err)]
        finally:
            if proc.poll() is None and (over or timed_out or sel.get_map()):
                proc.kill()
            rc = proc.wait()
            for f in (proc.stdin, proc.stdout, proc.stderr):
                if not f.closed:
                    f.close()
            if running is not None:
                running.procs.discard(proc)
    return Outcome(None if timed_out else rc, bytes(out) if not over else b"", bytes(err), over, timed_out)


def judge(host: str, res: Outcome, timeout: float, keep: Path | None) -> tuple[dict | None, str | None]:
    """(report, None) or (None, why there is none), saying what the Ansible transport says for the same."""
    from .collected import MAX_OUTPUT
    from .fleet import _error_report, _write_kept, check_output, failure_reason

    stderr = res.stderr.decode("utf-8", "replace")
    if res.timed_out:
        return None, f"failed: no answer within {timeout:g} s (ssh was stopped; --timeout sets it)"
    if res.over_cap:
        return _error_report(host, "its collector output was refused: collector output is larger than "
                                   f"{human(MAX_OUTPUT)}"), None
    if res.rc == 255:  # ssh's own failure, as Ansible's ssh plugin takes it
        lines = [ln for ln in stderr.replace("\r", "").splitlines() if ln.strip()]
        return None, "unreachable: Failed to connect to the host via ssh: " + ("\n".join(lines[-8:]) or "exit 255")
    stdout = res.stdout.decode("utf-8", "replace")
    if res.rc != 0:
        return None, failure_reason("failed", {"rc": res.rc, "stdout": stdout, "stderr": stderr})
    if keep is not None:
        _write_kept(keep, host, stdout)
    return check_output(host, stdout), None


def collect(targets: list[Target], forks: int, timeout: float, keep: Path | None,
            progress: Callable[[int], None] | None = None) -> tuple[dict[str, dict], dict[str, str]]:
    """Every target's report or why it has none, `forks` hosts at a time."""
    from .collected import MAX_OUTPUT

    reports: dict[str, dict] = {}
    failed: dict[str, str] = {}
    running = Running()

    def one(t: Target) -> tuple[str, dict | None, str | None]:
        try:
            res = run_target(t, timeout, MAX_OUTPUT, running)
        except OSError as e:
            return t.name, None, f"failed: cannot run {t.argv[0]}: {e.strerror or e}"
        return (t.name, *judge(t.name, res, timeout, keep))

    if not targets:
        return reports, failed
    with ThreadPoolExecutor(max_workers=max(1, min(forks, len(targets)))) as pool:
        try:
            for fut in as_completed([pool.submit(one, t) for t in targets]):
                name, rep, why = fut.result()
                if rep is not None:
                    reports[name] = rep
                else:
                    failed[name] = why or "failed"
                if progress is not None:
                    progress(len(reports) + len(failed))
        except BaseException:  # Ctrl-C or a signal: start no more hosts, stop the running ones
            pool.shutdown(wait=False, cancel_futures=True)
            running.stop()
            raise
    return reports, failed
