"""`stapdoctor check` on this very machine, and target checks on real processes and binaries."""
import gzip
import json
import subprocess
import sys
import time

import pytest

from stapdoctor.doctor import checks, snapshot


def live_config():
    try:
        return gzip.decompress(open("/proc/config.gz", "rb").read()).decode()
    except OSError:
        return None


def test_this_machine():
    r = subprocess.run([sys.executable, "-m", "stapdoctor.doctor", "check", "--json"], capture_output=True, text=True)
    assert r.returncode in (0, 1) and "Traceback" not in r.stderr
    got = {f["id"]: f for f in json.loads(r.stdout)["findings"]}
    cfg = live_config()
    if cfg is not None and "CONFIG_MODULES=y" not in cfg:
        # These sandboxes run a kernel without loadable modules: stap cannot work at all.
        assert got["kernel.modules"]["status"] == "fail"
        assert "stap cannot work at all" in got["kernel.modules"]["evidence"]
        assert r.returncode == 1
    assert got["kernel.config"]["status"] in ("pass", "warn", "fail")


def test_live_snapshot_records_sources(tmp_path):
    out = tmp_path / "host.json"
    r = subprocess.run([sys.executable, "-m", "stapdoctor.doctor", "snapshot", "-o", str(out)], capture_output=True,
                       text=True)
    assert r.returncode == 0, r.stderr
    data = json.loads(out.read_text())
    assert data["source"]["kind"] == "live" and data["source"]["kernel_release_from"] == "uname -r"
    assert data["files"]["/proc/version"]["status"] == "ok"


def _build(tmp_path, name, flags):
    src = tmp_path / "t.c"
    src.write_text("#include <unistd.h>\nstatic int f(int x){return x*2;}\nint main(void){for(;;){f(1);sleep(1);}}\n")
    out = tmp_path / name
    subprocess.run(["gcc", *flags, "-o", str(out), str(src)], check=True)
    return out


def test_binary_with_symbols_passes(tmp_path):
    exe = _build(tmp_path, "withsyms", ["-g", "-O1"])
    snap = snapshot.collect("/", binary=str(exe))
    f = {x.id: x for x in checks.run_checks(snap)}["target.symbols"]
    names = [o["path"] for o in snap.target["objects"]]
    assert str(exe) in names and any("libc.so" in n for n in names)
    assert "withsyms" not in f.evidence.split("partial")[0] or f.status == "pass"


def test_stripped_binary_is_listed(tmp_path):
    exe = _build(tmp_path, "stripped", ["-O1", "-s"])
    snap = snapshot.collect("/", binary=str(exe))
    f = {x.id: x for x in checks.run_checks(snap)}["target.symbols"]
    assert f.status == "warn" and "stripped" in f.evidence
    # the remedy is this host's family's, from knowledge/debug_symbols.toml (this machine: Debian 12)
    assert "Debian: apt-get install PKG-dbgsym (in the debian-debug archive, suite bookworm-debug" in f.remedy
    assert "dnf debuginfo-install" not in f.remedy


def test_debug_symbols_remedy_for_each_family_and_for_an_unknown_one():
    from stapdoctor.doctor import knowledge

    assert knowledge.debug_symbols_remedy("rocky").startswith("Fedora, RHEL and their rebuilds: dnf debuginfo-install PKG")
    assert "suites quantal and quantal-updates" in knowledge.debug_symbols_remedy("ubuntu", "quantal")
    every = knowledge.debug_symbols_remedy("arch")
    assert all(w in every for w in ("Debian: apt-get install PKG-dbgsym", "Ubuntu: apt-get install PKG-dbgsym",
                                    "dnf debuginfo-install PKG", "suite CODENAME-debug"))


def test_pid_target(tmp_path):
    exe = _build(tmp_path, "sleeper", ["-g"])
    p = subprocess.Popen([str(exe)])
    try:
        time.sleep(0.3)
        r = subprocess.run([sys.executable, "-m", "stapdoctor.doctor", "check", "--pid", str(p.pid), "--json"],
                           capture_output=True, text=True)
        got = {f["id"]: f for f in json.loads(r.stdout)["findings"]}
        assert "target.symbols" in got and got["target.symbols"]["title"].endswith(f"pid {p.pid})")
    finally:
        p.kill()
        p.wait()


def test_pid_that_exited():
    """A pid that names no process is a bad argument: exit 2, as with --snapshot (issue 14 item 10)."""
    p = subprocess.Popen(["true"])
    p.wait()
    r = subprocess.run([sys.executable, "-m", "stapdoctor.doctor", "check", "--pid", str(p.pid), "--json"],
                       capture_output=True, text=True)
    assert r.returncode == 2 and "no such process" in r.stderr and r.stdout == ""
