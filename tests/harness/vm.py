"""QEMU VMs with real Debian kernels, for stapdoctor's end-to-end tests and for developers.

Whether stap really runs on a kernel cannot be faked: the e2e tier boots Debian's own kernels
under QEMU (TCG: KVM is not available on the CI machines) with a root made by debootstrap.

    python -m stapdoctor.testing.vm build bookworm      # build (or reuse) the cached image
    python -m stapdoctor.testing.vm boot unstable       # boot it, print the ssh command, wait
    python -m stapdoctor.testing.vm run bookworm -- uname -r

Images are cached outside the repository (``$STAPDOCTOR_VM_CACHE`` or /var/cache/stapdoctor/vm),
one directory per recipe hash, so a rerun on the same machine reuses them and a changed recipe
builds a new one. Each boot writes to a qcow2 overlay, so the cached image stays clean.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import hashlib
import json
import os
import shlex
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Iterator, Sequence

from rich.console import Console

# Bump when the build steps below change in a way the recipe data does not show.
HARNESS_IMAGE_VERSION = 4

console = Console(stderr=True, highlight=False)

BASE_PACKAGES = (
    "systemd-sysv", "udev", "kmod", "iproute2", "procps", "openssh-server", "python3",
    "ca-certificates", "less", "file",
)


_live_lock = threading.Lock()


@contextlib.contextmanager
def status(message: str) -> Iterator[None]:
    """A Rich status line, or a plain line when another thread's status line is showing (the e2e
    tier builds and boots two VMs at once; Rich allows one live display per console)."""
    if _live_lock.acquire(blocking=False):
        try:
            with console.status(message):
                yield
        finally:
            _live_lock.release()
    else:
        console.print(message)
        yield


@dataclasses.dataclass(frozen=True)
class Recipe:
    """What goes into one VM image; the image's cache key is a hash of this data."""

    name: str
    suite: str
    packages: tuple[str, ...]
    mirror: str = "http://deb.debian.org/debian"
    # Packages (templates; {krel} = the image's kernel release) fetched into a file: apt repository
    # inside the image instead of being installed: the VM has no network, so this stands in for the
    # Debian mirror when the playbooks install them over SSH.
    mirror_packages: tuple[str, ...] = ()
    disk_free_gb: int = 6
    description: str = ""

    def key(self) -> str:
        data = dataclasses.asdict(self) | {"harness": HARNESS_IMAGE_VERSION}
        return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:16]


RECIPES: dict[str, Recipe] = {
    r.name: r
    for r in (
        Recipe(
            name="bookworm",
            suite="bookworm",
            description="Debian 12 with its own kernel, headers and systemtap 4.8 (the prediction case)",
            packages=BASE_PACKAGES + (
                "linux-image-amd64", "linux-headers-amd64", "systemtap", "gcc", "make", "libc6-dev",
            ),
        ),
        Recipe(
            name="unstable",
            suite="unstable",
            description=("Debian unstable with kernel and systemtap but without headers/-dbg: the "
                         "playbooks install those from the in-image mirror (/srv/apt-mirror)"),
            packages=BASE_PACKAGES + (
                "linux-image-amd64", "systemtap", "gcc", "make", "libc6-dev", "python3-apt", "sudo",
                "nginx", "apache2-utils",
            ),
            mirror_packages=("linux-headers-{krel}", "linux-image-{krel}-dbg"),
            disk_free_gb=14,
        ),
    )
}

MIRROR_DIR_IN_IMAGE = "/srv/apt-mirror"


def cache_root() -> Path:
    return Path(os.environ.get("STAPDOCTOR_VM_CACHE", "/var/cache/stapdoctor/vm"))


#: Serial console lines that start a kernel crash report.
_CRASH_MARKERS = ("Kernel panic - not syncing", "Oops:", "BUG: unable to handle", "general protection fault",
                  "kernel BUG at")


class VMError(RuntimeError):
    """A harness step failed; the message names the step and carries the useful output."""


# ───────────────────────────── image building ─────────────────────────────


