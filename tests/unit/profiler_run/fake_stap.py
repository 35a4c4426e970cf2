#!/usr/bin/env python3
"""A stand-in for `stap` running stapdoctor's profile script, for the runner's unit tests.

It behaves like stap -v with scripts/profile*.stp as seen from outside: "Pass N:" lines on stderr,
then the script's records on stdout (begin, a tick a second, the stacks and the end record when its
-G duration_ms timer fires or on SIGINT/SIGTERM). It "samples" the -x target every 10 ms while
the target is running (state R), with real addresses of real functions of the target's files,
found with binutils' nm and the target's /proc/PID/maps (not with stapdoctor's own code).

Two more faces, for compile here / run there:
 * `stap -p4 -r KREL -m NAME ...` stops after pass 4 and writes NAME.ko into its cwd: a real ELF
   relocatable built with gcc -c whose .modinfo says vermagic=KREL and name=NAME and whose
   .gnu.linkonce.this_module holds NAME at struct module's name offset, as a module's do;
 * called as `staprun` (argv[0]'s name), `staprun [-b N] -x PID PATH.ko duration_ms=N` prints the
   same records as pass 5 (staprun prints no "Pass" lines). As the real one, it names the module
   after PATH (up to the last dot) and fails to reach one registered under another name.
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
    "stacks": [],            # [[ [module substring, symbol], ... leaf first ], ...] sampled round-robin;
                             # symbol "NAME@FILE": NAME's address in FILE (an unstripped copy of the module)
    "kstack": [],            # kernel symbols (leaf first) prepended when the kernel script is used
    "ignore_timer": False,   # do not end at duration_ms (tests the runner's watchdog)
    "end_stderr": [],        # lines printed on stderr after the stacks
    "exit_code": 0,
    "state_log": None,       # write the target's state when the begin record is printed
    "stdout_noise": [],      # lines printed on stdout before begin (tests parser robustness)
    "no_begin": False,       # do not print the begin record (tests the runner's fallback)
    "lost": 0,               # samples reported lost (stacks table full) in the end record
    "staprun_argv_log": None,  # as staprun: write our argv here (JSON)
    "staprun_realpath_log": None,  # as staprun: write the module file's real path here
}

MODULE_C = """
static const char vermagic[] __attribute__((section(".modinfo"), used, aligned(1))) = "vermagic=%s SMP preempt mod_unload modversions ";
static const char name[] __attribute__((section(".modinfo"), used, aligned(1))) = "name=%s";
struct fake_module { char state_and_list[24]; char name[56]; char rest[64]; };
struct fake_module __this_module __attribute__((section(".gnu.linkonce.this_module"), used)) = { {0}, "%s", {0} };
int init_module(void) { return 0; }
"""


def write_module(path, release, name):
    """A tiny ELF relocatable shaped like a kernel module where it matters here (.modinfo)."""
    import tempfile

    with tempfile.TemporaryDirectory() as d:
        src = os.path.join(d, "m.c")
        with open(src, "w") as f:
            f.write(MODULE_C % (json.dumps(release)[1:-1], json.dumps(name)[1:-1], json.dumps(name)[1:-1]))
        subprocess.run(["gcc", "-c", "-o", path, src], check=True)


def registered_name(path):
    """The name in .gnu.linkonce.this_module, read with binutils (not stapdoctor's reader)."""
    import tempfile

    with tempfile.NamedTemporaryFile() as out:
        subprocess.run(["objcopy", "-O", "binary", "--only-section=.gnu.linkonce.this_module", path, out.name],
                       check=True)
        data = open(out.name, "rb").read()
    return data.strip(b"\0").split(b"\0")[0].decode()

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
            # "func@/path/unstripped": the symbol's address taken from another copy of the file (the
            # mapped one is stripped, so its frames have no symbol for stapdoctor to find)
            symbol_name, _, source = symbol.partition("@")
            syms = nm_symbols(source or path)
            symbol = symbol_name
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
    staprun = os.path.basename(sys.argv[0]).startswith("staprun")
    if "-V" in argv or "--version" in argv:
        what = "module loader/runner" if staprun else "translator/driver"
        sys.stderr.write(f"Systemtap {what} (version 5.6/0.193, stapdoctor test stand-in)\n")
        return 0
    cfg = dict(CONFIG)
    if os.environ.get("FAKE_STAP_CONFIG"):
        cfg.update(json.load(open(os.environ["FAKE_STAP_CONFIG"])))
    log = cfg["staprun_argv_log"] if staprun else cfg["argv_log"]
    if log:
        with open(log, "w") as f:
            json.dump(argv, f)
    signal.signal(signal.SIGINT, _sig)
    signal.signal(signal.SIGTERM, _sig)
    err = sys.stderr
    duration_ms = 10000
    if staprun:
        pid = int(argv[argv.index("-x") + 1])
        ko = [a for a in argv if a.endswith(".ko")]
        if not ko or not os.path.isfile(ko[0]):
            err.write(f"ERROR: Couldn't open '{ko[0] if ko else ''}'\n")
            return 1
        if cfg["staprun_realpath_log"]:
            with open(cfg["staprun_realpath_log"], "w") as f:
                f.write(os.path.realpath(ko[0]))
        modname = os.path.basename(ko[0]).rsplit(".", 1)[0]
        if registered_name(ko[0]) != modname:
            err.write(f"ERROR: Couldn't open control channel '/proc/systemtap/{modname}/.cmd': No such file or directory\n")
            err.write(f"ERROR: '{modname}' is not a zombie systemtap module.\n")
            return 1
        for a in argv[argv.index(ko[0]) + 1:]:
            if a.startswith("duration_ms="):
                duration_ms = int(a.split("=", 1)[1])
        kernel = False
    else:
        for i, a in enumerate(argv):
            if a == "-G" and argv[i + 1].startswith("duration_ms="):
                duration_ms = int(argv[i + 1].split("=", 1)[1])
        script = next(a for a in argv if a.endswith(".stp"))
        kernel = script.endswith("profile-kernel.stp")
        last_pass = 4 if "-p4" in argv else 5
        for n, what in enumerate(["parsed user script", "analyzed script", "translated to C", "compiled C"], 1):
            if stop:
                err.write(f"Pass {n}: interrupted\n")
                return 1
            end = time.monotonic() + cfg["compile_s"] / 4
            while not stop and time.monotonic() < end:  # a signal interrupts a pass, as with stap
                time.sleep(0.02)
            if stop:
                err.write(f"Pass {n}: interrupted\n")
                return 1
            if n == 4 and cfg["pass4_fail_stderr"]:
                err.write(open(cfg["pass4_fail_stderr"]).read())
                err.flush()
                return 1
            err.write(f"Pass {n}: {what} using 1virt/1res/1shr/1data kb, in 10usr/0sys/10real ms.\n")
            err.flush()
        if last_pass == 4:
            release = argv[argv.index("-r") + 1] if "-r" in argv else os.uname().release
            name = argv[argv.index("-m") + 1] if "-m" in argv else "stap_fake"
            write_module(f"{name}.ko", release, name)  # into the cwd, as stap -p4 -m NAME does
            sys.stdout.write(f"{name}.ko\n")
            return 0
        pid = int(argv[argv.index("-x") + 1])
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
    if not staprun:
        err.write("Pass 5: run completed in 0usr/0sys/1000real ms.\n")
    err.flush()
    return cfg["exit_code"]


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
