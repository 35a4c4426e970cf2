"""Frames without a symbol, named in the flame graph and once per file in the summary (issue 15.3)."""

from __future__ import annotations

import html
import json
import re
import shutil
import subprocess

import pytest

from stapdoctor.profiler.missing_symbols import Distro, frame_note, how_to_get, owning_package

from .conftest import FAKE_STAP, run_cli

LIBC = "/usr/lib/x86_64-linux-gnu/libc.so.6"  # as a process's maps name it on Debian 12 (merged /usr)
BID = "0123456789abcdef0123456789abcdef01234567"


@pytest.mark.parametrize("name,needle", [
    ("[libfoo.so.1+0x24d5e]", "libfoo.so.1 has no symbol table here"),
    ("0x7f12abcd0042", "in no mapped file"),
    ("[kernel+0xffffffff81000000]", "kallsyms"),
])
def test_frame_note_for_frames_without_a_symbol(name, needle):
    note = frame_note(name)
    assert note and needle in note and " (" not in note  # flame.js takes the name up to the last " ("


@pytest.mark.parametrize("name", ["main", "ngx_http_handler", "operator new(unsigned long)", "[no stack]",
                                  "0xzz", "[libfoo.so+12]"])
def test_named_frames_get_no_note(name):
    assert frame_note(name) is None


def test_owning_package_through_a_merged_usr():
    """dpkg lists libc under /lib; the process maps it from /usr/lib."""
    if not shutil.which("dpkg-query"):
        pytest.fail("dpkg-query missing: these tests run on Debian (tests/setup.sh)")
    assert subprocess.run(["dpkg-query", "-S", LIBC], capture_output=True).returncode != 0  # what makes it matter
    assert owning_package(LIBC, "debian") == "libc6"
    assert owning_package("/nonexistent/libnothing.so", "debian") is None


def test_debian_hint_names_the_dbgsym_package_and_debuginfod():
    hint = how_to_get(LIBC, BID, distro=Distro("debian", (), "bookworm"), env={})
    assert "it is from package libc6: `apt-get install libc6-dbgsym`" in hint
    assert "bookworm-debug" in hint and "libc6-dbg " in hint
    assert f"`DEBUGINFOD_URLS=https://debuginfod.debian.net debuginfod-find debuginfo {BID}`" in hint


@pytest.mark.parametrize("distro,pkg,needles", [
    (Distro("ubuntu", ("debian",), "noble"), "libssl3t64", ["apt-get install libssl3t64-dbgsym", "ddebs",
                                                             "https://debuginfod.ubuntu.com"]),
    (Distro("fedora", (), ""), "openssl-libs", ["dnf debuginfo-install openssl-libs",
                                                "https://debuginfod.fedoraproject.org"]),
    (Distro("rocky", ("rhel", "centos", "fedora"), ""), "openssl-libs", ["dnf debuginfo-install openssl-libs",
                                                                         "https://debuginfod.centos.org"]),
])
def test_hint_per_distribution(distro, pkg, needles):
    hint = how_to_get("/usr/lib64/libssl.so.3", BID, distro=distro, pkg=pkg, env={})
    for n in needles:
        assert n in hint, hint


def test_debuginfod_already_set_up_is_used_as_is():
    hint = how_to_get("/opt/x/libx.so", BID, distro=Distro("arch", (), ""), pkg=None,
                      env={"DEBUGINFOD_URLS": "https://debuginfod.example"})
    assert f"`debuginfod-find debuginfo {BID}`" in hint and "not from a package" not in hint  # not asked
    assert "the package that installed it" in hint and f"/usr/lib/debug/.build-id/01/{BID[2:]}.debug" in hint
    assert "DEBUGINFOD_URLS=" not in hint  # the user's own servers, as set


def test_a_file_no_package_owns_is_said_to_be_so():
    hint = how_to_get("/opt/x/libx.so", BID, distro=Distro("debian", (), "bookworm"), env={})
    assert "it is not from a package: rebuild it with -g" in hint and "apt-get" not in hint
    assert "debuginfod" not in hint  # the distribution's server has only what it built
    own = how_to_get("/opt/x/libx.so", BID, distro=Distro("debian", (), "bookworm"),
                     env={"DEBUGINFOD_URLS": "https://debuginfod.example"})
    assert f"`debuginfod-find debuginfo {BID}`" in own