@dataclasses.dataclass
class Image:
    """A built image: raw ext4 disk plus the kernel and initrd taken from the root's /boot."""

    recipe: Recipe
    dir: Path

    @property
    def meta(self) -> dict:
        return json.loads((self.dir / "meta.json").read_text())

    @property
    def disk(self) -> Path:
        return self.dir / "disk.raw"

    @property
    def root(self) -> Path:
        """The debootstrapped tree the disk was made from (kept for chroot work on the host)."""
        return self.dir / "root"

    @property
    def kernel(self) -> Path:
        return self.dir / "vmlinuz"

    @property
    def initrd(self) -> Path:
        return self.dir / "initrd.img"

    @property
    def kernel_release(self) -> str:
        return self.meta["kernel_release"]

    @property
    def ssh_key(self) -> Path:
        return ssh_key()


def ssh_key() -> Path:
    """One harness key pair, shared by all images in the cache."""
    key = cache_root() / "id_ed25519"
    if not key.exists():
        key.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "stapdoctor-vm",
                        "-f", str(key)], check=True)
    return key


class _Steps:
    """Runs build commands with a Rich status line, logs their output, reports each step's time."""

    def __init__(self, log: Path, label: str):
        self.log = log
        self.label = label
        self.times: dict[str, float] = {}

    @contextlib.contextmanager
    def step(self, what: str) -> Iterator[None]:
        t0 = time.monotonic()
        with status(f"[bold]{self.label}[/]: {what} …"):
            yield
        dt = time.monotonic() - t0
        self.times[what] = round(dt, 1)
        console.print(f"  [green]✓[/] {self.label}: {what} [dim]({dt:.0f} s)[/]")

    def run(self, argv: Sequence[str], *, env: dict | None = None, input: str | None = None) -> str:
        with self.log.open("a") as fh:
            fh.write(f"\n$ {shlex.join(argv)}\n")
            fh.flush()
            p = subprocess.run(list(argv), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                               env=env, input=input)
            fh.write(p.stdout)
        if p.returncode != 0:
            tail = "\n".join(p.stdout.splitlines()[-25:])
            raise VMError(f"{self.label}: `{shlex.join(argv)}` exited {p.returncode} (log: {self.log})"
                          f"\n{tail}")
        return p.stdout


@contextlib.contextmanager
def _chroot_mounts(root: Path) -> Iterator[None]:
    """/proc, /sys and /dev inside the root for apt/dpkg maintainer scripts; always unmounted."""
    mounted: list[Path] = []
    try:
        for src, rel, args in (("proc", "proc", ["-t", "proc"]), ("sysfs", "sys", ["-t", "sysfs"]),
                               ("/dev", "dev", ["--bind"]), ("devpts", "dev/pts", ["-t", "devpts"])):
            target = root / rel
            target.mkdir(parents=True, exist_ok=True)
            subprocess.run(["mount", *args, src, str(target)], check=True)
            mounted.append(target)
        yield
    finally:
        for target in reversed(mounted):
            subprocess.run(["umount", "-l", str(target)], check=False)


CHROOT_ENV = {
    "PATH": "/usr/sbin:/usr/bin:/sbin:/bin",
    "DEBIAN_FRONTEND": "noninteractive",
    "LANG": "C.UTF-8",
    "HOME": "/root",
}


def _write(path: Path, text: str, mode: int = 0o644) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(mode)


