"""stap's messages (verbatim, as its runtime, translator and staprun print them) become advice."""

from __future__ import annotations

import pytest

from stapdoctor.profiler.advice import Limits, advise, skipped_count

from .conftest import DATA

LIM = Limits(maxmapentries=10240, maxaction=20000, maxbacktrace=100, maxstringlen=1024)

CASES = [
    # (stap line, advice id, words the advice must contain)
    ("ERROR: Array overflow, check MAXMAPENTRIES near identifier 'stacks' at /x/profile.stp:37:4",
     "maxmapentries", ["--maxmapentries", "10240"]),
    ("ERROR: aggregation overflow in global(s___global_stacks) near keyword at /x/profile.stp:55:2",
     "maxmapentries", ["--maxmapentries"]),
    ("WARNING: Number of errors: 0, skipped probes: 12", "skipped", ["12", "--maxskipped"]),
    ("ERROR: Skipped too many probes, check MAXSKIPPED or try again with stap -t for more details.",
     "maxskipped", ["--maxskipped", "100"]),
    ("ERROR: probe overhead exceeded threshold", "overload", ["--no-overload", "STP_NO_OVERLOAD"]),
    ("ERROR: probe overhead (510663214 cycles) exceeded threshold (500000000 cycles) in last 1000000000 cycles",
     "overload", ["--no-overload"]),
    ("WARNING: There were 3 transport failures. Try stap -s to increase the buffer size from 16.",
     "transport", ["-s", "--buffer-size"]),
    ("WARNING: Missing unwind data for a module, rerun with 'stap -d /usr/lib64/libc-2.17.so'",
     "unwind", ["/usr/lib64/libc-2.17.so", "dpkg -S", "debuginfo"]),
    ("WARNING: Missing unwind data for a module, rerun with 'stap -d kernel'", "unwind", ["kernel", "debug symbols"]),
    ("WARNING: missing unwind/symbol data for module '/usr/lib/x86_64-linux-gnu/libfoo.so.1'",
     "symbols", ["/usr/lib/x86_64-linux-gnu/libfoo.so.1", "dbgsym"]),
    ("ERROR: MAXACTION exceeded near keyword at /x/profile.stp:55:2", "maxaction", ["--maxaction", "20000"]),
    ("Pass 4: compilation failed.  [man error::pass4]", "pass4", ["stapdoctor check --deep"]),
    ("ERROR: Couldn't insert module '/tmp/stapXYZ/stap_1.ko': Operation not permitted", "insmod", ["stapdoctor check"]),
    ("ERROR: Couldn't insert module '/tmp/stapXYZ/stap_1.ko': Key was rejected by service", "insmod", ["signature"]),
    ("ERROR: You are trying to run systemtap as a normal user.", "permission", ["stapusr"]),
    ('Checking "/lib/modules/6.18.44-fc-v657/build/.config" failed with error: No such file or directory',
     "devel", ["headers"]),
]


@pytest.mark.parametrize("line,rid,words", CASES, ids=[c[1] + str(i) for i, c in enumerate(CASES)])
def test_each_stap_message(line, rid, words):
    adv = advise([line], LIM)
    assert [a.id for a in adv] == [rid]
    text = adv[0].title + " " + adv[0].fix
    for w in words:
        assert w in text, (w, text)
    assert adv[0].evidence == [line.strip()]


def test_nothing_for_clean_runs():
    assert advise(["Pass 1: parsed user script and 486 library scripts", "Pass 5: starting run.",
                   "WARNING: Number of errors: 0, skipped probes: 0"], LIM) == []


def test_kernel_symtab_only_matters_with_kernel_stacks():
    line = "WARNING: Kernel function symbol table missing [man warning::symbols]"
    assert advise([line], LIM) == []
    assert [a.id for a in advise([line], LIM, kernel=True)] == ["kernel-symtab"]


def test_real_frame_size_failure():
    """The seed's MAXSTRINGLEN=4096 on a FRAME_WARN=2048 kernel (stap 5.6, kernel 7.2.13)."""
    lines = (DATA / "stap-pass4-frame-larger-than.stderr").read_text().splitlines()
    adv = {a.id: a for a in advise(lines, Limits(maxstringlen=4096))}
    assert set(adv) == {"maxstringlen", "pass4"}
    assert "4112" in adv["maxstringlen"].title and "2048" in adv["maxstringlen"].title
    assert "MAXSTRINGLEN=4096" in adv["maxstringlen"].fix


@pytest.mark.parametrize("name", ["stap-4.8-hello-pass4-fail-debian12-kernel-6.1.176.txt",
                                  "stap-4.8-pass4-task_work_cancel-headers-6.1.0-56.stderr"])
def test_real_pass4_failures_point_at_check_deep(name):
    lines = (DATA / name).read_text().splitlines()
    adv = advise(lines, LIM)
    assert "pass4" in [a.id for a in adv]
    assert all(a.id != "maxstringlen" for a in adv)


def test_real_profile_run_stderr():
    """The seed's real run: unwind warnings name the module (kernel, and an unknown one)."""
    lines = (DATA / "stap-profile-busy-debian-unstable.stderr").read_text().splitlines()
    adv = advise(lines, LIM)
    titles = " | ".join(a.title for a in adv)
    assert [a.id for a in adv] == ["unwind", "unwind"], titles
    assert "kernel" in titles and "knows nothing" in titles


def test_evidence_deduplicated_and_bounded():
    lines = ["WARNING: Missing unwind data for a module, rerun with 'stap -d /lib/a.so'"] * 50
    adv = advise(lines, LIM)
    assert len(adv) == 1 and adv[0].evidence == [lines[0]]


def test_skipped_count():
    assert skipped_count(["Pass 5: starting run."]) == (None, None)
    assert skipped_count(["WARNING: Number of errors: 2, skipped probes: 7"]) == (2, 7)
