"""Parsers get hostile input from hosts: they return data or raise ParseError, nothing else."""
import string

from hypothesis import given, settings
from hypothesis import strategies as st

from stapdoctor.doctor import elfinfo, knowledge, parsers

TEXT = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=400)
LINES = st.lists(st.one_of(TEXT, st.sampled_from([
    "CONFIG_UPROBES=y", "# CONFIG_UTRACE is not set", "CONFIG_FRAME_WARN=2048", "CONFIG_X=", "CONFIG_=y",
    "Systemtap translator/driver (version 4.8/0.188, Debian version 4.8-2)", "tested kernel versions: 2.6.32 ... 6.1.0-rc3",
    "tested kernel versions:  ... ", "Linux version 6.1.0-50-amd64 #1 SMP PREEMPT_DYNAMIC Debian 6.1.176-1 (2026-10-01)",
    "Ubuntu 3.5.0-17.28-generic 3.5.5", "(version /)", "#", "\0"])), max_size=30).map("\n".join)


@settings(max_examples=300, deadline=None)
@given(LINES)
def test_kconfig(text):
    try:
        opts = parsers.parse_kconfig(text)
    except parsers.ParseError:
        return
    assert opts and all(k.startswith("CONFIG_") for k in opts)


@settings(max_examples=300, deadline=None)
@given(LINES)
def test_stap_version(text):
    try:
        v = parsers.parse_stap_version(text)
    except parsers.ParseError as e:
        assert str(e)
        return
    assert v.version[0].isdigit()
    knowledge.stap_covers_kernel(v.version, "6.1.0-50-amd64", (v.tested_min, v.tested_max) if v.tested_max else None)


@settings(max_examples=300, deadline=None)
@given(TEXT, st.one_of(st.none(), LINES), st.one_of(st.none(), TEXT))
def test_kernel_versions(release, proc_version, signature):
    ver, src = parsers.upstream_kernel_version(release, proc_version, signature)
    assert isinstance(ver, str) and src
    knowledge.kernel_key(ver)
    parsers.kernel_compiler(proc_version)
    parsers.proc_version_uts(proc_version or "")
    knowledge.choose_systemtap_ref(ver, parsers.kernel_compiler(proc_version))


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=200))
def test_notes_blob(raw):
    bid = elfinfo.build_id_from_notes(raw)
    assert bid is None or all(c in string.hexdigits for c in bid)


@settings(max_examples=60, deadline=None)
@given(st.dictionaries(st.sampled_from(["/etc/os-release", "/etc/lsb-release", "/etc/redhat-release"]),
                       st.one_of(st.none(), LINES), max_size=3))
def test_os_release(files):
    info = parsers.os_release(files)
    assert set(info) >= {"id", "version_id", "name", "codename"}


@given(st.from_regex(r"\d{1,2}\.\d{1,2}(\.\d{1,3})?(-rc\d)?", fullmatch=True),
       st.from_regex(r"\d{1,2}\.\d{1,2}(\.\d{1,3})?(-rc\d)?", fullmatch=True))
def test_kernel_key_is_a_total_order(a, b):
    ka, kb = knowledge.kernel_key(a), knowledge.kernel_key(b)
    assert (ka < kb) + (ka > kb) + (ka == kb) == 1