def _configure_root(root: Path, recipe: Recipe) -> None:
    """Make the tree bootable and reachable: fstab, network, sshd with the harness key, serial getty."""
    _write(root / "etc/hostname", f"sd-{recipe.name}\n")
    _write(root / "etc/hosts", f"127.0.0.1 localhost\n127.0.1.1 sd-{recipe.name}\n")
    _write(root / "etc/fstab", "/dev/vda / ext4 rw,errors=remount-ro 0 1\n")
    # QEMU user networking: the guest is always 10.0.2.15, gateway .2; static is faster than DHCP.
    _write(root / "etc/systemd/network/10-qemu.network",
           "[Match]\nName=e*\n\n[Network]\nAddress=10.0.2.15/24\nGateway=10.0.2.2\nDNS=10.0.2.3\n")
    _write(root / "etc/ssh/sshd_config.d/stapdoctor-vm.conf",
           "PermitRootLogin prohibit-password\nUseDNS no\nPasswordAuthentication no\n")
    pub = ssh_key().with_suffix(".pub").read_text()
    _write(root / "root/.ssh/authorized_keys", pub, 0o600)
    (root / "root/.ssh").chmod(0o700)
    wants = root / "etc/systemd/system/multi-user.target.wants"
    wants.mkdir(parents=True, exist_ok=True)
    links = {
        wants / "systemd-networkd.service": "/lib/systemd/system/systemd-networkd.service",
        root / "etc/systemd/system/getty.target.wants/serial-getty@ttyS0.service":
            "/lib/systemd/system/serial-getty@.service",
    }
    # Timers that would compete with the tests for the VM's (emulated, slow) CPU.
    for unit in ("apt-daily.timer", "apt-daily-upgrade.timer", "man-db.timer", "e2scrub_all.timer",
                 "fstrim.timer", "dpkg-db-backup.timer", "systemd-tmpfiles-clean.timer"):
        links[root / "etc/systemd/system" / unit] = "/dev/null"
    for link, target in links.items():
        link.parent.mkdir(parents=True, exist_ok=True)
        if link.is_symlink() or link.exists():
            link.unlink()
        link.symlink_to(target)
    # Serial console login as root without a password, for debugging a VM by hand.
    subprocess.run(["chroot", str(root), "passwd", "-d", "root"], check=True, env=CHROOT_ENV,
                   stdout=subprocess.DEVNULL)


def build(name_or_recipe: str | Recipe, *, rebuild: bool = False) -> Image:
    """Return the cached image for a recipe, building it first if needed (cold build: minutes)."""
    recipe = RECIPES[name_or_recipe] if isinstance(name_or_recipe, str) else name_or_recipe
    final = cache_root() / f"{recipe.name}-{recipe.key()}"
    cache_root().mkdir(parents=True, exist_ok=True)
    lock_path = cache_root() / f".{recipe.name}.lock"
    with lock_path.open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if rebuild and final.exists():
            shutil.rmtree(final)
        if (final / "meta.json").exists():
            return Image(recipe, final)
        return _build_locked(recipe, final)


