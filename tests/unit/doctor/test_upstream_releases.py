"""The release table against upstream's own files, read in place (../shared/systemtap/upstream, see its README).

For every release tag with a session.cxx there: the tested kernel range it prints, its NEWS date and the
stream `stap -V` writes to must equal the table's; and the text its version() prints, rendered from its own
format strings, must parse back to its version, elfutils version, build string and range.
"""
from __future__ import annotations

import json
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from stapdoctor.doctor import checks, knowledge, parsers, snapshot

REPO = Path(__file__).resolve().parents[3]
UPSTREAM = REPO.parent / "shared" / "systemtap" / "upstream"
SHARED = "../shared/systemtap/upstream"  # how the table names these files



def test_upstream_files_are_present():
    """Without them every comparison below would have no case: say so as a failure, not a skip."""
    assert UPSTREAM.is_dir() and any(UPSTREAM.glob("release-*/session.cxx")), (
        f"upstream systemtap files not present at {UPSTREAM} (../shared/systemtap beside the project; CI has them)")

RELEASES = sorted((p.name.removeprefix("release-") for p in UPSTREAM.glob("release-*") if (p / "session.cxx").is_file()),
                  key=lambda v: (knowledge.version_key(v), v)) if UPSTREAM.is_dir() else []


def table_rows() -> dict[str, dict]:
    with open(knowledge.DATA / "systemtap_releases.toml", "rb") as f:
        return {str(r["version"]): r for r in tomllib.load(f)["release"]}


# ---------------------------------------------------------------- reading session.cxx
_TOKEN = re.compile(r'''//[^\n]*|/\*.*?\*/|^[ \t]*\#[^\n]*|"(?:[^"\\\n]|\\.)*"|[A-Za-z_]\w*|<<|\+=|\S''', re.M | re.S)
_ESC = {"n": "\n", "t": "\t", '"': '"', "\\": "\\", "'": "'"}


def tokens(code: str) -> list[str]:
    """C++ tokens without comments and preprocessor lines (every #ifdef'd feature counts as enabled)."""
    return [t for t in _TOKEN.findall(code) if not t.startswith(("//", "/*")) and not t.lstrip().startswith("#")]


def c_string(tok: str) -> str:
    return re.sub(r"\\(.)", lambda m: _ESC[m.group(1)], tok[1:-1])


def function_body(src: str, name: str) -> str:
    m = re.search(rf"^systemtap_session::{name} ?\(\)\n\{{\n(.*?)^\}}", src, re.M | re.S)
    assert m, f"no systemtap_session::{name}() in session.cxx"
    return m.group(1)


def statements(code: str) -> list[list[str]]:
    out, cur = [], []
    for t in tokens(code):
        if t == ";":
            out.append(cur)
            cur = []
        else:
            cur.append(t)
    return [s for s in out if s]


def printed_range(src: str) -> tuple[str, str] | None:
    """The (min, max) the release's version() prints: a literal pair up to 4.9, kernel_version_range() from 5.0."""
    body = function_body(src, "version")
    m = re.search(r'_F\("tested kernel versions: %s \.\.\. %s\\n",\s*("[^"]*"),\s*("[^"]*")\)', body)
    if m:
        return c_string(m.group(1)), c_string(m.group(2))
    if "tested kernel versions" not in body:
        return None
    m = re.search(r'make_pair<string,\s*string>\(("[^"]*"),\s*("[^"]*")\)', function_body(src, "kernel_version_range"))
    assert m, "version() prints a range but kernel_version_range() has no literal pair"
    return c_string(m.group(1)), c_string(m.group(2))


def version_stream(src: str) -> str:
    used = set(re.findall(r"\b(cout|clog|cerr)\s*<<", function_body(src, "version")))
    assert len(used) == 1, used
    return {"cout": "stdout", "clog": "stderr", "cerr": "stderr"}[used.pop()]


def news_dates() -> dict[str, str]:
    text = (UPSTREAM / "NEWS-master").read_text()
    return dict(re.findall(r"^\* What's new in version (\S+), (\d{4}-\d\d-\d\d)$", text, re.M))


