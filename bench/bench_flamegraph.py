#!/usr/bin/env python3
"""Benchmark `stapdoctor flamegraph`: generated stap output -> SVG (and folded, speedscope).

Measures wall time and peak RSS of the real command line in a child process (os.wait4), for the
issue's two sizes: 20,000 unique stacks (~59 MB; goal <= 2 s, < 500 MB) and 200,000 unique stacks
(~610 MB; must finish with memory that does not grow with the file).  Inputs are generated once
into --workdir by bench/gen_stap.py (deterministic), in two shapes: frame lines that repeat (fixed
call sites) and frame lines that are all distinct (--distinct: the worst case).  With
--flamegraph-dir (a checkout of github.com/brendangregg/FlameGraph, never part of this repository)
it also runs perl's stackcollapse-stap.pl + flamegraph.pl on the same inputs and prints the ratios
(goal: >= 5x faster, peak memory <= 1/4).  Speed is measured here, not in unit tests.

    .venv/bin/python bench/bench_flamegraph.py                 # 20k, both shapes, 3 runs
    .venv/bin/python bench/bench_flamegraph.py --flamegraph-dir /tmp/FlameGraph
    .venv/bin/python bench/bench_flamegraph.py --big           # also 200k
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def command() -> list[str]:
    exe = shutil.which("stapdoctor", path=str(Path(sys.executable).parent)) or shutil.which("stapdoctor")
    if exe:
        return [exe, "flamegraph"]
    # the profiler's function without the doctor's app (same code path)
    return [sys.executable, "-c",
            "import typer; from stapdoctor.profiler.cli import flamegraph; typer.run(flamegraph)"]


def run(argv: list[str]) -> tuple[float, float, int, float]:
    """(wall seconds, peak RSS MiB, exit code, CPU seconds) of one child process.

    CPU time (user + system) is reported too: on a shared machine it moves less than wall time."""
    t0 = time.perf_counter()
    p = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, ru = os.wait4(p.pid, 0)
    dt = time.perf_counter() - t0
    p.returncode = os.waitstatus_to_exitcode(status)
    err = p.stderr.read().decode(errors="replace") if p.stderr else ""
    if p.returncode != 0:
        print(err, file=sys.stderr)
    return dt, ru.ru_maxrss / 1024.0, p.returncode, ru.ru_utime + ru.ru_stime


def ensure_input(workdir: Path, n: int, distinct: bool = False) -> Path:
    path = workdir / f"stap-{n // 1000}k{'-distinct' if distinct else ''}.out"
    if not path.exists():
        print(f"generating {path} ({n:,} unique stacks) ...", flush=True)
        subprocess.run([sys.executable, str(HERE / "gen_stap.py"), "-n", str(n), "-o", str(path),
                        "--seed", "1" if n <= 20000 else "2"] + (["--distinct"] if distinct else []), check=True)
    return path


def bench(label: str, path: Path, out: Path, fmt: str, runs: int) -> tuple[float, float, float] | None:
    """Median wall s, median CPU s, peak RSS MiB of `stapdoctor flamegraph` (None if it failed)."""
    size = path.stat().st_size / 1e6
    times, rss, cpus = [], [], []
    for _ in range(runs):
        dt, mem, rc, cpu = run(command() + [str(path), "-o", str(out), "-f", fmt, "--top", "0"])
        if rc != 0:
            print(f"{label}: exit code {rc}")
            return None
        times.append(dt)
        rss.append(mem)
        cpus.append(cpu)
    times.sort()
    cpus.sort()
    print(f"{label:<32} {size:8.0f} MB in  {fmt:<10} median {times[len(times) // 2]:6.2f} s  "
          f"(min {times[0]:.2f}, max {times[-1]:.2f})  cpu {cpus[len(cpus) // 2]:5.2f} s  peak RSS {max(rss):6.0f} MiB  "
          f"output {out.stat().st_size / 1e6:6.1f} MB", flush=True)
    return times[len(times) // 2], cpus[len(cpus) // 2], max(rss)


def bench_perl(label: str, fg_dir: Path, path: Path, workdir: Path, runs: int) -> tuple[float, float, float] | None:
    """stackcollapse-stap.pl INPUT > folded; flamegraph.pl folded > svg: (median wall s of both,
    median CPU s of both, the larger peak RSS MiB)."""
    folded, svg = workdir / "perl.folded", workdir / "perl.svg"
    times, cpus, rss = [], [], []
    for _ in range(runs):
        wall = cpu = peak = 0.0
        for script, src, dst in (("stackcollapse-stap.pl", path, folded), ("flamegraph.pl", folded, svg)):
            with open(dst, "wb") as out:
                t0 = time.perf_counter()
                p = subprocess.Popen(["perl", str(fg_dir / script), str(src)], stdout=out, stderr=subprocess.DEVNULL)
                _, status, ru = os.wait4(p.pid, 0)
                wall += time.perf_counter() - t0
            if os.waitstatus_to_exitcode(status) != 0:
                print(f"{label}: {script} failed")
                return None
            cpu += ru.ru_utime + ru.ru_stime
            peak = max(peak, ru.ru_maxrss / 1024.0)
        times.append(wall)
        cpus.append(cpu)
        rss.append(peak)
    times.sort()
    cpus.sort()
    print(f"{label:<32} perl collapse + flamegraph.pl     median {times[len(times) // 2]:6.2f} s  "
          f"cpu {cpus[len(cpus) // 2]:5.2f} s  peak RSS {max(rss):6.0f} MiB", flush=True)
    return times[len(times) // 2], cpus[len(cpus) // 2], max(rss)


def compare(ours, perl) -> None:
    if ours and perl:
        print(f"{'':32} ratio: {perl[0] / ours[0]:.1f}x faster (wall), {perl[1] / ours[1]:.1f}x (cpu), "
              f"peak memory {ours[2] / perl[2]:.2f} of perl's  (goal: >= 5x, <= 0.25)", flush=True)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--workdir", type=Path, default=Path("/tmp/stapdoctor-bench"))
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--big", action="store_true", help="also the 200,000-stack (~600 MB) input")
    ap.add_argument("--flamegraph-dir", type=Path, metavar="DIR",
                    help="a FlameGraph checkout: compare with its stackcollapse-stap.pl + flamegraph.pl")
    args = ap.parse_args()
    args.workdir.mkdir(parents=True, exist_ok=True)
    fg = args.flamegraph_dir
    if fg is not None and not (fg / "stackcollapse-stap.pl").is_file():
        ap.error(f"{fg}: no stackcollapse-stap.pl in it")
    print(f"command: {' '.join(command()[:2])} ...   cpus: {os.cpu_count()}   load: {os.getloadavg()[0]:.2f}")
    small = ensure_input(args.workdir, 20_000)
    distinct = ensure_input(args.workdir, 20_000, distinct=True)
    for label, path in (("20k stacks", small), ("20k stacks, distinct lines", distinct)):
        tag = path.stem
        ours = bench(f"{label} -> svg", path, args.workdir / f"flame-{tag}.svg", "svg", args.runs)
        if fg is not None:
            compare(ours, bench_perl(f"{label} -> svg", fg, path, args.workdir, args.runs))
    bench("20k stacks -> folded", small, args.workdir / "flame-20k.folded", "folded", args.runs)
    bench("20k stacks -> speedscope", small, args.workdir / "flame-20k.json", "speedscope", args.runs)
    if args.big:
        big = ensure_input(args.workdir, 200_000)
        bench("200k stacks -> svg", big, args.workdir / "flame-200k.svg", "svg", 1)
        # same 20k unique stacks, 10x the bytes: memory must stay where the 20k run was
        rep = args.workdir / "stap-20k-x10.out"
        if not rep.exists():
            with open(rep, "wb") as out:
                for _ in range(10):
                    with open(small, "rb") as f:
                        shutil.copyfileobj(f, out, 1 << 22)
        bench("20k stacks x10 repeated -> svg", rep, args.workdir / "flame-20k-x10.svg", "svg", 1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
