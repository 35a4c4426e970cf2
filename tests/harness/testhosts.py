"""Debian test hosts without Docker: debootstrap + overlayfs + network namespace + sshd.

Why: the playbooks must be tested against real hosts reached over real SSH, as in a fleet, on
machines that have no container runtime and no VMs fast enough. Each host is:

* one shared Debian base root made by ``debootstrap`` and cached outside the repository
  (``/var/cache/stapdoctor/testhosts/<suite>-<key>``, the key hashes suite, mirror and package list,
  so reruns on one machine reuse it and a cold machine builds it);
* an overlayfs (lower = base, upper/work per host), so many hosts cost little disk;
* its own network namespace, joined to a bridge in the root namespace by a veth pair, with an address
  in a private /24 that exists only on that bridge (no default route: the hosts reach nothing but
  the bridge);
* its own sshd (key-only, a key pair and host keys generated per run) started with
  ``unshare --mount --uts --pid`` + ``chroot``, and its own hostname.

apt on the hosts goes through :class:`~stapdoctor.testing.aptproxy.AptProxy` on the bridge address,
which forwards to the Debian mirror only and caches packages for every host and run.

Use :func:`bring_up_hosts` (a context manager that always tears everything down) or the pytest fixture in
``tests/ansible/conftest.py``. Needs root, ``debootstrap``, ``iproute2``, ``openssh-client``.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import os
import secrets
import shlex
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Sequence

from .aptproxy import AptProxy

log = logging.getLogger(__name__)

CACHE_DIR = Path(os.environ.get("STAPDOCTOR_TESTHOSTS_CACHE", "/var/cache/stapdoctor/testhosts"))
APT_CACHE_DIR = Path(os.environ.get("STAPDOCTOR_APT_CACHE", "/var/cache/stapdoctor/apt-proxy"))
RUN_DIR = Path(os.environ.get("STAPDOCTOR_TESTHOSTS_RUNS", "/var/tmp/stapdoctor-testhosts"))
MIRROR = "http://deb.debian.org/debian"
SECURITY_MIRROR = "http://deb.debian.org/debian-security"
SUITE = "bookworm"
# What every test host has before Ansible touches it: sshd + python3 for Ansible, git/make/gcc because
# a fresh host of any fleet usually has a toolchain only after the playbook installs it, but the three
# hosts would otherwise each unpack ~100 MB of compiler; the roles still install them (no-op here).
BASE_PACKAGES = ("openssh-server", "python3", "python3-apt", "git", "make", "gcc", "libc6-dev", "apt-utils")
# Bump when _finalize_base changes, so cached bases are rebuilt.
_BASE_FORMAT = "2"

SSHD_CONFIG = """\
ListenAddress {address}
Port 22
HostKey /etc/ssh/ssh_host_ed25519_key
PermitRootLogin prohibit-password
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
AuthorizedKeysFile .ssh/authorized_keys
PidFile /run/sshd.pid
Subsystem sftp /usr/lib/openssh/sftp-server
MaxStartups 50
MaxSessions 50
"""

# Run inside the host's network namespace by `unshare`: the positional parameters carry the hostname
# and the root directory (never pasted into the script text).
_INIT_SCRIPT = r"""
set -e
hostname "$1"
mount -t proc proc "$2/proc"
mount -t sysfs -o ro sysfs "$2/sys"
mount --rbind /dev "$2/dev"
mount --make-rslave "$2/dev"
mount -t tmpfs -o mode=0755 tmpfs "$2/run"
mkdir -p "$2/run/sshd"
exec chroot "$2" /usr/sbin/sshd -D -e -f /etc/ssh/stapdoctor_sshd_config
"""


class TestHostError(RuntimeError):
    """A test host could not be brought up (the message says which step)."""

    __test__ = False


def _run(argv: Sequence[str], **kw) -> subprocess.CompletedProcess:
    log.debug("run: %s", shlex.join(argv))
    try:
        return subprocess.run(list(argv), check=True, text=True, capture_output=True, **kw)
    except subprocess.CalledProcessError as err:
        raise TestHostError(f"{shlex.join(argv)} failed ({err.returncode}): {err.stderr.strip()[-2000:]}") from err


def _quiet(argv: Sequence[str]) -> None:
    subprocess.run(list(argv), text=True, capture_output=True, check=False)


# -- base root ------------------------------------------------------------------------------------

def base_key(suite: str = SUITE, mirror: str = MIRROR, packages: Sequence[str] = BASE_PACKAGES) -> str:
    text = "|".join([_BASE_FORMAT, suite, mirror, ",".join(sorted(packages))])
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _finalize_base(root: Path, suite: str) -> None:
    """Make the debootstrap'd tree a host image: apt sources, no service starts, no shared host keys."""
    (root / "etc/apt/sources.list").write_text(
        f"deb {MIRROR} {suite} main\n"
        f"deb {MIRROR} {suite}-updates main\n"
        f"deb {SECURITY_MIRROR} {suite}-security main\n"
    )
    policy = root / "usr/sbin/policy-rc.d"
    policy.write_text("#!/bin/sh\n# test host: no init system, never start services from maintainer scripts\nexit 101\n")
    policy.chmod(0o755)
    # Installing a 5 GB -dbg package three times: skip fsync in throwaway roots.
    (root / "etc/dpkg/dpkg.cfg.d/stapdoctor-unsafe-io").write_text("force-unsafe-io\n")
    (root / "etc/apt/apt.conf.d/90stapdoctor").write_text(
        'APT::Install-Recommends "false";\nAcquire::Languages "none";\n'
    )
    for key in (root / "etc/ssh").glob("ssh_host_*"):
        key.unlink()
    (root / "root/.ssh").mkdir(mode=0o700, exist_ok=True)
    shutil.rmtree(root / "var/cache/apt/archives", ignore_errors=True)
    (root / "var/cache/apt/archives/partial").mkdir(parents=True, exist_ok=True)