def news_floor() -> tuple[str, str]:
    """(release, kernel) of NEWS's "kernel version X are now the oldest supported"."""
    text = (UPSTREAM / "NEWS-master").read_text()
    sections = re.split(r"^\* What's new in version (\S+), ", text, flags=re.M)
    for ver, body in zip(sections[1::2], sections[2::2]):
        m = re.search(r"kernel\s+version\s+(\S+)\s+are\s+now\s+the\s+oldest\s+supported", body)
        if m:
            return ver, m.group(1)
    raise AssertionError("NEWS names no oldest supported kernel")


# ---------------------------------------------------------------- rendering version()
def render_version(src: str, values: dict[str, str], elfutils_build: str) -> str:
    """What this release's version() prints, evaluated from its own statements and format strings.

    values: VERSION, dwfl_version(NULL) (runtime elfutils) and the build string under both of its names
    (GIT_MESSAGE in 1.x, STAP_EXTENDED_VERSION later). Anything else in version() fails the test: a new
    format must be looked at, not guessed.
    """
    vals = dict(values)
    if re.search(r"^systemtap_session::version_string ?\(\)", src, re.M):
        vals["version_string().c_str()"] = render_version_string(src, values, elfutils_build)
    out: list[str] = []
    for st in statements(function_body(src, "version")):
        if st[:2] == ["auto", "vr"]:
            assert "".join(st) == "autovr=kernel_version_range()", st
            lo, hi = printed_range(src)
            vals.update({"vr.first.c_str()": lo, "vr.second.c_str()": hi})
            continue
        assert st[0] in ("cout", "clog", "cerr") and st[1] == "<<", st
        i = 2
        while i < len(st):
            i = _emit(st, i, vals, out)
            if i < len(st):
                assert st[i] == "<<", st[i:]
                i += 1
    return "".join(out)


def _emit(st: list[str], i: int, vals: dict[str, str], out: list[str]) -> int:
    t = st[i]
    if t == "endl":
        out.append("\n")
        return i + 1
    if t.startswith('"'):
        out.append(c_string(t))
        return i + 1
    assert t in ("_", "_F") and st[i + 1] == "(", st[i:]
    i += 2
    fmt = ""
    while st[i].startswith('"'):
        fmt += c_string(st[i])
        i += 1
    args = []
    while st[i] == ",":
        i += 1
        arg, depth = [], 0
        while depth or st[i] not in (",", ")"):
            depth += {"(": 1, ")": -1}.get(st[i], 0)
            arg.append(st[i])
            i += 1
        a = "".join(arg)
        args.append(c_string(a) if a.startswith('"') else vals[a])
    assert st[i] == ")", st[i:]
    assert fmt.count("%") == fmt.count("%s") == len(args), fmt
    out.append(fmt.replace("%s", "{}").format(*args) if args else fmt)
    return i + 1


def render_version_string(src: str, values: dict[str, str], elfutils_build: str) -> str:
    """version_string() (2.6+): VERSION "/" runtime elfutils ["/" build elfutils when they differ] ", " extended."""
    body = function_body(src, "version_string")
    assert 'elfutils_version1 = "0." + lex_cast(_ELFUTILS_VERSION)' in body
    assert "elfutils_version2 = dwfl_version(NULL)" in body
    assert 'if (elfutils_version1 != elfutils_version2)\n    elfutils_version2 += string("/") + elfutils_version1' in body
    run = values["dwfl_version(NULL)"]
    ev2 = run if elfutils_build == run else f"{run}/{elfutils_build}"
    ret = next(st for st in statements(body) if st[0] == "return")
    parts, cur = [], []
    for t in ret[1:] + ["+"]:
        if t == "+":
            parts.append("".join(cur))
            cur = []
        else:
            cur.append(t)
    names = {"string(VERSION)": values["VERSION"], "elfutils_version2": ev2,
             "STAP_EXTENDED_VERSION": values["STAP_EXTENDED_VERSION"]}
    return "".join(c_string(p) if p.startswith('"') else names[p] for p in parts)


