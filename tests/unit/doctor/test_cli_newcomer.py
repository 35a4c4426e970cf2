"""What a newcomer meets first (issue 14, items 9-10): output that fits the terminal, --version, and the same
exit status 2 for every bad argument, said before any check runs."""
import json
import os
import re
import shutil
import subprocess
import sys

import pytest


def run(*args, columns=None):
    env = dict(os.environ)
    if columns:
        env["COLUMNS"] = str(columns)
    r = subprocess.run([sys.executable, "-m", "stapdoctor.doctor", *args], capture_output=True, text=True, env=env,
                       timeout=120)
    assert "Traceback" not in r.stderr, r.stderr
    return r


@pytest.mark.parametrize("columns", [50, 80, 100])
def test_check_fits_the_terminal(host_root, columns):
    root = host_root("debian-12-stap-4.8")
    r = run("check", "--root", str(root), columns=columns)
    lines = r.stdout.splitlines()
    assert max(len(ln) for ln in lines) <= columns
    # every finding's evidence is all there, continued on indented lines
    data = json.loads(run("check", "--root", str(root), "--json").stdout)
    flat = re.sub(r"\s+", " ", r.stdout)
    for f in data["findings"]:
        assert re.sub(r"\s+", " ", f"{f['title']}: {f['evidence']}") in flat
    cont = [ln for ln in lines if ln.startswith(" " * 8)]
    assert cont, "long evidence should continue on indented lines"


def test_this_machine_fits_80_columns():
    r = run("check", columns=80)
    assert max(len(ln) for ln in r.stdout.splitlines()) <= 80


def test_version():
    r = run("--version")
    assert r.returncode == 0 and re.fullmatch(r"stapdoctor \d+\.\d+\S*\n", r.stdout)


def test_binary_is_looked_up_in_path():
    ls = shutil.which("ls")
    r = run("check", "--binary", "ls", "--json")
    t = {f["id"]: f for f in json.loads(r.stdout)["findings"]}["target.symbols"]
    assert os.path.realpath(ls) in t["title"] or ls in t["title"]


@pytest.mark.parametrize("args, words", [
    (["--binary", "/etc"], "is a directory"),
    (["--binary", "/etc/passwd"], "not an ELF file"),
    (["--binary", "no-such-program-stapdoctor"], "not found in PATH"),
    (["--binary", "/no/such/file"], "no such file"),
    (["--pid", "999999"], "no such process"),
    (["--pid", "1", "--snapshot", "x.json"], "cannot be used with --snapshot"),
])
def test_bad_argument_is_exit_2(args, words):
    r = run("check", *args)
    assert r.returncode == 2 and words in r.stderr and r.stdout == ""


def test_snapshot_command_refuses_the_same(tmp_path):
    r = run("snapshot", "-o", str(tmp_path / "s.json"), "--binary", "/etc/passwd")
    assert r.returncode == 2 and "not an ELF file" in r.stderr and not (tmp_path / "s.json").exists()
