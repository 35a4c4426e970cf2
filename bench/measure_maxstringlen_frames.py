#!/usr/bin/env python3
"""Measure the stack frames stap's pass 4 produces for several MAXSTRINGLEN values on a real kernel build tree.

The largest frame decides which MAXSTRINGLEN a kernel's CONFIG_FRAME_WARN accepts (kbuild compiles with
-Werror=frame-larger-than=FRAME_WARN). For each value this compiles the profiler's own script exactly as
`stapdoctor profile --compile-only` does (stapdoctor.profiler.stapargs.build_argv), plus `-k` (keep the build
directory) and `-B KCFLAGS=-fstack-usage` (gcc writes every function's frame size to a .su file), and reports
the largest frames. The rule derived from it lives in doctor/knowledge/stap_frames.toml.

Usage (a stap whose runtime supports the kernel, and that kernel's headers in /lib/modules/R/build;
SYSTEMTAP_RUNTIME/SYSTEMTAP_TAPSET select another runtime tree, e.g. upstream's newest):
  python bench/measure_maxstringlen_frames.py --stap /path/to/stap -r 6.1.0-57-amd64 [--values 256,512,1024,2048,4096]
Needs a C compiler, the headers and minutes per value (one pass 4 each).

  python bench/measure_maxstringlen_frames.py --handler-only SYSTEMTAP_SRC -r RELEASE
compiles only the runtime's MAXSTRINGLEN-sized frame, `_stp_softerror_handler` from SYSTEMTAP_SRC's
runtime/handler-error.h (upstream since 2026-06, released in 5.6), verbatim, in a minimal kbuild module against
the same build tree: seconds per value, for runtimes newer than any stap translator at hand.
"""
from __future__ import annotations

import argparse
import glob
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def _plan_argv(stap: str, release: str, msl: int, kernel: bool) -> list[str]:
    from stapdoctor.profiler.advice import Limits
    from stapdoctor.profiler.stapargs import StapPlan, build_argv
    plan = StapPlan(stap=stap, pid=None, duration_s=1.0, kernel=kernel, modules=["/bin/true"],
                    limits=Limits(maxstringlen=msl), release=release,
                    module_name=f"msl{msl}")
    argv = build_argv(plan)
    # keep the build directory and have gcc write each function's frame size (.su files); the frame limit is
    # lifted so every value compiles and is measured (kbuild would stop at the first frame over FRAME_WARN)
    return argv[:-1] + ["-k", "-B", "KCFLAGS=-fstack-usage -Wframe-larger-than=1000000"] + argv[-1:]


def measure(stap: str, release: str, msl: int, kernel: bool, timeout: float) -> dict:
    work = tempfile.mkdtemp(prefix="stapdoctor-msl-")
    argv = _plan_argv(stap, release, msl, kernel)
    t0 = time.monotonic()
    p = subprocess.run(argv, cwd=work, capture_output=True, text=True, timeout=timeout)
    secs = time.monotonic() - t0
    kept = re.search(r'Keeping temporary directory "([^"]+)"', p.stderr)
    frames: list[tuple[int, str]] = []
    if kept:
        for su in glob.glob(os.path.join(kept.group(1), "*.su")):
            for line in open(su, encoding="utf-8", errors="replace"):
                parts = line.rstrip("\n").split("\t")
                if len(parts) >= 2 and parts[1].isdigit():
                    frames.append((int(parts[1]), parts[0].rsplit(":", 1)[-1]))
        shutil.rmtree(kept.group(1), ignore_errors=True)
    shutil.rmtree(work, ignore_errors=True)
    frames.sort(reverse=True)
    warned = [int(n) for n in re.findall(r"frame size of (\d+) bytes is larger than", p.stderr)]
    return {"maxstringlen": msl, "kernel_stacks": kernel, "rc": p.returncode, "seconds": round(secs, 1),
            "largest": [{"bytes": b, "function": f} for b, f in frames[:5]],
            "frame_warnings": warned,
            "error": None if frames else (p.stderr.strip().splitlines() or ["no .su files"])[-1][:300]}


HANDLER_MODULE = r"""
#include <linux/module.h>
#include <linux/kernel.h>
#define MAXNESTING 10
/* the context fields the handler reads (runtime/common_probe_context.h) */
struct context { const char *probe_point; const char *last_error; const char *last_stmt[MAXNESTING + 1]; };
static noinline void _stp_softerror(const char *fmt, ...)
{ va_list a; va_start(a, fmt); vprintk(fmt, a); va_end(a); }
#include "handler-error.h"
/* called through a volatile pointer on a global context, as the translator's probe handlers do, so gcc
   compiles the whole function instead of folding it for one known argument */
struct context stapdoctor_ctx;
EXPORT_SYMBOL(stapdoctor_ctx);
static void (*volatile stapdoctor_handler)(struct context *) = _stp_softerror_handler;
static int __init stapdoctor_init(void) { stapdoctor_handler(&stapdoctor_ctx); return 0; }
static void __exit stapdoctor_exit(void) { }
module_init(stapdoctor_init);
module_exit(stapdoctor_exit);
MODULE_LICENSE("GPL");
"""


