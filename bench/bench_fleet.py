"""Time and memory of `stapdoctor fleet` against 1, 10 and 30 test hosts (network namespaces, real SSH).

Why: through Ansible a fleet run's cost is Ansible's per-host work on the controller; the goal on the 2-core
development machines is 10 hosts <= 2x one host, 30 hosts <= 4x, controller memory <= 600 MB at 30, and
the default transport is the one that meets it. Each size runs `stapdoctor fleet --json --transport T` for
each transport, alternating (the same load for both), --repeat times (median reported), while the
controller's process tree (stapdoctor, ansible-playbook, its forks, ssh) is sampled every 50 ms: the peak
of the summed RSS (pages shared by the forks counted in each) and of the summed PSS (shared pages divided
among their users: the memory the tree really takes).

    sudo .venv/bin/python bench/bench_fleet.py [--hosts 1,10,30] [--repeat 3] [--transport ssh,ansible]
        [--forks N] [--json out.json]
        [--ssh-args '-o KexAlgorithms=curve25519-sha256']  # appended to every host's ansible_ssh_common_args
        [--floor]         # also time a play of one bare `raw: true` task: Ansible's own per-host floor
        [--compare DIR]   # also run another version on the same hosts, alternating (same load), e.g. the
                          # one before: mkdir -p DIR/stapdoctor && git archive REV doctor playbooks profiler |
                          #   tar -x -C DIR/stapdoctor
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _children() -> dict[int, list[int]]:
    kids: dict[int, list[int]] = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        kids.setdefault(ppid, []).append(int(name))
    return kids


def _tree(pid: int) -> list[int]:
    kids, out, todo = _children(), [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo += kids.get(p, [])
    return out


def _mem_kib(pid: int) -> tuple[int, int]:
    """(RSS, PSS) of one process in KiB, from smaps_rollup."""
    rss = pss = 0
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Rss:"):
                    rss = int(line.split()[1])
                elif line.startswith("Pss:"):
                    pss = int(line.split()[1])
    except OSError:
        pass
    return rss, pss


class Sampler(threading.Thread):
    def __init__(self, pid: int, every: float = 0.05):
        super().__init__(daemon=True)
        self.pid, self.every = pid, every
        self.peak_rss = self.peak_pss = self.peak_procs = 0
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            pids = _tree(self.pid)
            mems = [_mem_kib(p) for p in pids]
            self.peak_rss = max(self.peak_rss, sum(m[0] for m in mems))
            self.peak_pss = max(self.peak_pss, sum(m[1] for m in mems))
            self.peak_procs = max(self.peak_procs, len(pids))
            self.stop.wait(self.every)


FLOOR_PLAY = """
- hosts: stap_hosts
  gather_facts: false
  tasks:
    - ansible.builtin.raw: "true"
      args:
        executable: /bin/sh
      changed_when: false
