#!/usr/bin/env python3
"""A stand-in for `stap` running stapdoctor's profile script, for the runner's unit tests.

It behaves like stap -v with scripts/profile*.stp as seen from outside: "Pass N:" lines on stderr,
then the script's records on stdout (begin, a tick a second, the stacks and the end record when its
-G duration_ms timer fires or on SIGINT/SIGTERM). It "samples" the -x target every 10 ms while
the target is running (state R), with real addresses of real functions of the target's files,
found with binutils' nm and the target's /proc/PID/maps (not with stapdoctor's own code).
Behaviour is set by a JSON file named in $FAKE_STAP_CONFIG (keys documented in CONFIG below).
This is not proof that profiling works: the real-kernel VM test is.
"""
import json
import os
import signal
import subprocess
import sys
import time

CONFIG = {
    "argv_log": None,        # write our argv here (JSON)
    "compile_s": 0.2,        # time spent in passes 1-4
    "pass4_fail_stderr": None,  # print this file on stderr after pass 3 and exit 1
    "stacks": [],            # [[ [module substring, symbol], ... leaf first ], ...] sampled round-robin
    "kstack": [],            # kernel symbols (leaf first) prepended when the kernel script is used
    "ignore_timer": False,   # do not end at duration_ms (tests the runner's watchdog)
    "end_stderr": [],        # lines printed on stderr after the stacks
    "exit_code": 0,
    "state_log": None,       # write the target's state when the begin record is printed
    "stdout_noise": [],      # lines printed on stdout before begin (tests parser robustness)
    "no_begin": False,       # do not print the begin record (tests the runner's fallback)
    "lost": 0,               # samples reported lost (stacks table full) in the end record
}

stop = []


def _sig(signum, frame):
    stop.append(signum)


def nm_symbols(path):
    out = {}
    for extra in ([], ["-D"]):
        r = subprocess.run(["nm", "--defined-only", *extra, path], capture_output=True, text=True)
        for line in r.stdout.splitlines():
            parts = line.split()
            if len(parts) == 3 and parts[1] in "tTwWiI":
                out.setdefault(parts[2].split("@")[0], int(parts[0], 16))
    return out


def first_load_vaddr(path):
    r = subprocess.run(["readelf", "-lW", path], capture_output=True, text=True)
    for line in r.stdout.splitlines():
        parts = line.split()
        if parts and parts[0] == "LOAD":
            return int(parts[2], 16)
    return 0


class Resolver:
    def __init__(self, pid):
        self.pid = pid
        self.cache = {}

    def resolve(self, module, symbol):
        key = (module, symbol)
        if key in self.cache:
            return self.cache[key]
        try:
            maps = open(f"/proc/{self.pid}/maps").read().splitlines()
        except OSError:
            return None
        for line in maps:
            parts = line.split()
            if len(parts) < 6 or int(parts[2], 16) != 0:
                continue
            path = parts[5]
            if module not in os.path.basename(path):
                continue
            syms = nm_symbols(path)
            if symbol not in syms:
                return None
            start = int(parts[0].split("-")[0], 16)
            base = start - first_load_vaddr(path)
            addr = base + syms[symbol] + 4
            self.cache[key] = addr
            return addr
        return None


def kernel_addr(symbol):
    try:
        for line in open("/proc/kallsyms"):
            parts = line.split()
            if len(parts) >= 3 and parts[2] == symbol and int(parts[0], 16):
                return int(parts[0], 16) + 8
    except OSError:
        pass
    return None


def state(pid):
    try:
        data = open(f"/proc/{pid}/stat", "rb").read()
    except OSError:
        return None
    return data[data.rfind(b")") + 2:].split()[0].decode()


def main(argv):
    if "-V" in argv or "--version" in argv:
        sys.stderr.write("Systemtap translator/driver (version 5.6/0.193, stapdoctor test stand-in)\n")
        return 0
    cfg = dict(CONFIG)
    if os.environ.get("FAKE_STAP_CONFIG"):
        cfg.update(json.load(open(os.environ["FAKE_STAP_CONFIG"])))
    if cfg["argv_log"]:
        with open(cfg["argv_log"], "w") as f:
            json.dump(argv, f)
    signal.signal(signal.SIGINT, _sig)
    signal.signal(signal.SIGTERM, _sig)
    pid = int(argv[argv.index("-x") + 1])
    duration_ms = 10000
    for i, a in enumerate(argv):
        if a == "-G" and argv[i + 1].startswith("duration_ms="):
            duration_ms = int(argv[i + 1].split("=", 1)[1])
    script = argv[-1]
    kernel = script.endswith("profile-kernel.stp")
    err = sys.stderr
    for n, what in enumerate(["parsed user script", "analyzed script", "translated to C", "compiled C"], 1):
        if stop:
            err.write(f"Pass {n}: interrupted\n")
            return 1
        time.sleep(cfg["compile_s"] / 4)
        if n == 4 and cfg["pass4_fail_stderr"]:
            err.write(open(cfg["pass4_fail_stderr"]).read())
            err.flush()
            return 1
        err.write(f"Pass {n}: {what} using 1virt/1res/1shr/1data kb, in 10usr/0sys/10real ms.\n")
        err.flush()
    err.write("Pass 5: starting run.\n")
    err.flush()
    out = sys.stdout
    for line in cfg["stdout_noise"]:
        out.write(line + "\n")
    if cfg["state_log"]:
        with open(cfg["state_log"], "w") as f:
            f.write(str(state(pid)))
    if not cfg["no_begin"]:
        out.write(f"stapdoctor:begin {pid} {duration_ms}\n")
        out.flush()
    t0 = time.monotonic()
    res = Resolver(pid)
    counts = {}
    samples = 0
    next_tick = t0 + 1
    i = 0
    kaddrs = ""
    if kernel:
        kaddrs = " ".join(f"0x{a:x}" for a in (kernel_addr(s) for s in cfg["kstack"]) if a)
    while not stop:
        now = time.monotonic()
        if not cfg["ignore_timer"] and now - t0 >= duration_ms / 1000:
            break
        if now >= next_tick:
            out.write(f"stapdoctor:tick {samples} 0\n")
            out.flush()
            next_tick += 1
        if state(pid) == "R" and cfg["stacks"]:
            frames = cfg["stacks"][i % len(cfg["stacks"])]
            i += 1
            addrs = [res.resolve(m, s) for m, s in frames]
            if all(addrs):
                samples += 1
                key = (kaddrs, " ".join(f"0x{a:x}" for a in addrs))
                counts[key] = counts.get(key, 0) + 1
        time.sleep(0.01)
    for (k, u), c in counts.items():
        out.write(f"stapdoctor:stack {c}\t{k}\t{u}\n")
    out.write(f"stapdoctor:end {samples + cfg['lost']} {cfg['lost']} {len(counts)}\n")
    out.flush()
    for line in cfg["end_stderr"]:
        err.write(line + "\n")
    err.write("Pass 5: run completed in 0usr/0sys/1000real ms.\n")
    err.flush()
    return cfg["exit_code"]


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