def _build_locked(recipe: Recipe, final: Path) -> Image:
    work = final.with_name(final.name + ".tmp")
    if work.exists():
        # A half-finished build from an interrupted run: nothing mounted survives a reboot, but an
        # interrupted process may have left mounts behind.
        for rel in ("dev/pts", "dev", "sys", "proc"):
            subprocess.run(["umount", "-l", str(work / "root" / rel)], stderr=subprocess.DEVNULL)
        shutil.rmtree(work)
    work.mkdir(parents=True)
    root = work / "root"
    steps = _Steps(work / "build.log", f"image {recipe.name}")
    t_start = time.monotonic()
    console.print(f"[bold]Building VM image[/] {recipe.name} ({recipe.suite}) in {final}")

    with steps.step(f"debootstrap {recipe.suite}"):
        steps.run(["debootstrap", "--variant=minbase", "--include=apt-utils", recipe.suite, str(root),
                   recipe.mirror])
    # The machines' mirror can serve a Release file older than its Valid-Until (seen with unstable):
    # the content is still what the suite holds, so do not let apt refuse it.
    _write(root / "etc/apt/apt.conf.d/90stapdoctor-vm", 'Acquire::Check-Valid-Until "false";\n')
    # Debian unstable builds its initrd with dracut, which in a chroot would size it for the build
    # host ("hostonly") and leave out the VM's virtio disk: make it generic, with the virtio drivers.
    # (initramfs-tools, Debian 12's default, includes them anyway with MODULES=most.)
    _write(root / "etc/dracut.conf.d/90-stapdoctor-vm.conf",
           'hostonly="no"\nadd_drivers+=" virtio_blk virtio_pci virtio_net ext4 "\n')
    # No daemons may start inside the build chroot (sshd, nginx would run on the host).
    _write(root / "usr/sbin/policy-rc.d", "#!/bin/sh\nexit 101\n", 0o755)
    chroot = ["chroot", str(root)]
    with _chroot_mounts(root):
        with steps.step(f"apt-get install {len(recipe.packages)} packages"):
            steps.run([*chroot, "apt-get", "update", "-q"], env=CHROOT_ENV)
            steps.run([*chroot, "apt-get", "install", "-y", "-q", "--no-install-recommends",
                       "-o", "Dpkg::Options::=--force-unsafe-io", *recipe.packages], env=CHROOT_ENV)
        vmlinuz = sorted((root / "boot").glob("vmlinuz-*"))
        if not vmlinuz:
            raise VMError(f"image {recipe.name}: no kernel in {root}/boot after installing packages")
        krel = vmlinuz[-1].name.removeprefix("vmlinuz-")
        if not (root / f"boot/initrd.img-{krel}").exists():
            with steps.step("update-initramfs"):
                steps.run([*chroot, "update-initramfs", "-c", "-k", krel], env=CHROOT_ENV)
        steps.run([*chroot, "apt-get", "clean"], env=CHROOT_ENV)
        if recipe.mirror_packages:
            with steps.step("in-image apt mirror"):
                _make_mirror(steps, root, recipe, krel)
        stap_v = subprocess.run([*chroot, "stap", "-V"], capture_output=True, text=True, env=CHROOT_ENV)
        pkgs = subprocess.run([*chroot, "dpkg-query", "-W", "-f", "${Package}\t${Version}\n"],
                              capture_output=True, text=True, env=CHROOT_ENV, check=True).stdout
    (root / "usr/sbin/policy-rc.d").unlink()
    _configure_root(root, recipe)
    shutil.copy2(vmlinuz[-1], work / "vmlinuz")
    shutil.copy2(root / f"boot/initrd.img-{krel}", work / "initrd.img")

    with steps.step("mkfs.ext4 -d"):
        used = int(subprocess.run(["du", "-sxb", str(root)], capture_output=True, text=True,
                                  check=True).stdout.split()[0])
        size = int(used * 1.3) + recipe.disk_free_gb * 2**30
        steps.run(["truncate", "-s", str(size), str(work / "disk.raw")])
        steps.run(["mkfs.ext4", "-q", "-F", "-L", "root", "-d", str(root), str(work / "disk.raw")])

    (work / "packages.txt").write_text(pkgs)
    meta = {
        "recipe": dataclasses.asdict(recipe),
        "key": recipe.key(),
        "kernel_release": krel,
        "stap_version": (stap_v.stdout + stap_v.stderr).splitlines()[0] if stap_v.returncode == 0 else None,
        "built": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "build_seconds": round(time.monotonic() - t_start, 1),
        "step_seconds": steps.times,
    }
    (work / "meta.json").write_text(json.dumps(meta, indent=2) + "\n")
    work.rename(final)
    console.print(f"[bold green]Image {recipe.name} ready[/]: kernel {krel}, "
                  f"{meta['stap_version']}, built in {meta['build_seconds']:.0f} s")
    return Image(recipe, final)


def _make_mirror(steps: _Steps, root: Path, recipe: Recipe, krel: str) -> None:
    """Download (not install) the mirror packages and their missing dependencies into a file: repo."""
    names = [p.format(krel=krel) for p in recipe.mirror_packages]
    steps.run(["chroot", str(root), "apt-get", "install", "-y", "-q", "--no-install-recommends",
               "--download-only", *names], env=CHROOT_ENV)
    mirror = root / MIRROR_DIR_IN_IMAGE.lstrip("/")
    mirror.mkdir(parents=True, exist_ok=True)
    archives = root / "var/cache/apt/archives"
    for deb in archives.glob("*.deb"):
        shutil.move(str(deb), mirror / deb.name)
    packages = subprocess.run(["dpkg-scanpackages", "-m", "."], cwd=mirror, capture_output=True,
                              text=True, check=True).stdout
    (mirror / "Packages").write_text(packages)
    # The VM has no network: its only apt source is this repository.
    _write(root / "etc/apt/sources.list", "")
    for f in (root / "etc/apt/sources.list.d").glob("*"):
        f.unlink()
    _write(root / "etc/apt/sources.list.d/stapdoctor-mirror.list",
           f"deb [trusted=yes] file:{MIRROR_DIR_IN_IMAGE} ./\n")
    for f in (root / "var/lib/apt/lists").glob("*"):
        if f.is_file():
            f.unlink()
    steps.run(["chroot", str(root), "apt-get", "update", "-q"], env=CHROOT_ENV)