# Plausible builds: a tarball build, and an rpm/deb-style one whose build string holds a comma and
# parentheses, with runtime and build elfutils differing (printed as 0.176/0.170 from 2.6).
BUILDS = [("0.153", "0.153", "non-git sources"),
          ("0.176", "0.170", "git branch master, url git://sourceware.org/git/systemtap.git, commit 1a2b3c4d (test)")]


def rendered(version: str, src: str, run: str, build: str, extended: str) -> str:
    return render_version(src, {"VERSION": version, "dwfl_version(NULL)": run, "GIT_MESSAGE": extended,
                                "STAP_EXTENDED_VERSION": extended}, build)


# ---------------------------------------------------------------- the tests
@pytest.mark.parametrize("version", RELEASES)
def test_table_equals_upstream(version):
    rows = table_rows()
    assert version in rows, f"upstream tag release-{version} has no row in systemtap_releases.toml"
    row, src = rows[version], (UPSTREAM / f"release-{version}" / "session.cxx").read_text()
    path = f"{SHARED}/release-{version}/session.cxx"
    # Range: exactly what the release prints, or none before 3.1.
    rng = printed_range(src)
    assert (row.get("kernel_min"), row.get("kernel_max")) == (rng or (None, None))
    assert row["kernel_range_source"].startswith(path)
    if knowledge.version_key(version) >= (3, 1):
        assert rng, f"{version} should print a tested range"
    # Date: NEWS's header; a re-tag NEWS does not name has none, and says so.
    dates = news_dates()
    if version in dates:
        assert row.get("date") == dates[version]
        assert row["date_source"].startswith(f"{SHARED}/NEWS-master")
    else:
        assert row.get("respin_of") and "date" not in row and row["date_source"].startswith("none:")
        base = (UPSTREAM / f"release-{row['respin_of']}" / "session.cxx").read_text()
        assert base == src, f"{version} is recorded as a re-tag of {row['respin_of']} but differs from it"
    # Stream: clog (stderr) before 2.7, cout (stdout) from 2.7.
    assert row["version_stream"] == version_stream(src)
    assert row["version_stream_source"].startswith(path)
    # Real floor where the printed minimum is older than NEWS's oldest supported kernel.
    since, floor = news_floor()
    stale = rng and knowledge.version_key(version) >= knowledge.version_key(since) and \
        knowledge.kernel_key(rng[0]) < knowledge.kernel_key(floor)
    assert row.get("supported_min") == (floor if stale else None)


def test_stream_switch_is_at_2_7():
    rows = table_rows()
    streams = {v: rows[v]["version_stream"] for v in RELEASES}
    assert {v for v, s in streams.items() if s == "stderr"} == {
        v for v in RELEASES if knowledge.version_key(v) < (2, 7)}


@pytest.mark.parametrize("version", RELEASES)
def test_stap_V_of_every_release_parses(version):
    src = (UPSTREAM / f"release-{version}" / "session.cxx").read_text()
    rng = printed_range(src)
    row = knowledge.release_for(version)
    stream = version_stream(src)
    for run, build, extended in BUILDS:
        text = rendered(version, src, run, build, extended)
        assert text.startswith(f"Systemtap translator/driver (version {version}/{run}")
        assert ("tested kernel versions:" in text) == bool(rng) and "enabled features: " in text
        out, err = (text, "") if stream == "stdout" else ("", text)
        got = parsers.parse_stap_version(out + "\n" + err)  # as the doctor joins the two streams
        assert (got.version, got.elfutils, got.build) == (version, run, extended)
        assert (got.tested_min, got.tested_max) == (rng or (None, None)) == (row.kernel_min, row.kernel_max)
        assert got.features and all(re.fullmatch(r"[A-Z0-9_]+", f) for f in got.features)


