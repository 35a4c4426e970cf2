#!/usr/bin/env python3
"""Generate realistic SystemTap print_ustack + count output for benchmarks.

N unique stacks (default 20,000) of depth 4-60 over a few thousand symbols in a handful of modules,
~4% unresolved frames (printed the way stap prints frames it cannot name), counts heavy-tailed.
Call sites are fixed per (caller, callee) pair as in a real binary, so frame lines repeat.
Deterministic for a given --seed.  20,000 stacks make ~59 MB, 200,000 ~610 MB.
With --distinct every frame line gets its own offset and every stack its own load address (as when
the sampled PC varies, or stacks of many processes are collapsed together), so frame lines do not
repeat: the worst case for a parser that caches frame lines.

    python bench/gen_stap.py -n 20000 -o /tmp/stap-20k.out
"""

from __future__ import annotations

import argparse
import itertools
import random
import sys

MODULES = [
    # (path, load base, number of symbols)
    ("/opt/app/bin/orderd", 0x55D1C3A00000, 2600),
    ("/usr/lib/x86_64-linux-gnu/libc.so.6", 0x7F3A1C000000, 420),
    ("/usr/lib/x86_64-linux-gnu/libstdc++.so.6.0.30", 0x7F3A1C400000, 380),
    ("/usr/lib/x86_64-linux-gnu/libssl.so.3", 0x7F3A1CA00000, 160),
    ("/usr/lib/x86_64-linux-gnu/libcrypto.so.3", 0x7F3A1CC00000, 240),
    ("/usr/lib/x86_64-linux-gnu/libz.so.1.2.13", 0x7F3A1D200000, 40),
    ("/usr/lib/x86_64-linux-gnu/libpthread.so.0", 0x7F3A1D400000, 30),
]

PARTS = ["order", "queue", "http", "parse", "json", "buffer", "session", "cache", "index", "lookup",
         "encode", "decode", "write", "read", "flush", "handle", "dispatch", "worker", "pool", "alloc",
         "hash", "table", "router", "request", "response", "header", "stream", "socket", "event", "timer"]


def make_symbols(rng: random.Random):
    syms = []  # (name, module_index, start, size)
    for mi, (path, base, count) in enumerate(MODULES):
        addr = 0x1000
        for k in range(count):
            if mi == 0 and k % 5 == 0:
                a, b, c = rng.sample(PARTS, 3)
                name = f"app::{a}::{b.capitalize()}<{c}_t, std::allocator<{c}_t> >::{a}_{b}"
            elif mi == 0:
                name = "_".join(rng.sample(PARTS, rng.randint(2, 4))) + f"_{k}"
            elif mi == 2:
                name = f"std::__detail::_{rng.choice(PARTS).capitalize()}_{k}<char, std::char_traits<char> >"
            else:
                name = f"{rng.choice(PARTS)}_{path.rsplit('/', 1)[1].split('.')[0]}_{k}"
            size = rng.randint(0x20, 0x900)
            syms.append((name, mi, addr, size))
            addr += size + rng.randint(0, 0x40)
    return syms


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("-n", "--stacks", type=int, default=20000, help="unique stacks (default 20000)")
    ap.add_argument("-o", "--output", default="-", help="output file (default stdout)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--unresolved", type=float, default=0.04, help="share of unresolved frames")
    ap.add_argument("--distinct", action="store_true", help="a new offset for every frame line (none repeats)")
    args = ap.parse_args(argv)
    rng = random.Random(args.seed)
    syms = make_symbols(rng)
    n_app = MODULES[0][2]
    # call graph: every symbol calls a few others; app code calls into libraries now and then
    callees = []
    for i in range(len(syms)):
        k = rng.randint(2, 6)
        lst = []
        for _ in range(k):
            if syms[i][1] == 0 and rng.random() < 0.8:
                lst.append(rng.randrange(n_app))
            else:
                lst.append(rng.randrange(len(syms)))
        callees.append(lst)
    callsite: dict[tuple[int, int], int] = {}
    counter = itertools.count(rng.randrange(1 << 20))
    unresolved: dict[tuple[int, int], int] = {}

    def frame_line(caller: int, callee_or_leaf: int) -> str:
        name, mi, start, size = syms[caller]
        key = (caller, callee_or_leaf)
        off = callsite.get(key)
        if off is None:
            off = callsite[key] = rng.randrange(1, size)
            unresolved[key] = rng.random() < args.unresolved
        path, base, _ = MODULES[mi]
        if args.distinct:  # another offset, and the process's load address moves (ASLR, many processes)
            off = next(counter) % size or 1
            base += written << 28
        addr = base + start + off
        if unresolved[key]:
            if rng.random() < 0.85:
                return f" 0x{addr:x} : 0x{addr:x} [{path}+0x{start + off:x}/0x{base >> 24:x}000]\n"
            return f" 0x{addr:x} : 0x{addr:x}\n"
        return f" 0x{addr:x} : {name}+0x{off:x}/0x{size:x} [{path}]\n"

    # fixed roots as in a real process
    start_i = next(i for i, s in enumerate(syms) if s[1] == 0)
    libc_i = next(i for i, s in enumerate(syms) if s[1] == 1)
    for i, name in ((start_i, "_start"), (libc_i, "__libc_start_main"), (start_i + 1, "main")):
        syms[i] = (name,) + syms[i][1:]
    seen: set[tuple[int, ...]] = set()
    out = sys.stdout if args.output == "-" else open(args.output, "w", encoding="utf-8", buffering=1 << 20)
    written = 0
    while written < args.stacks:
        depth = rng.randint(4, 60)
        path = [start_i, libc_i, start_i + 1]
        cur = start_i + 1
        while len(path) < depth:
            cur = rng.choice(callees[cur])
            path.append(cur)
        t = tuple(path)
        if t in seen:
            continue
        seen.add(t)
        lines = []
        prev = -1
        for idx in reversed(path):
            lines.append(frame_line(idx, prev))
            prev = idx
        count = max(1, int(rng.paretovariate(1.1) * 3))
        out.write("".join(lines))
        out.write(f"\t{count}\n")
        written += 1
    if out is not sys.stdout:
        out.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