# ───────────────────────────── booting and talking to a VM ─────────────────────────────


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class VM:
    """A booted image: ``with VM(image) as vm: vm.run("uname -r")``. Always powered off on exit.

    The serial console goes to ``serial.log`` in ``log_dir`` (kept after the VM ends: CI keeps
    it as an artefact on failure).

    The CPU model is qemu64 because TCG emulates a baseline x86-64 faster: glibc and gcc then use SSE2
    code paths instead of the AVX2 ones a Skylake model offers. Measured on these 2-core machines, two
    Debian 12 VMs side by side (1 vCPU each, started together): 4 kbuild compiles of a module took
    110 s on qemu64 and 144 s on Skylake-Server-v4, a gzip round trip of 200 MB 9.7 s against 15.2 s.
    Debian unstable's 7.2 kernel boots on qemu64 (`-cpu max` hangs it)."""

    def __init__(self, image: Image, *, log_dir: Path | str | None = None, memory: str = "4G",
                 smp: int = 2, cpu: str = "qemu64", boot_timeout: float = 600,
                 extra_append: str = ""):
        self.image = image
        self.log_dir = Path(log_dir) if log_dir else Path(tempfile.mkdtemp(prefix=f"vm-{image.recipe.name}-"))
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.serial_log = self.log_dir / "serial.log"
        self.memory, self.smp, self.cpu = memory, smp, cpu
        self.boot_timeout = boot_timeout
        self.extra_append = extra_append
        self.port = 0
        self.proc: subprocess.Popen | None = None
        self._workdir: Path | None = None
        self.boot_seconds: float | None = None

    # -- lifecycle --
    def __enter__(self) -> "VM":
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def start(self) -> None:
        self._workdir = Path(tempfile.mkdtemp(prefix="overlay-", dir=self.image.dir.parent))
        overlay = self._workdir / "overlay.qcow2"
        subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", "-F", "raw", "-b",
                        str(self.image.disk), str(overlay)], check=True)
        self.port = _free_port()
        append = "root=/dev/vda rw console=ttyS0 panic=-1 net.ifnames=0 " + self.extra_append
        argv = [
            "qemu-system-x86_64", "-machine", "q35", "-accel", "tcg", "-cpu", self.cpu,
            "-m", self.memory, "-smp", str(self.smp),
            "-display", "none", "-monitor", "none", "-serial", f"file:{self.serial_log}",
            "-kernel", str(self.image.kernel), "-initrd", str(self.image.initrd),
            "-append", append.strip(), "-no-reboot",
            # cache=unsafe: the overlay is thrown away after the boot, so the guest's fsyncs (dpkg
            # does one per file) need not reach the host's disk.
            "-drive", f"file={overlay},if=virtio,format=qcow2,cache=unsafe",
            "-netdev", f"user,id=n0,restrict=on,hostfwd=tcp:127.0.0.1:{self.port}-:22",
            "-device", "virtio-net-pci,netdev=n0",
        ]
        (self.log_dir / "qemu-cmdline.txt").write_text(shlex.join(argv) + "\n")
        t0 = time.monotonic()
        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL,
                                     stdout=(self.log_dir / "qemu.out").open("w"),
                                     stderr=subprocess.STDOUT, start_new_session=True)
        try:
            with status(f"[bold]VM {self.image.recipe.name}[/]: booting "
                                f"{self.image.kernel_release}, waiting for SSH on port {self.port} …"):
                self._wait_ssh(t0)
        except BaseException:
            self.stop()
            raise
        self.boot_seconds = round(time.monotonic() - t0, 1)
        console.print(f"  [green]✓[/] VM {self.image.recipe.name}: SSH up after {self.boot_seconds:.0f} s")

    def _wait_ssh(self, t0: float) -> None:
        while True:
            if self.proc.poll() is not None:
                raise VMError(f"QEMU exited ({self.proc.returncode}) before SSH came up\n"
                              + self.serial_tail())
            if time.monotonic() - t0 > self.boot_timeout:
                raise VMError(f"no SSH after {self.boot_timeout:.0f} s\n" + self.serial_tail())
            try:
                p = subprocess.run(self.ssh_argv("true", connect_timeout=5), capture_output=True,
                                   timeout=30)
                if p.returncode == 0:
                    return
            except subprocess.TimeoutExpired:
                pass
            time.sleep(2)

    def stop(self) -> None:
        """`poweroff -f` over SSH, then make sure QEMU is gone; the overlay is removed."""
        if self.proc and self.proc.poll() is None:
            with contextlib.suppress(Exception):
                subprocess.run(self.ssh_argv("sync; poweroff -f", connect_timeout=5),
                               capture_output=True, timeout=20)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.terminate()
                try:
                    self.proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait()
        if self._workdir:
            shutil.rmtree(self._workdir, ignore_errors=True)
            self._workdir = None

    def kernel_crash(self) -> str | None:
        """The guest kernel's panic or oops report from the serial log, or None.

        A panic takes the VM (and SSH) down with it; without this the next command would fail with
        "Connection refused" and hide the cause."""
        try:
            lines = self.serial_log.read_text(errors="replace").splitlines()
        except FileNotFoundError:
            return None
        start = next((i for i, l in enumerate(lines) if any(m in l for m in _CRASH_MARKERS)), None)
        if start is None:
            return None
        after = range(start, len(lines))
        end = next((i for i in after if "Kernel panic" in lines[i]),
                   next((i for i in after if "end trace" in lines[i]), min(len(lines) - 1, start + 40)))
        keep = [l for l in lines[start:end + 1] if not l.rstrip().endswith(("<TASK>", "</TASK>"))]
        return "\n".join(keep[:60])

    def _gone_error(self, what: str) -> VMError:
        crash = self.kernel_crash()
        state = (f"QEMU exited ({self.proc.returncode})" if self.proc and self.proc.poll() is not None
                 else "SSH failed")
        if crash:
            return VMError(f"{what}: the VM's kernel crashed ({state}); serial log {self.serial_log}:\n{crash}")
        return VMError(f"{what}: {state}\n{self.serial_tail()}")

    def serial_tail(self, lines: int = 40) -> str:
        try:
            text = self.serial_log.read_text(errors="replace")
        except FileNotFoundError:
            return "(no serial log)"
        return "--- serial console (tail) ---\n" + "\n".join(text.splitlines()[-lines:])

    # -- commands --
    def ssh_argv(self, command: str, *, connect_timeout: int = 10) -> list[str]:
        return ["ssh", *self.ssh_options(connect_timeout), "-p", str(self.port), "root@127.0.0.1", command]

    def ssh_options(self, connect_timeout: int = 10) -> list[str]:
        return ["-i", str(self.image.ssh_key), "-o", "StrictHostKeyChecking=no",
                "-o", "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR", "-o", "BatchMode=yes",
                "-o", f"ConnectTimeout={connect_timeout}", "-o", "ServerAliveInterval=15",
                "-o", "ServerAliveCountMax=8"]

    def run(self, command: str | Sequence[str], *, timeout: float = 600, check: bool = True,
            input: str | None = None) -> subprocess.CompletedProcess:
        """Run a command in the VM as root. A list is quoted word by word; a string is a shell line."""
        line = command if isinstance(command, str) else shlex.join(command)
        if self.proc is not None and self.proc.poll() is not None:
            raise self._gone_error(f"`{line}` not run: VM {self.image.recipe.name} is gone")
        try:
            p = subprocess.run(self.ssh_argv(line), capture_output=True, text=True, timeout=timeout,
                               input=input)
        except subprocess.TimeoutExpired as e:
            if self.kernel_crash():
                raise self._gone_error(f"`{line}` timed out") from e
            raise VMError(f"`{line}` timed out after {timeout:.0f} s in VM {self.image.recipe.name}") from e
        # 255: ssh itself failed (the connection dropped or was refused): say why if the kernel died.
        if p.returncode == 255 and self.kernel_crash():
            raise self._gone_error(f"`{line}` in VM {self.image.recipe.name}")
        if check and p.returncode != 0:
            raise VMError(f"`{line}` exited {p.returncode} in VM {self.image.recipe.name}\n"
                          f"stdout:\n{p.stdout[-3000:]}\nstderr:\n{p.stderr[-3000:]}")
        return p

    def copy_in(self, local: Path | str, remote: str, *, timeout: float = 300) -> None:
        """Copy a file or directory into the VM (remote: the destination path, or an existing
        directory to copy into). Directories go as one tar stream: scp's per-file round trips are
        slow under TCG."""
        local = Path(local)
        if not local.is_dir():
            self._scp([str(local)], f"root@127.0.0.1:{remote}", timeout)
            return
        target = remote.rstrip("/") + "/" + local.name if remote.endswith("/") else remote
        tar = subprocess.Popen(["tar", "-C", str(local), "-cf", "-", "."], stdout=subprocess.PIPE)
        try:
            p = subprocess.run(self.ssh_argv(shlex.join(["sh", "-c", 'mkdir -p "$1" && tar -C "$1" -xf -',
                                                         "sh", target])),
                               stdin=tar.stdout, capture_output=True, text=True, timeout=timeout)
        finally:
            tar.stdout.close()
            tar.wait()
        if p.returncode != 0 or tar.returncode != 0:
            raise VMError(f"copying {local} → {remote} failed: {p.stderr.strip()}")

    def copy_out(self, remote: str, local: Path | str, *, timeout: float = 300) -> None:
        self._scp([f"root@127.0.0.1:{remote}"], str(local), timeout)

    def _scp(self, sources: list[str], dest: str, timeout: float) -> None:
        argv = ["scp", "-q", "-r", *self.ssh_options(), "-P", str(self.port), *sources, dest]
        p = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
        if p.returncode != 0:
            raise VMError(f"scp {sources} → {dest} failed: {p.stderr.strip()}")

    def ansible_inventory(self, path: Path | str, group: str = "stap_hosts", **host_vars: str) -> Path:
        """An INI inventory that reaches this VM over its forwarded SSH port."""
        path = Path(path)
        hv = {
            "ansible_host": "127.0.0.1", "ansible_port": str(self.port), "ansible_user": "root",
            "ansible_ssh_private_key_file": str(self.image.ssh_key),
            "ansible_ssh_common_args": "-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null",
            "ansible_python_interpreter": "/usr/bin/python3",
        } | host_vars
        line = f"vm-{self.image.recipe.name} " + " ".join(f"{k}={shlex.quote(v)}" for k, v in hv.items())
        path.write_text(f"[{group}]\n{line}\n")
        return path


