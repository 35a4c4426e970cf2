"""Which QEMU CPU model runs the e2e tier's emulated work fastest under TCG (run as root).

    .venv/bin/python bench/vm_cpu_models.py                      # bookworm: qemu64 vs Skylake-Server-v4
    .venv/bin/python bench/vm_cpu_models.py --image bookworm --rounds 4 qemu64 Nehalem

Boots one VM of the image per model, side by side with one vCPU each (the host's speed drifts within
minutes, so models are only compared when they run at the same time), waits until all are up, then
runs the same work in each: kbuild of a small module against the image's kernel headers (what stap's
pass 4 does, over and over, for its autoconf tests) and a gzip round trip of 200 MB. Prints JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import threading
import time

from stapdoctor.testing import vm as vmh

# Fixed text: nothing from the command line goes into it but the round count (an int).
WORK = r'''
set -e
d=$(mktemp -d)
cd "$d"
cat > t.c <<'EOF'
#include <linux/module.h>
#include <linux/sched.h>
#include <linux/uprobes.h>
#include <linux/fs.h>
#include <linux/mm.h>
MODULE_LICENSE("GPL");
static int __init t_init(void) { return current->pid == 0; }
module_init(t_init);
EOF
echo 'obj-m := t.o' > Makefile
now() { date +%s.%N; }
if [ -d "/lib/modules/$(uname -r)/build" ]; then
  s=$(now)
  for i in $(seq ROUNDS); do
    make -s -C "/lib/modules/$(uname -r)/build" M="$d" modules >/dev/null 2>&1
    rm -f t.o t.ko t.mod.o
  done
  echo "kbuild_s $(awk -v s="$s" -v e="$(now)" 'BEGIN{print e-s}')"
fi
s=$(now)
head -c 200000000 /dev/zero | gzip -6 | gzip -dc | md5sum >/dev/null
echo "gzip_s $(awk -v s="$s" -v e="$(now)" 'BEGIN{print e-s}')"
grep -o -w -m1 'avx2' /proc/cpuinfo | sed 's/^/has /' || true
rm -rf "$d"
'''


def measure(image: str, models: list[str], rounds: int) -> dict:
    img = vmh.build(image)
    start = threading.Barrier(len(models))
    res: dict = {"image": image, "kernel_release": img.kernel_release, "kbuild_rounds": rounds, "models": {}}

    def one(model: str) -> None:
        out: dict = {}
        res["models"][model] = out
        try:
            with vmh.VM(img, smp=1, cpu=model, log_dir=f"/tmp/vm-cpu-{image}-{model}") as vm:
                out["boot_to_ssh_s"] = vm.boot_seconds
                start.wait(timeout=900)
                t0 = time.monotonic()
                p = vm.run(WORK.replace("ROUNDS", str(rounds)), check=False, timeout=3600)
                out["work_s"] = round(time.monotonic() - t0, 1)
                for line in p.stdout.splitlines():
                    key, _, val = line.partition(" ")
                    out[key] = round(float(val), 1) if key.endswith("_s") else val
                if p.returncode:
                    out["error"] = (p.stdout + p.stderr).strip().splitlines()[-5:]
        except (vmh.VMError, threading.BrokenBarrierError) as e:
            start.abort()
            out["error"] = str(e)[-500:]

    threads = [threading.Thread(target=one, args=(m,)) for m in models]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("models", nargs="*", default=["qemu64", "Skylake-Server-v4"])
    ap.add_argument("--image", default="bookworm", choices=sorted(vmh.RECIPES))
    ap.add_argument("--rounds", type=int, default=4, help="kbuild compiles per VM")
    args = ap.parse_args()
    if len(args.models) > (os.cpu_count() or 1):
        ap.error("more VMs than the host has cores would measure the host, not the models")
    print(json.dumps(measure(args.image, args.models, args.rounds), indent=1))


if __name__ == "__main__":
    main()