def test_profile_of_a_stripped_program_names_it(tmp_path, fake_stap, busy_exe):
    stripped = tmp_path / "busy-stripped"
    shutil.copy(busy_exe, stripped)
    subprocess.run(["strip", "--strip-all", str(stripped)], check=True)
    bid = re.search(r"Build ID: ([0-9a-f]+)", subprocess.run(["readelf", "-n", str(stripped)], capture_output=True,
                                                             text=True).stdout).group(1)
    fake_stap[1](stacks=[[["busy-stripped", f"func_c@{busy_exe}"], ["busy-stripped", f"main@{busy_exe}"],
                          ["libc.so", "__libc_start_main"]]])
    out = tmp_path / "p"
    r = run_cli(["--stap", str(FAKE_STAP), "-o", str(out), "--force", "--duration", "2", "--", str(stripped)])
    assert r.returncode == 0, r.stderr
    folded = (out / "stacks.folded").read_text()
    assert re.search(r"\[busy-stripped\+0x[0-9a-f]+\];\[busy-stripped\+0x[0-9a-f]+\] \d+", folded), folded
    titles = [html.unescape(t) for t in re.findall(r"<title>([^<]*)</title>", (out / "flamegraph.svg").read_text())]
    assert any(t.startswith("[busy-stripped+0x") and "no symbol: busy-stripped has no symbol table" in t
               for t in titles), titles
    assert not any("no symbol" in t for t in titles if t.startswith("__libc_start_main"))
    sm = json.loads((out / "summary.json").read_text())
    adv = [a for a in sm["advice"] if a["id"] == "target-symbols"]
    assert len(adv) == 1 and str(stripped) in adv[0]["title"]  # once per file, however many frames
    assert "not from a package" in adv[0]["fix"] and f"/.build-id/{bid[:2]}/{bid[2:]}.debug" in adv[0]["fix"]
    assert f"/usr/lib/debug/.build-id/{bid[:2]}/{bid[2:]}.debug" in (out / "summary.txt").read_text()
    assert "busy-stripped" in r.stderr and "not from a package" in r.stderr


def test_what_debuginfod_find_fetched_is_used(tmp_path, busy_exe, monkeypatch):
    """The advice says to run debuginfod-find; its cache is then where the symboliser looks."""
    from stapdoctor.profiler.symbols import ElfObject

    from .conftest import nm_address

    stripped = tmp_path / "busy-stripped"
    shutil.copy(busy_exe, stripped)
    subprocess.run(["strip", "--strip-all", str(stripped)], check=True)
    assert ElfObject(str(stripped)).table.lookup(nm_address(str(busy_exe), "func_c")) is None
    obj = ElfObject(str(stripped))
    cache = tmp_path / "cache"
    (cache / obj.build_id).mkdir(parents=True)
    shutil.copy(busy_exe, cache / obj.build_id / "debuginfo")  # what `debuginfod-find debuginfo ID` stores
    monkeypatch.setenv("DEBUGINFOD_CACHE_PATH", str(cache))
    again = ElfObject(str(stripped))
    hit = again.table.lookup(nm_address(str(busy_exe), "func_c") + 2)
    assert hit and hit[0] == "func_c" and again.debug_file == str(cache / obj.build_id / "debuginfo")


def test_owning_packages_asks_dpkg_once_for_all_files():
    from stapdoctor.profiler.missing_symbols import owning_packages

    files = [LIBC, "/usr/lib/x86_64-linux-gnu/libm.so.6", "/opt/none/libx.so", "/tmp/a*b.so"]
    assert owning_packages(files, "debian") == {LIBC: "libc6", "/usr/lib/x86_64-linux-gnu/libm.so.6": "libc6"}
    assert owning_packages(files, None) == {}  # a distribution we know nothing of is not asked