"""


def run_floor(inventory: Path, home: Path, forks: int) -> dict:
    """ansible-playbook with one bare raw task: what any one-task-per-host play costs."""
    (home / "floor.yml").write_text(FLOOR_PLAY)
    argv = [str(Path(sys.executable).with_name("ansible-playbook")), "-i", str(inventory), str(home / "floor.yml"),
            "-f", str(forks)]
    env = dict(os.environ, HOME=str(home), ANSIBLE_CONFIG=str(ROOT / "playbooks" / "ansible.cfg"))
    env.setdefault("ANSIBLE_SSH_ARGS", "-o ControlMaster=no")
    t0 = time.monotonic()
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    _, status, usage = os.wait4(proc.pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit("the floor play failed")
    return {"seconds": time.monotonic() - t0, "cpu_s": usage.ru_utime + usage.ru_stime}


def run_once(inventory: Path, home: Path, forks: int | None, src: Path | None = None,
             transport: str | None = None) -> dict:
    argv = [sys.executable, "-m", "stapdoctor.doctor", "fleet", "-i", str(inventory), "--json"]
    if transport:
        argv += ["--transport", transport]
    if forks:
        argv += ["-f", str(forks)]
    env = dict(os.environ, HOME=str(home))
    if src is not None:
        env["PYTHONPATH"] = str(src)
    t0 = time.monotonic()
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    sampler = Sampler(proc.pid)
    sampler.start()
    out = proc.stdout.read()
    err = proc.stderr.read()
    _, status, usage = os.wait4(proc.pid, 0)  # its rusage covers every reaped descendant: ansible, forks, ssh
    proc.returncode = os.waitstatus_to_exitcode(status)
    seconds = time.monotonic() - t0
    sampler.stop.set()
    sampler.join()
    data = json.loads(out)
    bad = data.get("unreachable") or [h for h, r in data["hosts"].items() if r.get("error")]
    if bad:
        raise SystemExit(f"a host was not collected: {bad} {err[-500:]}")
    return {"seconds": seconds, "hosts": len(data["hosts"]), "cpu_s": usage.ru_utime + usage.ru_stime,
            "peak_rss_mb": sampler.peak_rss / 1024,
            "peak_pss_mb": sampler.peak_pss / 1024, "peak_processes": sampler.peak_procs}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--hosts", default="1,10,30", help="comma-separated fleet sizes")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--transport", default="ssh,ansible", help="comma-separated: ssh, ansible")
    ap.add_argument("--forks", type=int, default=None, help="passed to stapdoctor fleet -f")
    ap.add_argument("--ssh-args", default="", help="appended to every host's ansible_ssh_common_args")
    ap.add_argument("--json", type=Path, help="also write the results here")
    ap.add_argument("--compare", type=Path, help="a directory holding another version as DIR/stapdoctor/")
    ap.add_argument("--floor", action="store_true", help="also time a bare one-task play on the same hosts")
    args = ap.parse_args(argv)
    if os.geteuid() != 0:
        ap.error("test hosts need root (mounts, network namespaces)")
    sys.path.insert(0, str(ROOT))
    from stapdoctor.testing.testhosts import bring_up_hosts

    results = []
    versions = [(t, None, t) for t in args.transport.split(",")]
    if args.compare:  # another version: its own default transport
        versions.append(("compare", args.compare.resolve(), None))
    for n in [int(x) for x in args.hosts.split(",")]:
        runs: dict[str, list[dict]] = {name: [] for name, _, _ in versions}
        with tempfile.TemporaryDirectory(prefix="bench-fleet-") as tmp, \
                bring_up_hosts(n, name_prefix="bench") as fleet:
            extra = {name: {"ansible_ssh_common_args": f"{hv['ansible_ssh_common_args']} {args.ssh_args}"}
                     for name, hv in fleet.ansible_host_vars().items()} if args.ssh_args else None
            inv = fleet.write_inventory(Path(tmp) / "inventory.yml", host_vars=extra)
            floor = []
            for _ in range(args.repeat):
                for name, src, transport in versions:
                    runs[name].append(run_once(inv, Path(tmp), args.forks, src, transport))
                if args.floor:
                    from stapdoctor.doctor.fleet import default_forks
                    floor.append(run_floor(inv, Path(tmp), args.forks or default_forks()))
        if floor:
            print(json.dumps({"version": "bare raw play", "hosts": n,
                              "seconds_median": round(statistics.median(r["seconds"] for r in floor), 2),
                              "controller_cpu_s_median": round(statistics.median(r["cpu_s"] for r in floor), 2)}),
                  flush=True)
        for name, _, _ in versions:
            got = runs[name]
            res = {"version": name, "hosts": n,
                   "seconds_median": round(statistics.median(r["seconds"] for r in got), 2),
                   "seconds": [round(r["seconds"], 2) for r in got],
                   "controller_cpu_s_median": round(statistics.median(r["cpu_s"] for r in got), 2),
                   "peak_rss_mb": round(max(r["peak_rss_mb"] for r in got)),
                   "peak_pss_mb": round(max(r["peak_pss_mb"] for r in got)),
                   "peak_processes": max(r["peak_processes"] for r in got)}
            results.append(res)
            print(json.dumps(res), flush=True)
    print(f"\n{'version':>8} {'hosts':>5} {'median s':>9} {'x 1 host':>8} {'CPU s':>6} {'peak RSS MB':>12} "
          f"{'peak PSS MB':>12} {'procs':>6}")
    for r in results:
        one = next((o["seconds_median"] for o in results if o["version"] == r["version"] and o["hosts"] == 1), None)
        ratio = f"{r['seconds_median'] / one:.1f}x" if one else "-"
        print(f"{r['version']:>8} {r['hosts']:>5} {r['seconds_median']:>9} {ratio:>8} "
              f"{r['controller_cpu_s_median']:>6} {r['peak_rss_mb']:>12} {r['peak_pss_mb']:>12} "
              f"{r['peak_processes']:>6}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
