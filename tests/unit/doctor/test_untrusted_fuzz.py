"""Fuzzing what the doctor reads from elsewhere: a host's collector output, saved snapshots, the parsers.

A fixed seed (derandomize) and a fixed budget: a failure reproduces on every run and every machine.
The only outcomes allowed are a result or the module's own error (CollectedError, SnapshotError,
ParseError); never another exception, and never an "internal error" finding from the checks.
"""
import base64
import io
import json
import tarfile

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from stapdoctor.doctor import checks, collected, fleet, parsers, snapshot

FUZZ = settings(derandomize=True, database=None, deadline=None, max_examples=250,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

TEXT = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=300)
PATHS = st.sampled_from(["./etc/os-release", "./proc/version", "./proc/sys/kernel/osrelease", "./boot/config-6.1",
                         "./.stapdoctor/commands/stap-V.out", "./.stapdoctor/commands/id.out", "./.stapdoctor/links",
                         "./.stapdoctor/sizes", "./.stapdoctor/elf/vmlinux", "./.stapdoctor/stat/staprun",
                         "./.stapdoctor/env", "./proc/config.gz", "./sys/kernel/notes", "./etc/group",
                         "./lib/modules/6.1/build/.config", "../x", "/abs", "./a/../../b", "./\x1b", "."])
KINDS = st.sampled_from([tarfile.REGTYPE, tarfile.REGTYPE, tarfile.REGTYPE, tarfile.DIRTYPE, tarfile.SYMTYPE,
                         tarfile.LNKTYPE, tarfile.FIFOTYPE, tarfile.CHRTYPE])
CONTENT = st.one_of(st.binary(max_size=300), TEXT.map(str.encode), st.sampled_from([
    b"6.1.0-56-amd64\n", b"CONFIG_UPROBES=y\nCONFIG_MODULES=y\n", b"uid=0(root) gid=0(root) groups=0(root)\n",
    b"4754 0 27 /usr/bin/staprun\n", b"/lib/modules/6.1/build\t/usr/src/x\n", b"12\t/proc/modules\n",
    b"/boot/vmlinux-6.1 abcd 1\n", b"ID=debian\nPRETTY_NAME=\"x\"\n", b"\x1f\x8b\x08\x00\x00", b"DEBUGINFOD_URLS=x\n",
    b"Systemtap translator/driver (version 4.8/0.188, Debian version 4.8-2)\n"]))


@st.composite
def archives(draw) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tf:
        for _ in range(draw(st.integers(0, 12))):
            info = tarfile.TarInfo(draw(PATHS))
            info.type = draw(KINDS)
            data = draw(CONTENT) if info.type == tarfile.REGTYPE else None
            if data is not None:
                info.size = len(data)
            else:
                info.linkname = draw(st.sampled_from(["/etc", "../..", "x"]))
            tf.addfile(info, io.BytesIO(data) if data is not None else None)
    raw = buf.getvalue()
    cut = draw(st.one_of(st.none(), st.integers(0, len(raw))))
    return raw if cut is None else raw[:cut]


def _no_internal_errors(rep: dict) -> None:
    assert not any("internal error" in f["evidence"] for f in rep["findings"]), rep["findings"]


@FUZZ
@given(archives())
def test_collector_archives(raw):
    out = f"stapdoctor-collect/1 base64\n{base64.encodebytes(raw).decode()}stapdoctor-collect/1 end\n"
    rep = fleet.check_output("fuzz", out)
    if rep.get("error"):
        assert rep["findings"] == [] and rep["ready"] is False
    else:
        _no_internal_errors(rep)


@FUZZ
@given(st.one_of(TEXT, st.lists(st.one_of(TEXT, st.sampled_from([
    "stapdoctor-collect/1 base64", "stapdoctor-collect/1 hex", "stapdoctor-collect/1 end", "H4sI", "1f8b", "",
    "stapdoctor-collect/1 "])), max_size=8).map("\n".join)))
def test_collector_output_text(text):
    try:
        collected.decode_output(text)
    except collected.CollectedError as e:
        assert str(e)


JSON = st.recursive(st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), TEXT),
                    lambda kids: st.one_of(st.lists(kids, max_size=4),
                                           st.dictionaries(st.one_of(TEXT, st.sampled_from(
                                               ["status", "text", "rc", "stdout", "uid", "groups", "hex", "path",
                                                "objects", "build_id", "has_dwarf", "mode", "link"])), kids,
                                               max_size=4)), max_leaves=20)


@FUZZ
@given(st.fixed_dictionaries({"schema": st.just(snapshot.SCHEMA), "kernel_release": st.one_of(TEXT, JSON)},
                             optional={k: JSON for k in ("source", "files", "commands", "elf", "env", "user", "tools",
                                                         "target")}))
def test_saved_snapshots(data):
    data = json.loads(json.dumps(data))  # what a file can hold
    try:
        snap = snapshot.HostSnapshot.from_dict(data)
    except snapshot.SnapshotError as e:
        assert str(e)
        return
    findings = checks.run_checks(snap)
    assert not any("internal error" in f.evidence for f in findings), [f for f in findings if "internal" in f.evidence]


@FUZZ
@given(st.dictionaries(st.sampled_from(["/etc/os-release", "/usr/lib/os-release", "/etc/lsb-release",
                                        "/etc/redhat-release"]),
                       st.one_of(st.none(), TEXT, st.lists(st.one_of(TEXT, st.sampled_from([
                           "ID=ubuntu", 'VERSION_ID="12.10"', "PRETTY_NAME='x", "ID", "=", "DISTRIB_ID=Ubuntu",
                           "Fedora release 40 (Forty)", "\0" * 50])), max_size=10).map("\n".join)), max_size=4))
def test_release_files(files):
    info = parsers.os_release(files)
    assert set(info) == {"id", "version_id", "name", "codename"} and all(isinstance(v, str) for v in info.values())


@FUZZ
@given(TEXT)
def test_id_output(text):
    out = snapshot._parse_id(text)
    assert isinstance(out["groups"], list)
