"""Sysroot trees of real hosts, built from the files in tests/data/doctor (see SOURCES.md there).

Each host is a spec (data) turned into a directory that `stapdoctor check --root DIR` reads exactly as it
reads a live host. The fully ready host gets a real ELF vmlinux compiled here, with /sys/kernel/notes cut
from that ELF, so build-id matching is tested on real notes.
"""
from __future__ import annotations

import gzip
import os
import shutil
import subprocess
from pathlib import Path

DATA = Path(__file__).resolve().parents[1].parent / "data" / "doctor"


def data(*parts: str) -> Path:
    return DATA.joinpath(*parts)


def stap_v_sample(version_prefix: str) -> str:
    """One `stap -V` block from stap-V-samples.txt, by its 'version X' prefix."""
    text = data("stap-V", "stap-V-samples.txt").read_text()
    for block in text.split("=== source:")[1:]:
        body = block.split("\n", 1)[1]
        if f"(version {version_prefix}" in body:
            return body
    raise KeyError(version_prefix)


def derived_config(src: str, changes: dict[str, str]) -> str:
    lines = [ln for ln in data("kconfig", src).read_text().splitlines()
             if not any(ln.startswith(k + "=") or ln == f"# {k} is not set" for k in changes)]
    lines.insert(0, f"# stapdoctor test data: derived from {src} with {changes}")
    lines += [f"{k}={v}" if v != "n" else f"# {k} is not set" for k, v in changes.items()]
    return "\n".join(lines) + "\n"


UBUNTU_1210_CONFIG = ("config-3.2.0-23-generic", {"CONFIG_UPROBES": "y", "CONFIG_ARCH_SUPPORTS_UPROBES": "y",
                                                   "CONFIG_TRACEPOINTS": "y"})

