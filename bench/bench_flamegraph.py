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

The two are run in turns (ours, perl's, ours, ...) and each round gives a ratio: on a shared machine
the speed of the CPU drifts by half within minutes, and a ratio of two medians taken minutes apart
measures the drift.  The child runs as an installed copy does, from cached bytecode: with
PYTHONDONTWRITEBYTECODE set (as in some CI shells) a checkout would compile its own modules at every
start, which no pip-installed copy does.

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
#: the child's environment: bytecode is written and read, as by a pip-installed copy (see the docstring)
_CHILD_ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}


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
    p = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=_CHILD_ENV)
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


def _ours(path: Path, out: Path, fmt: str) -> tuple[float, float, float] | None:
    """(wall s, CPU s, peak RSS MiB) of one `stapdoctor flamegraph` run, None if it failed."""
    dt, mem, rc, cpu = run(command() + [str(path), "-o", str(out), "-f", fmt, "--top", "0"])
    if rc != 0:
        print(f"{path.name}: exit code {rc}")
        return None
    return dt, cpu, mem


def _perl(fg_dir: Path, path: Path, workdir: Path) -> tuple[float, float, float] | None:
    """stackcollapse-stap.pl INPUT > folded; flamegraph.pl folded > svg: (wall s of both, CPU s of
    both, the larger peak RSS MiB), None if a script failed."""
    folded, svg = workdir / "perl.folded", workdir / "perl.svg"
    wall = cpu = peak = 0.0
    for script, src, dst in (("stackcollapse-stap.pl", path, folded), ("flamegraph.pl", folded, svg)):
        with open(dst, "wb") as out:
            t0 = time.perf_counter()
            p = subprocess.Popen(["perl", str(fg_dir / script), str(src)], stdout=out, stderr=subprocess.DEVNULL)
            _, status, ru = os.wait4(p.pid, 0)
            wall += time.perf_counter() - t0
        if os.waitstatus_to_exitcode(status) != 0:
            print(f"{path.name}: {script} failed")
            return None
        cpu += ru.ru_utime + ru.ru_stime
        peak = max(peak, ru.ru_maxrss / 1024.0)
    return wall, cpu, peak


def _median(xs: list[float]) -> float:
    xs = sorted(xs)
    return xs[len(xs) // 2] if len(xs) % 2 else (xs[len(xs) // 2 - 1] + xs[len(xs) // 2]) / 2


def bench(label: str, path: Path, out: Path, fmt: str, runs: int, fg_dir: Path | None = None,
          workdir: Path | None = None) -> bool:
    """Print `stapdoctor flamegraph`'s median wall and CPU time and peak RSS; with ``fg_dir``, perl's
    too, run in turns with ours, and the median of the per-round ratios.  False if a run failed."""
    size = path.stat().st_size / 1e6
    if _ours(path, out, fmt) is None:  # warm-up: bytecode written, input in the page cache
        return False
    ours, perl = [], []
    for _ in range(runs):
        r = _ours(path, out, fmt)
        if r is None:
            return False
        ours.append(r)
        if fg_dir is not None:
            q = _perl(fg_dir, path, workdir or out.parent)
            if q is None:
                return False
            perl.append(q)
    times = sorted(r[0] for r in ours)
    print(f"{label:<32} {size:6.0f} MB in  {fmt:<10} median {_median(times):6.2f} s  "
          f"(min {times[0]:.2f}, max {times[-1]:.2f})  cpu {_median([r[1] for r in ours]):5.2f} s  "
          f"peak RSS {max(r[2] for r in ours):6.0f} MiB  output {out.stat().st_size / 1e6:6.1f} MB", flush=True)
    if perl:
        print(f"{'':32} perl collapse + flamegraph.pl     median {_median([q[0] for q in perl]):6.2f} s  "
              f"cpu {_median([q[1] for q in perl]):5.2f} s  peak RSS {max(q[2] for q in perl):6.0f} MiB", flush=True)
        wall = [q[0] / r[0] for r, q in zip(ours, perl)]
        cpu = [q[1] / r[1] for r, q in zip(ours, perl)]
        print(f"{'':32} ratio, median of {len(wall)} rounds: {_median(wall):.1f}x faster (wall; "
              f"rounds {min(wall):.1f}-{max(wall):.1f}), {_median(cpu):.1f}x (cpu), peak memory "
              f"{max(r[2] for r in ours) / max(q[2] for q in perl):.2f} of perl's  (goal: >= 5x, <= 0.25)",
              flush=True)
    return True


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
        bench(f"{label} -> svg", path, args.workdir / f"flame-{path.stem}.svg", "svg", args.runs, fg, args.workdir)
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
