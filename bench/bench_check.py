#!/usr/bin/env python3
"""Wall time of `stapdoctor check` (no --deep) on this host: the issue's bar is ≤ 0.3 s.

Runs the installed console script N times (default 15) after one warm-up and prints min / median / max.
Usage: python bench/bench_check.py [-n 15] [--json] [-- extra check args]
"""
from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import time


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("-n", type=int, default=15)
    ap.add_argument("--json", action="store_true", help="time `check --json` instead of the table")
    ap.add_argument("extra", nargs="*")
    a = ap.parse_args()
    exe = shutil.which("stapdoctor") or [sys.executable, "-m", "stapdoctor.doctor"]
    argv = ([exe] if isinstance(exe, str) else exe) + ["check"] + (["--json"] if a.json else []) + a.extra
    subprocess.run(argv, capture_output=True)  # warm the page cache
    times = []
    for _ in range(a.n):
        t = time.perf_counter()
        r = subprocess.run(argv, capture_output=True)
        times.append(time.perf_counter() - t)
        if r.returncode not in (0, 1):
            print(r.stderr.decode(errors="replace"), file=sys.stderr)
            return 2
    print(f"stapdoctor check x{a.n}: min {min(times):.3f} s, median {statistics.median(times):.3f} s, "
          f"max {max(times):.3f} s (bar: 0.300 s)")
    return 0 if statistics.median(times) <= 0.3 else 1


if __name__ == "__main__":
    sys.exit(main())
