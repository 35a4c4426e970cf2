"""Fixtures for the e2e tier: cached VM images, booted VMs with stapdoctor installed inside.

Budget: the tier must fit 30 minutes on a 2-core machine without KVM, and nearly all of its time is
emulated CPU work. So the work that does not depend on the unstable VM runs beside it, in
background threads:
* the whole Debian 12 prediction run (build/boot/check/--deep/power off; its tests only assert);
* compiling the nginx profile's stap module on the host, in a chroot of the unstable image
  (`stapdoctor profile --compile-only -r KREL`), for the VM to run with `--module`.
They start once the unstable VM is up. The unstable VM's steps run in the test functions, in file
order (they build on each other); the Debian 12 tests are ordered last and wait for their job.

VM logs (serial console, stap output, command transcripts) go to an artefact directory per VM
($STAPDOCTOR_E2E_ARTEFACTS or <repo>/.artefacts/e2e/<name>); removed when all tests using that VM
passed, kept when one failed, for CI to upload.
"""

from __future__ import annotations

import concurrent.futures
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from stapdoctor.testing import vm as vmh
from stapdoctor.testing.vmtools import (TIMES, artefacts_dir, build_pythonpath_tree, install_stapdoctor,
                                        install_stapdoctor_in_root, record_time, save, times_file)

REPO = Path(__file__).resolve().parents[2]
ARTEFACTS = artefacts_dir(REPO)
#: VM names whose tests failed: their artefacts are kept.
FAILED: set[str] = set()
#: The host-compiled module for the nginx and idle profiles (path inside the devel root and the VM).
NGINX_MODULE = "/root/nginx-profile.ko"
#: busy.c's profile module on Debian 12, compiled by the systemtap the playbooks built.
BUSY_MODULE = "/root/busy-profile.ko"
BUSY_C = REPO / "tests/data/e2e/busy.c"
#: The systemtap_build role's controller cache for the e2e tier: kept between runs like the VM images, so
#: a warm run installs the verified build without compiling (a cold one compiles it on the builder).
SYSTEMTAP_BUILDS = Path(os.environ.get("STAPDOCTOR_SYSTEMTAP_BUILDS", "/var/cache/stapdoctor/systemtap-builds"))
BUILDER = "stapdoctor-builder1"


def pytest_sessionfinish(session):
    """Step times for tests/conftest.py's terminal summary (this may be an xdist worker)."""
    if TIMES:
        times_file(REPO).parent.mkdir(parents=True, exist_ok=True)
        times_file(REPO).write_text(json.dumps(TIMES, indent=1) + "\n")


def pytest_collection_modifyitems(session, config, items):
    """The Debian 12 tests only wait for their background run: put them last, so the unstable VM's
    tests run meanwhile instead of after it."""
    bookworm = [i for i in items if getattr(i.module, "VM_NAME", None) == "bookworm"]
    if bookworm:
        rest = [i for i in items if i not in bookworm]
        items[:] = rest + bookworm


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    if outcome.get_result().failed and getattr(item.module, "VM_NAME", None):
        FAILED.add(item.module.VM_NAME)


@pytest.fixture(scope="session")
def require_root():
    if os.geteuid() != 0:
        pytest.skip("e2e VMs need root (debootstrap, chroot, mount); CI runs as root")


@pytest.fixture(scope="session")
def stapdoctor_lib(tmp_path_factory, require_root) -> Path:
    t0 = time.monotonic()
    lib = build_pythonpath_tree(REPO, tmp_path_factory.mktemp("vmlib") / "lib")
    record_time("stapdoctor PYTHONPATH tree for the VMs", time.monotonic() - t0)
    return lib


def _image(name: str) -> vmh.Image:
    t0 = time.monotonic()
    img = vmh.build(name)
    record_time(f"image {name} (build or cache hit)", time.monotonic() - t0)
    return img


def _logs(name: str) -> Path:
    logs = ARTEFACTS / name
    shutil.rmtree(logs, ignore_errors=True)
    logs.mkdir(parents=True, exist_ok=True)
    return logs


def _boot(image: vmh.Image, name: str, lib: Path, registry: list[vmh.VM] | None = None, **vm_args) -> vmh.VM:
    machine = vmh.VM(image, log_dir=_logs(name), **vm_args)
    if registry is not None:
        registry.append(machine)
    machine.start()
    record_time(f"{name}: boot to SSH", machine.boot_seconds)
    try:
        t0 = time.monotonic()
        install_stapdoctor(machine, lib)
        record_time(f"{name}: install stapdoctor in the VM", time.monotonic() - t0)
    except BaseException:
        machine.stop()
        raise
    return machine