def base_root(
    suite: str = SUITE,
    mirror: str = MIRROR,
    packages: Sequence[str] = BASE_PACKAGES,
    cache_dir: Path = CACHE_DIR,
) -> Path:
    """Return the cached base root for (suite, mirror, packages), building it with debootstrap if needed."""
    cache_dir.mkdir(parents=True, exist_ok=True)
    root = cache_dir / f"{suite}-{base_key(suite, mirror, packages)}"
    marker = root / ".stapdoctor-base-ok"
    if marker.exists():
        return root
    with open(cache_dir / f".{root.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another test session may be building the same base
        if marker.exists():
            return root
        tmp = cache_dir / f"{root.name}.tmp{os.getpid()}"
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.rmtree(root, ignore_errors=True)
        started = time.monotonic()
        _run(["debootstrap", "--variant=minbase", "--include=" + ",".join(packages), suite, str(tmp), mirror],
             timeout=1800)
        _finalize_base(tmp, suite)
        tmp.rename(root)
        marker.write_text(json.dumps({"seconds": round(time.monotonic() - started, 1), "packages": list(packages)}))
    return root


# -- hosts ----------------------------------------------------------------------------------------

@dataclass(frozen=True)
class HostSpec:
    """What one host is made of when the hosts of a fleet differ (see :func:`bring_up_hosts`).

    ``base``: its lower root (default: the bookworm base); ``files``: absolute path -> content written
    into its upper layer before sshd starts (an os-release/lsb-release overlay, repository files, keys);
    ``remove``: paths deleted from its view (e.g. /etc/debian_version on a Fedora stand-in);
    ``python``: the interpreter Ansible uses there; ``apt_proxy``: point apt at the caching proxy.
    """

    __test__ = False
    name: str
    base: Path | None = None
    files: dict = field(default_factory=dict)
    remove: tuple[str, ...] = ()
    python: str = "/usr/bin/python3"
    apt_proxy: bool = True


@dataclass
class TestHost:
    __test__ = False  # not a pytest test class
    name: str
    address: str
    netns: str
    veth: str
    merged: Path
    upper: Path
    work: Path
    log_path: Path
    proc: subprocess.Popen | None = None
    mounted: bool = False
    spec: HostSpec | None = None


@dataclass
class Fleet:
    """The running hosts plus everything a client needs to reach them."""

    hosts: list[TestHost]
    workdir: Path
    key_file: Path
    known_hosts: Path
    ssh_config: Path
    gateway: str
    proxy: AptProxy | None = None
    timings: dict[str, float] = field(default_factory=dict)

    def ssh_argv(self, host: TestHost | str) -> list[str]:
        name = host if isinstance(host, str) else host.name
        return ["ssh", "-F", str(self.ssh_config), "-o", "BatchMode=yes", name]

    def ssh(self, host: TestHost | str, *argv: str, check: bool = True, timeout: float = 600) -> subprocess.CompletedProcess:
        """Run argv on a host over SSH (the remote shell sees a quoted command line)."""
        return subprocess.run(self.ssh_argv(host) + ["--", shlex.join(argv)], text=True, capture_output=True,
                              check=check, timeout=timeout)

    def host(self, name: str) -> TestHost:
        return next(h for h in self.hosts if h.name == name)

    def ansible_host_vars(self) -> dict[str, dict]:
        common = (f"-o UserKnownHostsFile={self.known_hosts} -o StrictHostKeyChecking=yes "
                  "-o IdentitiesOnly=yes -o ControlMaster=no")
        return {
            h.name: {
                "ansible_host": h.address,
                "ansible_user": "root",
                "ansible_ssh_private_key_file": str(self.key_file),
                "ansible_ssh_common_args": common,
                "ansible_python_interpreter": h.spec.python if h.spec else "/usr/bin/python3",
            }
            for h in self.hosts
        }

    def write_inventory(self, path: Path, group: str = "stap_hosts", group_vars: dict | None = None,
                        host_vars: dict[str, dict] | None = None) -> Path:
        """Write a YAML (JSON-syntax) inventory with every host in ``group``."""
        hosts = self.ansible_host_vars()
        for name, extra in (host_vars or {}).items():
            hosts[name].update(extra)
        inv = {"all": {"children": {group: {"hosts": hosts, "vars": group_vars or {}}}}}
        path.write_text(json.dumps(inv, indent=2) + "\n")
        return path


def _free_subnet(workdir: Path) -> str:
    """Pick a /24 no bridge uses and no live session has reserved, and reserve it (workdir/subnet).

    Sessions run side by side (pytest-xdist workers: the Ansible tier and the QEMU tier's builder), and
    the bridge gets its address only later: the lock and the reservation keep two from taking one subnet."""
    with open(workdir.parent / ".subnets.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        used = _run(["ip", "-4", "-o", "addr", "show"]).stdout
        reserved = set()
        for f in workdir.parent.glob("*/subnet"):
            try:
                pid, prefix = f.read_text().split()
            except (OSError, ValueError):
                continue
            if _pid_alive(int(pid)):
                reserved.add(prefix)
        for third in range(200, 256):
            prefix = f"10.213.{third}"
            if f" {prefix}." not in used and prefix not in reserved:
                (workdir / "subnet").write_text(f"{os.getpid()} {prefix}\n")
                return prefix
    raise TestHostError("no free 10.213.x.0/24 subnet for test hosts")


def _wait_for_port(address: str, port: int, proc: subprocess.Popen, log_path: Path, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise TestHostError(f"sshd on {address} exited ({proc.returncode}): {log_path.read_text()[-1500:]}")
        with contextlib.suppress(OSError), socket.create_connection((address, port), timeout=1):
            return
        time.sleep(0.1)
    raise TestHostError(f"sshd on {address} did not listen within {timeout}s")


def _apply_spec(m: Path, spec: HostSpec, gateway: str) -> None:
    """Write the spec's files into the merged root (replacing symlinks such as /etc/os-release)."""
    for path in spec.remove:
        target = m / path.lstrip("/")
        if target.is_symlink() or target.is_file():
            target.unlink()
    for path, content in spec.files.items():
        if callable(content):
            content = content(gateway)
        target = m / str(path).lstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        if target.is_symlink():
            target.unlink()
        if isinstance(content, bytes):
            target.write_bytes(content)
        else:
            target.write_text(content)


def _start_host(host: TestHost, base: Path, bridge: str, gateway_prefix: str, pubkey: str) -> str:
    for d in (host.upper, host.work, host.merged):
        d.mkdir(parents=True, exist_ok=True)
    _run(["mount", "-t", "overlay", "overlay", "-o",
          f"lowerdir={base},upperdir={host.upper},workdir={host.work}", str(host.merged)])
    host.mounted = True
    m = host.merged
    if host.spec is not None:
        _apply_spec(m, host.spec, f"{gateway_prefix}.1")
    (m / "etc/hostname").write_text(host.name + "\n")
    (m / "etc/hosts").write_text(f"127.0.0.1 localhost\n{host.address} {host.name}\n")
    # A fresh host's package lists are as old as the base: make them look stale, so apt (and Ansible's
    # apt module with cache_valid_time) updates before installing, as on a host that was never updated.
    os.utime(m / "var/lib/apt/lists", (0, 0))
    if host.spec is None or host.spec.apt_proxy:
        # The gateway itself (local test archives) is reached directly, everything else via the proxy.
        (m / "etc/apt/apt.conf.d/01stapdoctor-proxy").write_text(
            f'Acquire::http::Proxy "http://{gateway_prefix}.1:3142/";\n'
            f'Acquire::http::Proxy::{gateway_prefix}.1 "DIRECT";\n')
    auth = m / "root/.ssh/authorized_keys"
    auth.parent.mkdir(mode=0o700, exist_ok=True)
    auth.write_text(pubkey)
    auth.chmod(0o600)
    (m / "etc/ssh/stapdoctor_sshd_config").write_text(SSHD_CONFIG.format(address=host.address))
    hostkey = m / "etc/ssh/ssh_host_ed25519_key"
    _run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", f"root@{host.name}", "-f", str(hostkey)])

    _run(["ip", "netns", "add", host.netns])
    _run(["ip", "link", "add", host.veth, "type", "veth", "peer", "name", "eth0", "netns", host.netns])
    _run(["ip", "link", "set", host.veth, "master", bridge, "up"])
    _run(["ip", "-n", host.netns, "addr", "add", f"{host.address}/24", "dev", "eth0"])
    _run(["ip", "-n", host.netns, "link", "set", "eth0", "up"])
    _run(["ip", "-n", host.netns, "link", "set", "lo", "up"])

    logf = open(host.log_path, "w")
    host.proc = subprocess.Popen(
        ["ip", "netns", "exec", host.netns, "unshare", "--mount", "--uts", "--pid", "--fork", "--kill-child",
         "--", "/bin/sh", "-c", _INIT_SCRIPT, "sh", host.name, str(m)],
        stdin=subprocess.DEVNULL, stdout=logf, stderr=subprocess.STDOUT, start_new_session=True,
    )
    logf.close()
    _wait_for_port(host.address, 22, host.proc, host.log_path)
    pub = hostkey.with_name("ssh_host_ed25519_key.pub").read_text().split()
    return f"{host.address} {pub[0]} {pub[1]}\n"


def _stop_host(host: TestHost) -> list[str]:
    problems = []
    if host.proc is not None and host.proc.poll() is None:
        # unshare --fork ignores SIGTERM while it waits; SIGKILL it and --kill-child kills the namespace's
        # init, and with the init every process of the host's PID namespace.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(host.proc.pid, signal.SIGKILL)
        host.proc.wait(timeout=30)
    if host.mounted:
        for _ in range(20):
            if subprocess.run(["umount", str(host.merged)], capture_output=True).returncode == 0:
                host.mounted = False
                break
            time.sleep(0.25)
        else:
            _quiet(["umount", "-l", str(host.merged)])
            problems.append(f"{host.name}: overlay was busy, lazily unmounted")
            host.mounted = False
    _quiet(["ip", "netns", "delete", host.netns])
    _quiet(["ip", "link", "delete", host.veth])
    return problems


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def reap_stale_runs(run_dir: Path = RUN_DIR) -> list[str]:
    """Tear down what a killed test session left (its sshd, mounts, netns, bridge, files).

    Only runs whose owner process is gone are touched, so concurrent sessions are safe.
    """
    reaped = []
    if not run_dir.is_dir():
        return reaped
    for work in sorted(run_dir.iterdir()):
        try:
            owner = json.loads((work / "owner.json").read_text())
        except (OSError, ValueError):
            continue
        if _pid_alive(int(owner.get("pid", 0))):
            continue
        for h in owner.get("hosts", []):
            for pid in h.get("pids", []):
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(pid, signal.SIGKILL)
            _quiet(["umount", "-l", h["merged"]])
            _quiet(["ip", "netns", "delete", h["netns"]])
            _quiet(["ip", "link", "delete", h["veth"]])
        _quiet(["ip", "link", "delete", owner.get("bridge", "")])
        shutil.rmtree(work, ignore_errors=True)
        reaped.append(work.name)
    return reaped


def _write_owner(fleet: "Fleet", bridge: str) -> None:
    (fleet.workdir / "owner.json").write_text(json.dumps({
        "pid": os.getpid(), "bridge": bridge,
        "hosts": [{"merged": str(h.merged), "netns": h.netns, "veth": h.veth,
                   "pids": [h.proc.pid] if h.proc else []} for h in fleet.hosts],
    }))


@contextlib.contextmanager
def bring_up_hosts(
    n: int = 3,
    *,
    specs: Sequence[HostSpec] | None = None,
    base: Path | None = None,
    name_prefix: str = "stapdoctor-host",
    keep_dir: bool = False,
    apt_cache_dir: Path = APT_CACHE_DIR,
) -> Iterator[Fleet]:
    """Bring up ``n`` Debian test hosts (or one host per ``specs`` entry, each with its own root and
    overlay files); always tear them down (sshd, mounts, netns, veth, bridge)."""
    if os.geteuid() != 0:
        raise TestHostError("test hosts need root (mounts, network namespaces)")
    t0 = time.monotonic()
    for name in reap_stale_runs():
        log.warning("removed test hosts left by a killed session: %s", name)
    if specs is None:
        base = base or base_root()
    elif any(s.base is None for s in specs):
        base = base or base_root()
    t_base = time.monotonic() - t0
    run_id = secrets.token_hex(3)
    workdir = RUN_DIR / run_id
    workdir.mkdir(parents=True)
    prefix = _free_subnet(workdir)
    bridge = f"sdbr{run_id}"
    if specs is not None:
        n = len(specs)
    hosts = [
        TestHost(
            name=specs[i - 1].name if specs is not None else f"{name_prefix}{i}",
            address=f"{prefix}.{10 + i}",
            netns=f"stapdoctor-{run_id}-{i}",
            veth=f"sdv{run_id}{i}",
            merged=workdir / f"h{i}/root",
            upper=workdir / f"h{i}/upper",
            work=workdir / f"h{i}/work",
            log_path=workdir / f"h{i}/sshd.log",
            spec=specs[i - 1] if specs is not None else None,
        )
        for i in range(1, n + 1)
    ]
    key = workdir / "id_ed25519"
    known = workdir / "known_hosts"
    ssh_config = workdir / "ssh_config"
    fleet = Fleet(hosts=hosts, workdir=workdir, key_file=key, known_hosts=known, ssh_config=ssh_config,
                  gateway=f"{prefix}.1", timings={"base_root": round(t_base, 1)})
    bridge_up = False
    try:
        _run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "stapdoctor-tests", "-f", str(key)])
        pubkey = key.with_name("id_ed25519.pub").read_text()
        _run(["ip", "link", "add", bridge, "type", "bridge"])
        bridge_up = True
        _run(["ip", "addr", "add", f"{prefix}.1/24", "dev", bridge])
        _run(["ip", "link", "set", bridge, "up"])
        fleet.proxy = AptProxy(f"{prefix}.1", apt_cache_dir).__enter__()
        lines = []
        _write_owner(fleet, bridge)
        for h in hosts:
            (workdir / h.merged.parent.name).mkdir(exist_ok=True)
            try:
                lines.append(_start_host(h, (h.spec.base if h.spec and h.spec.base else base), bridge, prefix,
                                         pubkey))
            finally:
                _write_owner(fleet, bridge)
        known.write_text("".join(lines))
        ssh_config.write_text("".join(
            f"Host {h.name}\n  HostName {h.address}\n  User root\n  IdentityFile {key}\n  IdentitiesOnly yes\n"
            f"  UserKnownHostsFile {known}\n  StrictHostKeyChecking yes\n  BatchMode yes\n\n"
            for h in hosts
        ))
        fleet.timings["start_hosts"] = round(time.monotonic() - t0 - t_base, 1)
        yield fleet
    finally:
        problems = []
        for h in hosts:
            problems += _stop_host(h)
        if fleet.proxy is not None:
            fleet.proxy.__exit__(None, None, None)
        if bridge_up:
            _quiet(["ip", "link", "delete", bridge])
        if not keep_dir:
            shutil.rmtree(workdir, ignore_errors=True)
        for p in problems:
            log.warning("%s", p)
