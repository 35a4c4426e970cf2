"""Kernels no package provides, and the compiler pass 4 runs (issue 14, items 5-6).

The package database is a real dpkg database (status + info/*.list as dpkg writes them, with the fields of this
machine's linux-image-6.1.0-57-amd64 entry), queried by the real `dpkg -S`; the custom kernel is this machine's
own release, 6.18.44-fc-v1147, whose image no package owns."""
import json
import os
import shutil
import subprocess
import sys

import pytest

from stapdoctor.doctor import checks, snapshot

CUSTOM = "6.18.44-fc-v1147"
CUSTOM_PROC_VERSION = (f"Linux version {CUSTOM} (builder@sandboxing) (gcc (GCC) 15.3.0, GNU ld (GNU Binutils) 2.46) "
                       "#1 SMP PREEMPT_DYNAMIC @0")


def dpkg_db(root, pkg, files):
    info = root / "var/lib/dpkg/info"
    info.mkdir(parents=True, exist_ok=True)
    (root / "var/lib/dpkg/updates").mkdir(exist_ok=True)
    (root / "var/lib/dpkg/status").write_text(
        f"Package: {pkg}\nStatus: install ok installed\nPriority: optional\nSection: kernel\n"
        "Maintainer: Debian Kernel Team <debian-kernel@lists.debian.org>\nArchitecture: amd64\n"
        "Source: linux-signed-amd64 (6.1.176+1)\nVersion: 6.1.176-1\nDescription: Linux 6.1 for 64-bit PCs (signed)\n\n")
    (info / f"{pkg}.list").write_text("/.\n/boot\n" + "".join(f + "\n" for f in files))


def found(root):
    return {f.id: f for f in checks.run_checks(snapshot.collect(str(root)))}


@pytest.fixture
def dpkg():
    if shutil.which("dpkg") is None:
        pytest.fail("dpkg is needed (this suite runs on Debian)")


def test_distribution_kernel_gets_its_package(host_root, tmp_path, dpkg):
    root = host_root("ubuntu-22.04")  # no build tree: devel.build fails
    R = "5.15.0-25-generic"
    (root / "boot").mkdir(exist_ok=True)
    (root / f"boot/vmlinuz-{R}").write_bytes(b"MZ")
    dpkg_db(root, f"linux-image-{R}", [f"/boot/vmlinuz-{R}"])
    f = found(root)["devel.build"]
    assert f.status == "fail" and f"apt-get install -y linux-headers-{R}" in f.remedy


def test_custom_kernel_is_told_to_use_its_build_tree(host_root, dpkg):
    root = host_root("ubuntu-22.04", release=CUSTOM, proc_version=CUSTOM_PROC_VERSION, version_signature=None)
    dpkg_db(root, "linux-image-5.15.0-25-generic", ["/boot/vmlinuz-5.15.0-25-generic"])
    (root / f"boot/vmlinuz-{CUSTOM}").write_bytes(b"MZ")   # built and installed by hand: no package owns it
    got = found(root)
    build, dbg = got["devel.build"], got["debuginfo.vmlinux"]
    assert "custom kernel" in build.evidence
    assert f"linux-headers-{CUSTOM}" not in build.remedy and "make modules_prepare" in build.remedy
    assert f"/lib/modules/{CUSTOM}/build" in build.remedy
    assert f"-dbg" not in dbg.remedy and "vmlinux" in dbg.remedy and "no package" in dbg.remedy


def test_this_machine_custom_kernel_has_no_impossible_package():
    R = os.uname().release
    if any(os.path.exists(p) for p in (f"/boot/vmlinuz-{R}", f"/lib/modules/{R}/vmlinuz")):
        pytest.skip(f"kernel {R} has an image here; the custom-kernel case is tested on a tree above")
    r = subprocess.run([sys.executable, "-m", "stapdoctor.doctor", "check", "--json"], capture_output=True, text=True)
    got = {f["id"]: f for f in json.loads(r.stdout)["findings"]}
    if got["devel.build"]["status"] == "fail":
        assert f"linux-headers-{R}" not in got["devel.build"]["remedy"]
        assert "make modules_prepare" in got["devel.build"]["remedy"]


def test_kernel_compiler_differs_from_gcc(host_root):
    """Ubuntu 22.04's HWE kernels are built by gcc-12 while the release's gcc is 11: pass 4 then meets flags
    gcc 11 does not know. The config is 22.04's with the HWE kernel's CONFIG_CC_VERSION_TEXT."""
    hwe_cc = '"x86_64-linux-gnu-gcc-12 (Ubuntu 12.3.0-1ubuntu1~22.04) 12.3.0"'
    root = host_root("ubuntu-22.04", gcc="11.4.0",
                     config=("config-5.15.0-25-generic", {"CONFIG_CC_VERSION_TEXT": hwe_cc}))
    f = found(root)["devel.toolchain"]
    assert f.status == "warn" and "gcc 12.3.0" in f.evidence and "gcc 11.4.0" in f.evidence
    assert "gcc-12" in f.remedy and "CC=gcc-12" in f.remedy


def test_same_major_passes(host_root):
    f = found(host_root("debian-12-stap-4.8"))["devel.toolchain"]
    assert f.status == "pass" and "12.2.0" in f.evidence   # Debian 12: CONFIG_CC_VERSION_TEXT gcc-12 12.2.0


def test_no_make_fails(host_root):
    root = host_root("fedora-41", toolchain=False)
    (root / ".stapdoctor/stat").mkdir(parents=True, exist_ok=True)
    (root / ".stapdoctor/stat/gcc").write_text("755 0 0 /usr/bin/gcc\n")
    f = found(root)["devel.toolchain"]
    assert f.status == "fail" and "no make" in f.evidence and "make" in f.remedy


def test_live_toolchain_is_collected():
    snap = snapshot.collect("/")
    if shutil.which("gcc"):
        assert snap.tools["gcc"]["status"] == "ok" and snap.commands["gcc-version"]["rc"] == 0


def test_kbuild_cc_from_the_build_tree(tmp_path):
    """The compiler pass 4 calls: a plain CC in the build tree's top Makefile, else gcc (upstream's
    `CC = $(CROSS_COMPILE)gcc`, as in this machine's Debian 12 headers, is gcc)."""
    from stapdoctor.doctor import hostfacts
    r = snapshot._Root(str(tmp_path))
    mk = tmp_path / "lib/modules/R/build/Makefile"
    mk.parent.mkdir(parents=True)
    mk.write_text("CC = x86_64-linux-gnu-gcc-14\ninclude /usr/src/linux-headers-R-common/Makefile\n")
    assert hostfacts.kbuild_cc(r, "/lib/modules/R/build/Makefile") == "x86_64-linux-gnu-gcc-14"
    common = "/usr/src/linux-headers-6.1.0-57-common/Makefile"
    if os.path.exists(common):
        assert hostfacts.kbuild_cc(snapshot._Root("/"), common) == "gcc"
    assert hostfacts.kbuild_cc(r, "/no/Makefile") == "gcc"