def measure_handler(src: str, release: str, msl: int, timeout: float) -> dict:
    work = Path(tempfile.mkdtemp(prefix="stapdoctor-handler-"))
    try:
        shutil.copy(Path(src, "runtime", "handler-error.h"), work / "handler-error.h")
        (work / "msl.c").write_text(HANDLER_MODULE)
        (work / "Makefile").write_text("obj-m := msl.o\n")
        t0 = time.monotonic()
        p = subprocess.run(["make", "-C", f"/lib/modules/{release}/build", f"M={work}", "modules",
                            # a low limit makes gcc print each frame as -Werror=frame-larger-than judges it
                            f"KCFLAGS=-fstack-usage -DMAXSTRINGLEN={msl} -Wframe-larger-than=64"],
                           capture_output=True, text=True, timeout=timeout)
        frames = []
        for su in work.glob("*.su"):
            for line in su.read_text(errors="replace").splitlines():
                parts = line.split("\t")
                if len(parts) >= 2 and parts[1].isdigit():
                    frames.append((int(parts[1]), parts[0].rsplit(":", 1)[-1]))
        frames.sort(reverse=True)
        judged = [int(n) for n in re.findall(r"frame size of (\d+) bytes is larger than", p.stderr)]
        return {"maxstringlen": msl, "rc": p.returncode, "seconds": round(time.monotonic() - t0, 1),
                "frame_size_judged": max(judged) if judged else None,
                "largest": [{"bytes": b, "function": f} for b, f in frames[:3]],
                "error": None if frames else (p.stderr.strip().splitlines() or ["no .su files"])[-1][:300]}
    finally:
        shutil.rmtree(work, ignore_errors=True)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--stap", default=shutil.which("stap") or "stap")
    ap.add_argument("-r", "--release", default=os.uname().release)
    ap.add_argument("--values", default="256,512,1024,2048,4096")
    ap.add_argument("--kernel", action="store_true", help="the profile-kernel.stp script (kernel stacks too)")
    ap.add_argument("--timeout", type=float, default=1800)
    ap.add_argument("--json", help="also write the results here")
    ap.add_argument("--handler-only", metavar="SYSTEMTAP_SRC", help="measure only runtime/handler-error.h's frame")
    a = ap.parse_args()
    if not os.path.exists(f"/lib/modules/{a.release}/build/Makefile"):
        print(f"no build tree for {a.release} (/lib/modules/{a.release}/build)", file=sys.stderr)
        return 2
    if a.handler_only:
        rows = []
        for v in (int(x) for x in a.values.split(",")):
            row = measure_handler(a.handler_only, a.release, v, a.timeout)
            rows.append(row)
            top = row["largest"][0] if row["largest"] else None
            print(f"MAXSTRINGLEN={v:5d}: frame size {row['frame_size_judged']} bytes as -Wframe-larger-than judges "
                  f"it, stack usage {top['bytes'] if top else '?'} bytes (-fstack-usage, "
                  f"{top['function'] if top else row['error']}), rc={row['rc']}, {row['seconds']} s", flush=True)
        over = [r["frame_size_judged"] - r["maxstringlen"] for r in rows if r["frame_size_judged"]]
        print(f"largest frame - MAXSTRINGLEN: {min(over) if over else '?'} ... {max(over) if over else '?'} bytes "
              f"(handler-error.h of {a.handler_only}, kernel {a.release})")
        if a.json:
            Path(a.json).write_text(json.dumps({"handler_src": a.handler_only, "release": a.release, "runs": rows},
                                               indent=2) + "\n")
        return 0
    ver = subprocess.run([a.stap, "-V"], capture_output=True, text=True)
    stap_v = (ver.stdout + ver.stderr).splitlines()[0] if (ver.stdout + ver.stderr).strip() else "?"
    rows = []
    for v in (int(x) for x in a.values.split(",")):
        row = measure(a.stap, a.release, v, a.kernel, a.timeout)
        rows.append(row)
        top = row["largest"][0] if row["largest"] else None
        print(f"MAXSTRINGLEN={v:5d}: largest frame {top['bytes'] if top else '?':>5} bytes "
              f"({top['function'] if top else row['error']}), pass 4 rc={row['rc']}, {row['seconds']} s", flush=True)
    overhead = [row["largest"][0]["bytes"] - row["maxstringlen"] for row in rows if row["largest"]]
    summary = {"stap": stap_v, "release": a.release, "runs": rows,
               "runtime": os.environ.get("SYSTEMTAP_RUNTIME", "(stap's own)"),
               "overhead_max": max(overhead) if overhead else None, "overhead_min": min(overhead) if overhead else None}
    print(f"largest frame - MAXSTRINGLEN: {summary['overhead_min']} ... {summary['overhead_max']} bytes ({stap_v})")
    if a.json:
        Path(a.json).write_text(json.dumps(summary, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