# ───────────────────────────── host chroot (cross-compiling) ─────────────────────────────


@contextlib.contextmanager
def devel_root(image: Image, extra_packages: Sequence[str] = (),
               packages: Sequence[str] | None = None) -> Iterator[Path]:
    """The image's root on the host with packages installed (default: the recipe's mirror packages;
    templates with {krel}), through an overlayfs (the image's root stays as built). Used to compile
    stap modules natively fast with `stap -p4 -r KREL` and run them in the VM with staprun."""
    upper_base = image.dir / "devel"
    upper, workd, merged = upper_base / "upper", upper_base / "work", upper_base / "merged"
    for d in (upper, workd, merged):
        d.mkdir(parents=True, exist_ok=True)
    subprocess.run(["mount", "-t", "overlay", "overlay", "-o",
                    f"lowerdir={image.root},upperdir={upper},workdir={workd}", str(merged)], check=True)
    try:
        with _chroot_mounts(merged):
            marker = upper_base / "installed.json"
            templates = image.recipe.mirror_packages if packages is None else packages
            names = [p.format(krel=image.kernel_release) for p in templates]
            names += list(extra_packages)
            if names and (not marker.exists() or json.loads(marker.read_text()) != names):
                steps = _Steps(upper_base / "devel.log", f"devel root {image.recipe.name}")
                with steps.step("install " + " ".join(names)):
                    if any(n.startswith("linux-image-") and n.endswith("-dbg") for n in names):
                        # As the debuginfo role does by default: the vmlinux DWARF without the per-module
                        # files (~1 GB written instead of 7.4 GB); `-d kernel` needs only the vmlinux.
                        _write(merged / "etc/dpkg/dpkg.cfg.d/stapdoctor-debuginfo",
                               "path-exclude=/usr/lib/debug/lib/modules/*/kernel/*\n")
                    _write(merged / "usr/sbin/policy-rc.d", "#!/bin/sh\nexit 101\n", 0o755)
                    steps.run(["chroot", str(merged), "apt-get", "install", "-y", "-q",
                               "-o", "Dpkg::Options::=--force-unsafe-io",
                               "--no-install-recommends", *names], env=CHROOT_ENV)
                    (merged / "usr/sbin/policy-rc.d").unlink()
                marker.write_text(json.dumps(names))
            yield merged
    finally:
        subprocess.run(["umount", "-l", str(merged)], check=False)