HOSTS: dict[str, dict] = {
    "ubuntu-12.04": dict(
        release="3.2.0-23-generic", os=("ubuntu-12.04.1.os-release", "etc/os-release"),
        proc_version="Linux version 3.2.0-23-generic (buildd@crested) (gcc version 4.6.3 (Ubuntu/Linaro 4.6.3-1ubuntu4) ) #36-Ubuntu SMP Tue Apr 10 20:39:51 UTC 2012",
        version_signature="Ubuntu 3.2.0-23.36-generic 3.2.14",
        config="config-3.2.0-23-generic", config_in=("boot", "build"), build=True),
    "ubuntu-12.10": dict(
        release="3.5.0-17-generic", os=("ubuntu-12.10.os-release", "etc/os-release"),
        proc_version="Linux version 3.5.0-17-generic (buildd@allspice) (gcc version 4.7.2 (Ubuntu/Linaro 4.7.2-2ubuntu1) ) #28-Ubuntu SMP Tue Oct 9 19:31:23 UTC 2012",
        version_signature="Ubuntu 3.5.0-17.28-generic 3.5.5",
        config=UBUNTU_1210_CONFIG, config_in=("boot", "build"), build=True),
    "rhel-6": dict(
        release="2.6.32-220.el6.x86_64", os=("centos-6.10.redhat-release", "etc/redhat-release"),
        proc_version="Linux version 2.6.32-220.el6.x86_64 (mockbuild@c6b18n3.bsys.dev.centos.org) (gcc version 4.4.6 20110731 (Red Hat 4.4.6-3) (GCC) ) #1 SMP Tue Dec 6 19:48:22 GMT 2011",
        config="config-2.6.32-220.el6.x86_64", config_in=("boot", "build"), build=True,
        stap=("", stap_v_sample("2.5/"), 0), filesystems=True),
    "ubuntu-22.04": dict(
        release="5.15.0-25-generic", os=("ubuntu-22.04.5.os-release", "etc/os-release"),
        proc_version="Linux version 5.15.0-25-generic (buildd@ubuntu) (gcc (Ubuntu 11.2.0-19ubuntu1) 11.2.0, GNU ld (GNU Binutils for Ubuntu) 2.38) #25-Ubuntu SMP Wed Mar 30 15:54:22 UTC 2022",
        version_signature="Ubuntu 5.15.0-25.25-generic 5.15.30",
        config="config-5.15.0-25-generic", config_in=("boot",), build=False, lockdown="[none] integrity confidentiality"),
    "fedora-41": dict(
        release="6.11.8-300.fc41.x86_64", os_text=("etc/os-release", 'NAME="Fedora Linux"\nVERSION="41 (Workstation Edition)"\nID=fedora\nVERSION_ID=41\nPRETTY_NAME="Fedora Linux 41 (Workstation Edition)"\n'),
        proc_version="Linux version 6.11.8-300.fc41.x86_64 (mockbuild@buildhw) (gcc (GCC) 14.2.1 20240912 (Red Hat 14.2.1-3), GNU ld version 2.43.1-2.fc41) #1 SMP PREEMPT_DYNAMIC Thu Nov 14 20:37:39 UTC 2024",
        config="config-6.11.8-300.fc41.x86_64", config_in=("boot", "build"), build=True,
        stap=(stap_v_sample("5.2/0.191"), "", 0), lockdown="[none] integrity confidentiality", filesystems=True),
    "debian-12-stap-4.8": dict(
        release="6.1.0-50-amd64", os=("debian-12.os-release", "etc/os-release"),
        proc_version="Linux version 6.1.0-50-amd64 (debian-kernel@lists.debian.org) (gcc-12 (Debian 12.2.0-14+deb12u1) 12.2.0, GNU ld (GNU Binutils for Debian) 2.40) #1 SMP PREEMPT_DYNAMIC Debian 6.1.176-1 (2026-10-01)",
        config="config-6.1.0-50-amd64", config_in=("boot", "build"), build=True,
        stap=(data("stap-V", "stap-V-4.8-debian12.txt").read_text(), "", 0), lockdown="[none] integrity confidentiality",
        filesystems=True),
    "lockdown": dict(
        release="6.11.8-300.fc41.x86_64", os_text=("etc/os-release", "ID=fedora\nVERSION_ID=41\nNAME=Fedora\n"),
        proc_version="Linux version 6.11.8-300.fc41.x86_64 (mockbuild@buildhw) (gcc (GCC) 14.2.1 20240912 (Red Hat 14.2.1-3), GNU ld version 2.43.1-2.fc41) #1 SMP PREEMPT_DYNAMIC Thu Nov 14 20:37:39 UTC 2024",
        config="config-6.11.8-300.fc41.x86_64", config_in=("boot", "build"), build=True,
        stap=(stap_v_sample("5.2/0.191"), "", 0), lockdown="none [integrity] confidentiality", sig_enforce="Y",
        filesystems=True),
    "ready": dict(
        release="7.2.13+deb14-amd64", os_text=("etc/os-release", 'PRETTY_NAME="Debian GNU/Linux forky/sid"\nNAME="Debian GNU/Linux"\nVERSION_CODENAME=forky\nID=debian\n'),
        proc_version="Linux version 7.2.13+deb14-amd64 (debian-kernel@lists.debian.org) (x86_64-linux-gnu-gcc-15 (Debian 15.2.0-9) 15.2.0, GNU ld (GNU Binutils for Debian) 2.45.50.20251209) #1 SMP PREEMPT_DYNAMIC Debian 7.2.13-1 (2026-11-01)",
        config="config-7.2.13+deb14-amd64", config_in=("boot", "build"), build=True,
        stap=(data("stap-V", "stap-V-5.6-debian-unstable.txt").read_text(), "", 0),
        lockdown="[none] integrity confidentiality", sig_enforce="N", vmlinux="match", filesystems=True),
}


def _w(root: Path, rel: str, content: str | bytes) -> Path:
    p = root / rel
    p.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(content, bytes):
        p.write_bytes(content)
    else:
        p.write_text(content)
    return p


def build_elf(workdir: Path, name: str = "vmlinux") -> tuple[Path, bytes, str]:
    """A real ELF with DWARF and a GNU build-id note; returns (path, raw note section, build-id hex)."""
    src = _w(workdir, f"{name}.c", f"int {name.replace('-', '_')}_start(void) {{ return 42; }}\n"
                                    "int main(void) { return 0; }\n")
    out = workdir / name
    subprocess.run(["gcc", "-g", "-O0", "-Wl,--build-id=sha1", "-o", str(out), str(src)], check=True)
    notes = workdir / f"{name}.notes"
    subprocess.run(["objcopy", "-O", "binary", "--only-section=.note.gnu.build-id", str(out), str(notes)], check=True)
    raw = notes.read_bytes()
    bid = subprocess.run(["readelf", "-n", str(out)], check=True, capture_output=True, text=True).stdout
    build_id = bid.split("Build ID:")[1].split()[0]
    return out, raw, build_id


