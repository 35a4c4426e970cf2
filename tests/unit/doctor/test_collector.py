"""The POSIX-sh fleet collector on this machine: the controller's verdicts equal `stapdoctor check`'s,
and what a hostile host sends is refused without writing anything on the controller."""
import base64
import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from stapdoctor.doctor import collected, fleet

COLLECTOR = Path(__file__).resolve().parents[3] / "playbooks/roles/doctor_collect/files/collect.sh"


def run_collector(shell: str, *args: str, env: dict | None = None) -> str:
    if shutil.which(shell) is None:
        pytest.fail(f"{shell} is not installed (tests/apt-packages.txt)")
    r = subprocess.run([shutil.which(shell), str(COLLECTOR), *args], capture_output=True, text=True, timeout=120, env=env)
    assert r.returncode == 0, r.stderr
    return r.stdout


@pytest.mark.parametrize("shell", ["dash", "bash"])
def test_collector_output_gives_the_live_verdicts(shell):
    rep = fleet.check_output("thishost", run_collector(shell))
    live = json.loads(subprocess.run([sys.executable, "-m", "stapdoctor.doctor", "check", "--json"],
                                     capture_output=True, text=True).stdout)
    got = {f["id"]: f["status"] for f in rep["findings"]}
    want = {f["id"]: f["status"] for f in live["findings"]}
    assert rep["source"]["kind"] == "collector"
    assert rep["kernel_release"] == live["kernel_release"]
    assert got == want