def chroot_run(root: Path, argv: Sequence[str], *, timeout: float = 1800, cwd: str = "/root") -> subprocess.CompletedProcess:
    """Run argv inside a chroot (no shell): used for host-side stap -p4 -r."""
    return subprocess.run(["chroot", str(root), "sh", "-c", 'cd "$1" && shift && exec "$@"', "sh", cwd,
                           *argv], capture_output=True, text=True, timeout=timeout, env=CHROOT_ENV)


# ───────────────────────────── CLI ─────────────────────────────


def main(argv: Sequence[str] | None = None) -> int:
    import argparse

    ap = argparse.ArgumentParser(prog="python -m stapdoctor.testing.vm",
                                 description="Build, boot and use stapdoctor's QEMU test VMs.")
    sub = ap.add_subparsers(dest="cmd", required=True)
    sub.add_parser("list", help="recipes and cached images")
    b = sub.add_parser("build", help="build (or reuse) an image")
    b.add_argument("recipe", choices=sorted(RECIPES))
    b.add_argument("--rebuild", action="store_true")
    o = sub.add_parser("boot", help="boot an image and wait (Ctrl-C powers it off)")
    o.add_argument("recipe", choices=sorted(RECIPES))
    o.add_argument("--log-dir")
    r = sub.add_parser("run", help="boot, run one command over SSH, power off")
    r.add_argument("recipe", choices=sorted(RECIPES))
    r.add_argument("command", nargs="+")
    args = ap.parse_args(argv)

    if os.geteuid() != 0 and args.cmd != "list":
        console.print("[red]error:[/] building and booting images needs root (debootstrap, chroot, mount)")
        return 2
    try:
        if args.cmd == "list":
            for name, rec in sorted(RECIPES.items()):
                d = cache_root() / f"{name}-{rec.key()}"
                state = (f"cached: kernel {Image(rec, d).kernel_release}" if (d / "meta.json").exists()
                         else "not built")
                console.print(f"[bold]{name}[/] ({rec.suite}) {state} — {rec.description}")
            return 0
        image = build(args.recipe, rebuild=getattr(args, "rebuild", False))
        if args.cmd == "build":
            console.print(json.dumps(image.meta, indent=2))
            return 0
        if args.cmd == "boot":
            with VM(image, log_dir=args.log_dir) as vm:
                console.print(f"ssh command: {shlex.join(vm.ssh_argv('')[:-1])}\n"
                              f"serial log: {vm.serial_log}\nCtrl-C powers the VM off.")
                with contextlib.suppress(KeyboardInterrupt):
                    vm.proc.wait()
            return 0
        with VM(image) as vm:
            p = vm.run(shlex.join(args.command), check=False, timeout=3600)
            sys.stdout.write(p.stdout)
            sys.stderr.write(p.stderr)
            return p.returncode
    except VMError as e:
        console.print(f"[red]error:[/] {e}")
        return 1


if __name__ == "__main__":
    sys.exit(main())