def _collect_outputs(machine: vmh.VM) -> None:
    """Best effort: the profiler's output directories (stap.out, stap.err, …) and the journal."""
    logs = machine.log_dir
    try:
        dirs = machine.run("ls -d /root/prof-* 2>/dev/null", check=False, timeout=60).stdout.split()
        for d in dirs:
            machine.copy_out(d, logs, timeout=300)
        j = machine.run("journalctl -b --no-pager | tail -n 2000", check=False, timeout=120)
        (logs / "journal.txt").write_text(j.stdout)
    except Exception as e:  # the VM may be what failed
        (logs / "collect-error.txt").write_text(f"{type(e).__name__}: {e}\n")


# ───────────────────────── background work (threads beside the unstable VM) ─────────────────────────


def _bookworm_run(lib: Path, machines: list[vmh.VM]) -> dict[str, subprocess.CompletedProcess]:
    """Issue step 1 on Debian 12: boot, `stap -V`, `check --json`, `check --deep`; always power off.
    The VM is appended to ``machines`` so an interrupted session can power it off from outside."""
    image = _image("bookworm")
    # One vCPU: the host's other core is the unstable VM's.
    machine = _boot(image, "bookworm", lib, smp=1, registry=machines)
    out: dict[str, subprocess.CompletedProcess] = {}
    try:
        out["stap -V"] = machine.run("stap -V 2>&1")
        out["uname -v"] = machine.run("uname -v")
        for name, argv, timeout in (("check-json", "stapdoctor check --json", 300),
                                    ("check-deep", "stapdoctor check --deep", 2400)):
            t0 = time.monotonic()
            out[name] = p = machine.run(argv, check=False, timeout=timeout)
            record_time(f"bookworm: {argv}" + (" (stap pass 4 in the VM)" if "deep" in name else ""),
                        time.monotonic() - t0)
            save(machine, name, p)
        _bookworm_fix(machine, image, lib, out)
        return out
    finally:
        machine.stop()


def _timed_run(machine: vmh.VM, out: dict, name: str, argv, label: str, timeout: float) -> subprocess.CompletedProcess:
    t0 = time.monotonic()
    out[name] = p = machine.run(argv, check=False, timeout=timeout)
    record_time(label, time.monotonic() - t0)
    save(machine, name, p)
    return p