def make_host(base: Path, name: str, **overrides) -> Path:
    spec = dict(HOSTS[name], **overrides)
    root = base / name
    root.mkdir(parents=True, exist_ok=True)
    R = spec["release"]
    _w(root, "proc/sys/kernel/osrelease", R + "\n")
    _w(root, "proc/version", spec["proc_version"] + "\n")
    if spec.get("version_signature"):
        _w(root, "proc/version_signature", spec["version_signature"] + "\n")
    if "os" in spec:
        src, dest = spec["os"]
        _w(root, dest, data("os-release", src).read_text())
    if "os_text" in spec:
        _w(root, *spec["os_text"])
    cfg = spec["config"]
    cfg_text = derived_config(*cfg) if isinstance(cfg, tuple) else data("kconfig", cfg).read_text()
    hdr = root / f"usr/src/linux-headers-{R}"
    if "boot" in spec["config_in"]:
        _w(root, f"boot/config-{R}", cfg_text)
    if "proc" in spec["config_in"]:
        _w(root, "proc/config.gz", gzip.compress(cfg_text.encode()))
    if spec.get("build"):
        hdr.mkdir(parents=True, exist_ok=True)
        (root / f"lib/modules/{R}").mkdir(parents=True, exist_ok=True)
        os.symlink(f"/usr/src/linux-headers-{R}", root / f"lib/modules/{R}/build")
        if "build" in spec["config_in"]:
            _w(hdr, ".config", cfg_text)
        _w(hdr, "Makefile", "VERSION = x\n")
        _w(hdr, "Module.symvers", "0x00000000\tprintk\tvmlinux\tEXPORT_SYMBOL\n")
        uts = spec.get("uts") or spec["proc_version"].split(" #", 1)[1].split(" (Ubuntu")[0]
        _w(hdr, "include/generated/compile.h", f'#define UTS_MACHINE "x86_64"\n#define UTS_VERSION "#{uts}"\n')
    if spec.get("stap"):
        out, err, rc = spec["stap"]
        _w(root, "usr/bin/stap", "#!/bin/sh\nexit 0\n").chmod(0o755)
        staprun = _w(root, "usr/bin/staprun", "#!/bin/sh\nexit 0\n")
        staprun.chmod(0o4754)
        _w(root, ".stapdoctor/commands/stap-V.out", out)
        _w(root, ".stapdoctor/commands/stap-V.err", err)
        _w(root, ".stapdoctor/commands/stap-V.rc", f"{rc}\n")
        _w(root, ".stapdoctor/stat/staprun", f"4754 0 {spec.get('staprun_gid', 0)} /usr/bin/staprun\n")
    if spec.get("toolchain", True):  # as the collector records them: the distribution's gcc is the kernel's
        from stapdoctor.doctor.parsers import kernel_compiler
        _w(root, ".stapdoctor/stat/gcc", "755 0 0 /usr/bin/gcc\n")
        _w(root, ".stapdoctor/stat/make", "755 0 0 /usr/bin/make\n")
        _w(root, ".stapdoctor/commands/gcc-version.out", (spec.get("gcc") or kernel_compiler(spec["proc_version"])) + "\n")
    _w(root, ".stapdoctor/commands/id.out", spec.get("id", "uid=0(root) gid=0(root) groups=0(root)") + "\n")
    if spec.get("lockdown"):
        _w(root, "sys/kernel/security/lockdown", spec["lockdown"] + "\n")
    if spec.get("sig_enforce"):
        _w(root, "sys/module/module/parameters/sig_enforce", spec["sig_enforce"] + "\n")
    if spec.get("mounts") is not None:  # the running kernel's /proc was collected
        _w(root, "proc/mounts", spec["mounts"])
    if spec.get("cmdline") is not None:
        _w(root, "proc/cmdline", spec["cmdline"] + "\n")
    if spec.get("secure_boot") is not None:  # the efivar as the kernel shows it: 4 attribute bytes, then 0/1
        _w(root, "sys/firmware/efi/efivars/SecureBoot-8be4df61-93ca-11d2-aa0d-00e098032b8c",
           bytes([6, 0, 0, 0, int(spec["secure_boot"])]))
    for path, text in spec.get("extra_files", {}).items():
        _w(root, path, text)
    if spec.get("filesystems"):
        _w(root, "proc/filesystems", "nodev\tsysfs\nnodev\tproc\nnodev\tdebugfs\n\text4\n")
    if spec.get("vmlinux"):
        elf, notes, bid = build_elf(base / f"{name}-elf")
        dest = root / f"usr/lib/debug/boot/vmlinux-{R}"
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(elf, dest)
        if spec["vmlinux"] == "match":
            _w(root, "sys/kernel/notes", notes)
        else:  # a different build: notes of another real ELF
            _, other, _ = build_elf(base / f"{name}-other", name="other")
            _w(root, "sys/kernel/notes", other)
    return root