def test_check_reads_stap_1_8(host_root, tmp_path):
    """Ubuntu 12.10 and Fedora 17 shipped 1.x: `check` used to call its stap -V 'not stap -V output'."""
    src = (UPSTREAM / "release-1.8" / "session.cxx").read_text()
    text = rendered("1.8", src, "0.153", "0.153", "non-git sources")
    assert text.startswith("Systemtap translator/driver (version 1.8/0.153 non-git sources)\n")
    root = host_root("ubuntu-12.10", stap=("", text, 0))  # 1.8 writes with clog: stderr
    snap = tmp_path / "snap.json"
    cli = [sys.executable, "-m", "stapdoctor.doctor"]
    r = subprocess.run([*cli, "snapshot", "--root", str(root), "-o", str(snap)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    r = subprocess.run([*cli, "check", "--snapshot", str(snap), "--json"], capture_output=True, text=True)
    assert "Traceback" not in r.stderr and "not stap -V output" not in r.stdout
    got = {f["id"]: f for f in json.loads(r.stdout)["findings"]}
    inst = got["stap.installed"]
    assert inst["status"] == "pass" and "systemtap 1.8 (elfutils 0.153, non-git sources)" in inst["evidence"]
    rng = got["stap.kernel_range"]
    assert rng["status"] == "warn" and "prints no tested range" in rng["evidence"]


def test_check_applies_the_real_floor_to_stap_5_0(host_root):
    """5.0 prints 2.6.32 ... 6.6-rc1, but supports 3.10 and later only: Ubuntu 12.10's 3.5.5 is outside."""
    src = (UPSTREAM / "release-5.0" / "session.cxx").read_text()
    text = rendered("5.0", src, "0.189", "0.189", "non-git sources")
    assert "tested kernel versions: 2.6.32 ... 6.6-rc1\n" in text
    root = host_root("ubuntu-12.10", stap=(text, "", 0))
    f = {f.id: f for f in checks.run_checks(snapshot.collect(str(root)))}["stap.kernel_range"]
    assert f.status == "warn" and "3.5.5" in f.evidence
    assert "which prints 2.6.32" in f.evidence and "oldest supported kernel is 3.10" in f.evidence
    assert "systemtap_ref=release-4.9" in f.remedy


# ---------------------------------------------------------------- real outputs and hostile first lines
SAMPLES = Path(__file__).resolve().parents[2] / "data" / "doctor" / "stap-V" / "stap-V-samples.txt"


def test_real_samples_keep_their_whole_build_string():
    """Build strings run to the line's last ')': 'Debian version 4.2-3ubuntu0.1 (focal)' lost its ')' before."""
    blocks = [b.split("\n", 1)[1] for b in SAMPLES.read_text().split("=== source:")[1:]]
    assert len(blocks) >= 20
    for body in blocks:
        first = body.splitlines()[0]
        want = re.fullmatch(r"Systemtap translator/driver \(version ([^/]+)/([0-9.]+)(?:/[0-9.]+)?, (.*)\)", first)
        got = parsers.parse_stap_version(body)
        assert (got.version, got.elfutils, got.build) == want.groups(), first
    assert parsers.parse_stap_version(
        "Systemtap translator/driver (version 4.2/0.176, Debian version 4.2-3ubuntu0.1 (focal))\n"
    ).build == "Debian version 4.2-3ubuntu0.1 (focal)"


@pytest.mark.parametrize("line,why", [
    ("Systemtap translator/driver (version 1.8/0.153x)", "version glued to junk"),
    ("Systemtap translator/driver (version 1.8/0.153 no closing parenthesis", "unterminated"),
    # A host's junk must not make the parser backtrack: a regex over the rest of the line (commit 728c382)
    # took 10 s on 2,000 spaces and grows cubically; string work rejects this at once.
    ("Systemtap translator/driver (version 1/1" + " " * 20000 + "x", "long junk"),
])
def test_hostile_first_lines_are_rejected(line, why):
    with pytest.raises(parsers.ParseError, match="not stap -V output"):
        parsers.parse_stap_version(line)
