"""Measure what the e2e tier's budget is made of, on this machine (run as root).

    .venv/bin/python bench/vm_timings.py bookworm unstable

Per image: cached build, boot to SSH, (unstable: installing headers and -dbg from the in-image
mirror), `stap -p4` of a hello probe inside the VM, the same module compiled on the host in a chroot
of the image's root (`stap -p4 -r KREL`) and run in the VM with staprun. Prints JSON.
"""

from __future__ import annotations

import json
import sys
import time

from stapdoctor.testing import vm as vmh

HELLO = 'probe begin { println("hello from stap"); exit() }'


def timed(fn):
    t0 = time.monotonic()
    r = fn()
    return r, round(time.monotonic() - t0, 1)


def measure(name: str) -> dict:
    res: dict = {"image": name}
    img, res["build_or_cache_s"] = timed(lambda: vmh.build(name))
    krel = img.kernel_release
    res["kernel_release"] = krel
    res["stap"] = img.meta["stap_version"]

    # Host-side cross compile first (native speed), in the image's root plus its mirror packages.
    with vmh.devel_root(img) as root:
        (root / "root/hello.stp").write_text(HELLO + "\n")
        p, res["host_chroot_stap_p4_r_s"] = timed(lambda: vmh.chroot_run(
            root, ["stap", "-p4", "-r", krel, "-m", "sd_hello", "/root/hello.stp"], timeout=1800))
        res["host_chroot_stap_p4_rc"] = p.returncode
        res["host_chroot_stap_p4_tail"] = (p.stdout + p.stderr).splitlines()[-6:]
        ko = root / "root/sd_hello.ko"
        ko_bytes = ko.read_bytes() if p.returncode == 0 and ko.exists() else None

    with vmh.VM(img, log_dir=f"/tmp/vm-timings-{name}") as vm:
        res["boot_to_ssh_s"] = vm.boot_seconds
        if img.recipe.mirror_packages:
            pk = " ".join(p.format(krel=krel) for p in img.recipe.mirror_packages)
            p, res["vm_apt_install_headers_dbg_s"] = timed(lambda: vm.run(
                f"DEBIAN_FRONTEND=noninteractive apt-get install -y -q {pk}", check=False, timeout=3600))
            res["vm_apt_install_rc"] = p.returncode
        if ko_bytes:
            local = vm.log_dir / "sd_hello.ko"
            local.write_bytes(ko_bytes)
            vm.copy_in(local, "/root/sd_hello.ko")
            p, res["vm_staprun_host_module_s"] = timed(lambda: vm.run("staprun /root/sd_hello.ko",
                                                                        check=False, timeout=300))
            res["vm_staprun_rc"] = p.returncode
            res["vm_staprun_out"] = (p.stdout + p.stderr).strip().splitlines()[-4:]
        vm.run(["sh", "-c", 'cat > /root/hello.stp'], input=HELLO + "\n")
        p, res["vm_stap_p4_hello_s"] = timed(lambda: vm.run("stap -p4 -m sd_hello2 /root/hello.stp",
                                                            check=False, timeout=3600))
        res["vm_stap_p4_rc"] = p.returncode
        res["vm_stap_p4_tail"] = (p.stdout + p.stderr).strip().splitlines()[-6:]
    return res


if __name__ == "__main__":
    for n in sys.argv[1:] or sorted(vmh.RECIPES):
        print(json.dumps(measure(n), indent=1), flush=True)