def _bookworm_fix(machine: vmh.VM, image: vmh.Image, lib: Path, out: dict) -> None:
    """The seed's day on the failing kernel, fixed by the product: site.yml (systemtap_install=auto) over a
    Debian 12 test host (the builder, native speed) and the VM; then check, check --deep and a profile in
    the VM with the built stap. Results go into ``out`` (fix-*) for the tests to assert on."""
    from stapdoctor.testing import gitserve, testhosts

    work = Path(tempfile.mkdtemp(prefix="stapdoctor-e2e-fix."))  # 0700
    try:
        t0 = time.monotonic()
        with testhosts.bring_up_hosts(1, name_prefix="stapdoctor-builder") as fleet:
            record_time("bookworm fix: builder test host up", time.monotonic() - t0)
            gitserve.mirror_bundle(work / "git/systemtap.git")
            out["fix-tags"] = gitserve.tag_commits(work / "git/systemtap.git")
            with gitserve.git_daemon(work / "git", fleet.gateway) as url:
                hosts = fleet.ansible_host_vars()
                hosts["vm-bookworm"] = {
                    "ansible_host": "127.0.0.1", "ansible_port": machine.port, "ansible_user": "root",
                    "ansible_ssh_private_key_file": str(image.ssh_key),
                    "ansible_ssh_common_args": "-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null",
                    "ansible_python_interpreter": "/usr/bin/python3"}
                inventory = work / "inventory.json"
                inventory.write_text(json.dumps({"all": {"children": {"stap_hosts": {"hosts": hosts, "vars": {
                    "systemtap_install": "auto",
                    "systemtap_git_url": f"{url}/systemtap.git",
                    "systemtap_controller_cache": str(SYSTEMTAP_BUILDS),
                    "systemtap_build_on": BUILDER,
                    "systemtap_build_poll": 10,
                }}}}}))
                env = os.environ | {"ANSIBLE_NOCOLOR": "1", "ANSIBLE_TIMEOUT": "60",
                                    "ANSIBLE_CONFIG": str(REPO / "playbooks/ansible.cfg"),
                                    "ANSIBLE_LOG_PATH": str(machine.log_dir / "ansible-fix.log")}
                argv = [str(Path(sys.executable).with_name("ansible-playbook")), "-i", str(inventory),
                        str(REPO / "playbooks/site.yml"), "--tags", "systemtap"]
                t0 = time.monotonic()
                p = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=3600,
                                   cwd=REPO / "playbooks")
                record_time("bookworm fix: site.yml --tags systemtap, auto (builder + VM)", time.monotonic() - t0)
                out["fix-ansible"] = p
                save(machine, "fix-ansible", p)
        if p.returncode != 0:
            return
        out["fix-record"] = machine.run("cat /opt/systemtap/current/.stapdoctor-build.json", check=False)
        out["fix-stap -V"] = machine.run("stap -V 2>&1", check=False)
        _timed_run(machine, out, "fix-check-json", "stapdoctor check --json", "bookworm fix: check --json", 300)
        _timed_run(machine, out, "fix-check-deep", "stapdoctor check --deep --json",
                   "bookworm fix: check --deep with the built stap (pass 4 + hello probe in the VM)", 2400)
        _busy_profile(machine, image, lib, out, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _busy_profile(machine: vmh.VM, image: vmh.Image, lib: Path, out: dict, work: Path) -> None:
    """busy.c profiled in the VM with a module the built stap compiled on the host (a chroot of the image
    with the cached build unpacked at its prefix): compile-here/run-there, as the nginx profile does."""
    record = json.loads(out["fix-record"].stdout)
    version = record["ref"].removeprefix("release-")
    archive = SYSTEMTAP_BUILDS / f"debian-12-x86_64-{record['ref']}-{record['commit'][:12]}.tar.gz"
    t0 = time.monotonic()
    with vmh.devel_root(image, packages=()) as root:
        install_stapdoctor_in_root(root, lib)
        prefix_root = root / "opt/systemtap"
        shutil.rmtree(prefix_root / version, ignore_errors=True)
        prefix_root.mkdir(parents=True, exist_ok=True)
        subprocess.run(["tar", "-xzf", str(archive), "-C", str(prefix_root), "--no-same-owner"], check=True)
        shutil.copy2(BUSY_C, root / "root/busy.c")
        vmh.chroot_run(root, ["gcc", "-g", "-O1", "-fno-omit-frame-pointer", "-o", "/root/busy", "/root/busy.c"])
        for f in (root / "root").glob("busy-profile.ko*"):
            f.unlink()
        argv = ["/usr/local/bin/stapdoctor", "profile", "--compile-only", BUSY_MODULE, "-r", image.kernel_release,
                "--stap", f"/opt/systemtap/{version}/bin/stap", "--exe", "/root/busy"]
        out["fix-compile"] = p = vmh.chroot_run(root, argv, timeout=1800)
        record_time("bookworm fix: profile --compile-only busy with the built stap (host chroot)", time.monotonic() - t0)
        (machine.log_dir / "fix-compile.stdout").write_text(p.stdout)
        (machine.log_dir / "fix-compile.stderr").write_text(p.stderr)
        if p.returncode != 0:
            return
        files = [root / "root/busy", *sorted((root / "root").glob("busy-profile.ko*"))]
        for f in files:
            shutil.copy2(f, work / f.name)
    out["fix-compile-meta"] = json.loads((work / "busy-profile.ko.json").read_text())
    for f in files:
        machine.copy_in(work / f.name, f"/root/{f.name}")
    _timed_run(machine, out, "fix-profile",
               ["stapdoctor", "profile", "-o", "/root/prof-busy", "--module", BUSY_MODULE, "--duration", "15",
                "--", "/root/busy"], "bookworm fix: profile --module busy, 15 s", 900)
    dest = work / "prof"
    dest.mkdir()
    machine.copy_out("/root/prof-busy", dest)
    folded = sorted((dest / "prof-busy").glob("*.folded"))
    svgs = sorted((dest / "prof-busy").glob("*.svg"))
    out["fix-folded"] = folded[0].read_text() if folded else ""
    out["fix-svg"] = svgs[0].read_text() if svgs else ""


#: The kernel-stacks profile module (profile --kernel) for syscalls.c, compiled with the kernel's -dbg.
KERNEL_MODULE = "/root/kernel-syscalls.ko"
SYSCALLS_C = REPO / "tests/data/e2e/syscalls.c"


def _compile_host_modules(lib: Path, dest: Path) -> dict:
    """`stapdoctor profile --compile-only` in a host chroot of the unstable image (its stap, gcc, nginx;
    the kernel headers and, for --kernel, the -dbg of its kernel), as a user compiles on a build box for
    other hosts: the nginx module (user stacks) and the syscalls.c module (--kernel)."""
    image = _image("unstable")
    t0 = time.monotonic()
    with vmh.devel_root(image, packages=("linux-headers-{krel}", "linux-image-{krel}-dbg")) as root:
        record_time("host: kernel headers + -dbg in the devel root (install or cache hit)", time.monotonic() - t0)
        install_stapdoctor_in_root(root, lib)
        shutil.copy2(SYSCALLS_C, root / "root/syscalls.c")
        vmh.chroot_run(root, ["gcc", "-g", "-O1", "-fno-omit-frame-pointer", "-o", "/root/syscalls",
                              "/root/syscalls.c"])
        dest.mkdir(parents=True, exist_ok=True)
        out = {"dir": dest}
        for key, path, extra, label in (
                ("nginx", NGINX_MODULE, ["--exe", "/usr/sbin/nginx"], "nginx"),
                ("kernel", KERNEL_MODULE, ["--kernel", "--exe", "/root/syscalls"], "syscalls.c --kernel")):
            stem = path.rsplit("/", 1)[1]
            for f in (root / "root").glob(stem + "*"):
                f.unlink()
            argv = ["/usr/local/bin/stapdoctor", "profile", "--compile-only", path, "-r", image.kernel_release, *extra]
            t0 = time.monotonic()
            p = vmh.chroot_run(root, argv, timeout=1800)
            record_time(f"host: stapdoctor profile --compile-only ({label}, -r the VM's kernel)", time.monotonic() - t0)
            (dest / f"{key}-compile.stdout").write_text(p.stdout)
            (dest / f"{key}-compile.stderr").write_text(p.stderr)
            files = sorted((root / "root").glob(stem + "*"))
            for f in files:
                shutil.copy2(f, dest / f.name)
            out[key] = {"proc": p, "argv": argv, "dir": dest, "files": [f.name for f in files], "path": path}
        shutil.copy2(root / "root/syscalls", dest / "syscalls")
        out["kernel"]["files"].append("syscalls")
    return out


class Background:
    """The jobs that run beside the unstable VM, started once (idempotent `start()`): by the unstable VM
    once it is up (two VMs booting at once under TCG took 212 s and 238 s instead of ~65 s each), or by
    the Debian 12 tests when they run alone."""

    def __init__(self, wanted: set[str], lib: Path, module_dir: Path):
        self.wanted, self.lib, self.module_dir = wanted, lib, module_dir
        self.pool = concurrent.futures.ThreadPoolExecutor(max_workers=2, thread_name_prefix="e2e")
        self.jobs: dict[str, concurrent.futures.Future] = {}
        self.machines: list[vmh.VM] = []  # VMs the jobs booted

    def start(self) -> None:
        if self.jobs:
            return
        if "unstable" in self.wanted:
            self.jobs["host-modules"] = self.pool.submit(_compile_host_modules, self.lib, self.module_dir)
        if "bookworm" in self.wanted:
            self.jobs["bookworm"] = self.pool.submit(_bookworm_run, self.lib, self.machines)

    def result(self, name: str, timeout: float = 5400):
        """Wait for a job; its exception (a harness error, say) fails the test that needs it."""
        self.start()
        if name not in self.jobs:
            pytest.fail(f"background job {name} was not started")
        return self.jobs[name].result(timeout=timeout)


@pytest.fixture(scope="session")
def background(request, tmp_path_factory, stapdoctor_lib):
    wanted = {getattr(i.module, "VM_NAME", None) for i in request.session.items}
    bg = Background(wanted, stapdoctor_lib, tmp_path_factory.mktemp("nginx-module"))
    yield bg
    # Normally every job is done by now (its tests waited for it). After Ctrl-C one may still run:
    # power its VM off (its next command then fails and the thread ends) instead of waiting for it.
    for machine in bg.machines:
        machine.stop()
    bg.pool.shutdown(wait=True)
    job = bg.jobs.get("bookworm")
    if job is not None and "bookworm" not in FAILED and job.exception() is None:
        shutil.rmtree(ARTEFACTS / "bookworm", ignore_errors=True)


@pytest.fixture(scope="session")
def bookworm_run(background) -> dict[str, subprocess.CompletedProcess]:
    return background.result("bookworm")


@pytest.fixture(scope="session")
def nginx_module(background) -> dict:
    return background.result("host-modules")["nginx"]


@pytest.fixture(scope="session")
def kernel_module(background) -> dict:
    return background.result("host-modules")["kernel"]


@pytest.fixture(scope="session")
def unstable_image(require_root) -> vmh.Image:
    return _image("unstable")


@pytest.fixture(scope="module")
def unstable_vm(unstable_image, stapdoctor_lib, background):
    """Debian unstable VM for its test module (the tests share its state, in file order)."""
    machine = _boot(unstable_image, "unstable", stapdoctor_lib)
    background.start()
    try:
        yield machine
    finally:
        failed = "unstable" in FAILED
        if failed:
            _collect_outputs(machine)
        machine.stop()
        if not failed:
            shutil.rmtree(machine.log_dir, ignore_errors=True)