def test_collector_writes_nothing_outside_its_private_directory():
    """No fixed name in a shared directory (/tmp/stapdoctor-snapshot.tar.gz was one, written as root).

    The collector runs with an empty private /tmp (its own mount namespace), so what is left there is
    its alone: other tests and sessions use the real /tmp at the same time (pytest-xdist)."""
    if os.geteuid() != 0 or shutil.which("unshare") is None:
        pytest.skip("needs root and unshare for a private /tmp (CI runs as root)")
    # $0 = dash, $1 = the collector; with TMPDIR (a private directory) and without it (/tmp itself)
    script = ('mount -t tmpfs -o mode=1777 tmpfs /tmp && mkdir /tmp/private && '
              'TMPDIR=/tmp/private "$0" "$1" && echo "== left in TMPDIR:" && ls -A /tmp/private && '
              'rmdir /tmp/private && env -u TMPDIR "$0" "$1" >/dev/null && echo "== left in /tmp:" && ls -A /tmp')
    r = subprocess.run(["unshare", "--mount", "--propagation", "private", "sh", "-c", script,
                        shutil.which("dash"), str(COLLECTOR)], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    out, _, left = r.stdout.partition("== left in TMPDIR:\n")
    assert out.startswith("stapdoctor-collect/1 base64\n") and out.endswith("stapdoctor-collect/1 end\n")
    assert left == "== left in /tmp:\n", left  # its mktemp -d directories are gone, nothing else was made


def test_collector_without_base64_sends_hex(tmp_path):
    """Hosts without a base64 tool (old busybox) send hex from od, which the controller reads too."""
    bindir = tmp_path / "bin"
    bindir.mkdir()
    for tool in ("sh", "mktemp", "rm", "mkdir", "uname", "cat", "wc", "readlink", "id", "stat", "tar", "gzip",
                 "od", "printf", "sed", "head", "grep"):
        path = shutil.which(tool)
        if path:
            (bindir / tool).symlink_to(path)
    out = run_collector("dash", env={"PATH": str(bindir)})
    assert out.startswith("stapdoctor-collect/1 hex\n")
    rep = fleet.check_output("thishost", out)
    assert rep["kernel_release"] == os.uname().release and not rep.get("error")


# ---------------------------------------------------------------- hostile archives
def _tar(members) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tf:
        for info, data in members:
            tf.addfile(info, io.BytesIO(data) if data is not None else None)
    return buf.getvalue()


def _file(name: str, data: bytes = b"x\n"):
    info = tarfile.TarInfo(name)
    info.size = len(data)
    return info, data


def _special(name: str, kind, linkname: str = ""):
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, linkname
    return info, None


def _output(raw: bytes) -> str:
    return f"stapdoctor-collect/1 base64\n{base64.encodebytes(raw).decode()}stapdoctor-collect/1 end\n"


@pytest.mark.parametrize("members, why", [
    ([_file("../../escaped")], "'..' component"),
    ([_file("/etc/escaped")], "absolute name"),
    ([_file("./etc/\x1b[2Jos-release")], "control characters"),
    ([_special("./lib/modules/r/build", tarfile.SYMTYPE, "/etc")], "not a regular file"),
    ([_file("./etc/passwd"), _special("./etc/shadow", tarfile.LNKTYPE, "etc/passwd")], "not a regular file"),
    ([_special("./dev/sda", tarfile.BLKTYPE)], "not a regular file"),
    ([_special("./proc/fifo", tarfile.FIFOTYPE)], "not a regular file"),
    ([_file("./etc/os-release"), _file("./etc/os-release")], "appears twice"),
    ([_file("./boot/config", b"\0" * (collected.MAX_MEMBER + 1))], "larger than 8 MiB"),
    ([_file(f"./f{i}", b"\0" * (7 * 1024 * 1024)) for i in range(5)], "together are larger than 32 MiB"),
    ([_file(f"./f{i}") for i in range(collected.MAX_MEMBERS + 1)], "more than 4000 members"),
])
def test_hostile_archive_is_refused_and_nothing_is_written(tmp_path, members, why):
    os.chdir(tmp_path)  # a relative write would land here
    rep = fleet.check_output("evil", _output(_tar(members)))
    assert rep["ready"] is False and why in rep["error"], rep["error"]
    assert rep["findings"] == []
    assert list(tmp_path.iterdir()) == [] and not (tmp_path.parent / "escaped").exists()


def test_cve_2025_4517_style_archive_writes_nothing(tmp_path):
    """The realpath PATH_MAX trick needs symlinks: a deep chain of them, then a file through the chain.
    tarfile's 'data' filter on Python 3.11.7 let it write outside the directory; it is refused here
    at the first link, and no byte of it reaches the disk."""
    members = []
    comp = "d" * 240
    path = ""
    for _ in range(16):
        members.append(_special(f"{path}{comp}", tarfile.DIRTYPE))
        members.append(_special(f"{path}l", tarfile.SYMTYPE, comp))
        path += "l/"
    members.append(_special("escape", tarfile.SYMTYPE, path + "../" * 16 + "../../.."))
    members.append(_file("escape/pwned", b"owned\n"))
    os.chdir(tmp_path)
    rep = fleet.check_output("evil", _output(_tar(members)))
    assert "not a regular file or directory" in rep["error"]
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("text, why", [
    ("", "it printed nothing"),
    ("Welcome to host!\n", "no snapshot in the collector's output (it printed: 'Welcome to host!')"),
    ("stapdoctor-collect/1 base64\nH4sI\n", "cut short"),
    ("stapdoctor-collect/1 base64\n!!!!\nstapdoctor-collect/1 end\n", "not valid base64"),
    ("stapdoctor-collect/1 rot13\nabc\nstapdoctor-collect/1 end\n", "unknown encoding"),
    ("stapdoctor-collect/1 base64\n" + base64.b64encode(b"not gzip").decode() + "\nstapdoctor-collect/1 end\n",
     "not a gzip file"),
])
def test_garbled_output_is_named(text, why):
    rep = fleet.check_output("h", text)
    assert why in rep["error"]


def test_gzip_bomb_is_refused_without_inflating_it():
    import resource
    bomb = io.BytesIO()
    import gzip
    with gzip.GzipFile(fileobj=bomb, mode="wb", compresslevel=9) as gz:
        chunk = b"\0" * (1 << 20)
        for _ in range(256):  # 256 MiB of zeros, ~250 KiB compressed
            gz.write(chunk)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    rep = fleet.check_output("h", _output(bomb.getvalue()))
    grown_mib = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    assert "inflates to more than" in rep["error"]
    assert grown_mib < 100, f"reading the bomb grew this process by {grown_mib:.0f} MiB"


def test_terminal_escapes_from_a_host_never_reach_the_table():
    import gzip

    from rich.console import Console
    raw = gzip.decompress(collected.decode_output(run_collector("dash")))
    # this host's PRETTY_NAME carries escapes (a title change, a bell, colours): re-pack its archive so
    buf = io.BytesIO()
    with tarfile.open(fileobj=io.BytesIO(raw)) as src, tarfile.open(fileobj=buf, mode="w:gz") as dst:
        for m in src:
            data = src.extractfile(m).read() if m.isreg() else None
            if m.name in ("./etc/os-release", "./usr/lib/os-release"):
                data = b'ID=debian\nPRETTY_NAME="\x1b]0;owned\x07\x1b[31mDebian"\n'
                m.size = len(data)
            dst.addfile(m, io.BytesIO(data) if data is not None else None)
    rep = fleet.check_output("web\x1b[2J1", _output(buf.getvalue()))
    assert "\x1b" in rep["distribution"]["name"]  # the JSON keeps the fact as the host said it
    console = Console(record=True, width=100, force_terminal=False)
    fleet.print_table(console, {"web\x1b[2J1": rep}, {"db\x1b[1": "unreachable: \x1b[5mssh: connect refused"})
    fleet.print_host(console, "web\x1b[2J1", rep, None)
    text = console.export_text()
    assert "\x1b" not in text and "\x07" not in text
    assert "db?[1" in text and "ssh: connect refused" in text and "?[31mDebian" in text


def test_failure_reasons_are_whole_and_name_the_real_error():
    # the shape Ansible 2.16 gives when a Python module dies on the host (here: no such interpreter)
    module_failure = {"msg": "MODULE FAILURE\nSee stdout/stderr for the exact error", "rc": 127,
                      "module_stdout": "", "module_stderr": "/bin/sh: 1: /usr/bin/python3.12: not found\n"}
    assert fleet.failure_reason("failed", module_failure) == \
        "MODULE FAILURE: /bin/sh: 1: /usr/bin/python3.12: not found"
    long_msg = "Failed to connect to the host via ssh: " + "x" * 300 + " Permission denied (publickey)."
    assert fleet.failure_reason("unreachable", {"msg": long_msg}) == f"unreachable: {long_msg}"
    raw_fail = {"rc": 1, "stdout": "mktemp: No space left on device\r\n",
                "stderr": "Shared connection to 10.0.0.1 closed.\r\n", "msg": "non-zero return code"}
    assert fleet.failure_reason("failed", raw_fail) == \
        "the collector failed (exit 1): mktemp: No space left on device"


def test_table_lists_the_fixes_of_warnings_too():
    from rich.console import Console
    rep = fleet.check_output("web1", run_collector("dash"))
    f = next(f for f in rep["findings"] if f["id"] == "stap.kernel_range")
    f.update(status="warn", remedy="ansible-playbook playbooks/site.yml --tags systemtap -l web1")
    console = Console(record=True, width=100, force_terminal=False)
    fleet.print_table(console, {"web1": rep}, {})
    text = console.export_text()
    assert "web1 stap.kernel_range (warn): ansible-playbook playbooks/site.yml --tags systemtap -l web1" in text
