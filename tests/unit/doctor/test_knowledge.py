"""The knowledge tables' decisions, for distributions whose mirrors this machine cannot reach."""
import re

import pytest

from stapdoctor.doctor import knowledge as k


def test_every_release_has_a_source_and_tag():
    rels = k.systemtap_releases(include_respins=True)
    assert len(rels) > 20
    for r in rels:
        assert r.source and r.tag == f"release-{r.version}"
        if r.kernel_max:
            assert r.kernel_min


@pytest.mark.parametrize("kernel,gcc,ref", [
    ("3.5.5", "4.7.2", "release-4.9"),      # Ubuntu 12.10: the seed's own host
    ("3.2.14", "4.6.3", "release-4.9"),
])
def test_ref_for_old_kernels(kernel, gcc, ref):
    assert k.choose_systemtap_ref(kernel, gcc) == ref


def test_current_kernels_get_the_newest_release():
    newest = k.systemtap_releases()[-1].tag
    for kernel, gcc in [("6.1.176", "12.2.0"), ("7.2.13", "15.2.0"), ("6.8.12", "13.2.0")]:
        assert k.choose_systemtap_ref(kernel, gcc) == newest


# Every form of maximum that some release prints (systemtap_releases.toml, read from upstream's session.cxx).
MAX_FORMS = {
    "X.Y": r"\d+\.\d+", "X.Y.0": r"\d+\.\d+\.0", "X.Y-rc": r"\d+\.\d+-rc", "X.Y.0-rc": r"\d+\.\d+\.0-rc",
    "X.Y-rc0": r"\d+\.\d+-rc0", "X.Y-rcN": r"\d+\.\d+-rc[1-9]\d*", "X.Y.0-rcN": r"\d+\.\d+\.0-rc[1-9]\d*",
}
RANGE_CASES = [
    # (form of the maximum, kernel, lo, hi, inside)
    ("X.Y.0-rcN", "6.1.176", "2.6.32", "6.1.0-rc3", False),   # Debian 12: stap 4.8 fails pass 4 there
    ("X.Y.0-rcN", "6.1.0", "2.6.32", "6.1.0-rc3", False),
    ("X.Y.0-rcN", "6.1.0-rc3", "2.6.32", "6.1.0-rc3", True),
    ("X.Y.0-rcN", "6.1.0-rc4", "2.6.32", "6.1.0-rc3", False),
    ("X.Y.0-rcN", "6.0.19", "2.6.32", "6.1.0-rc3", True),
    ("X.Y-rcN", "5.18-rc3", "2.6.32", "5.18-rc3", True),
    ("X.Y-rcN", "5.18.0-rc4", "2.6.32", "5.18-rc3", False),
    ("X.Y-rcN", "5.18.1", "2.6.32", "5.18-rc3", False),
    ("X.Y-rcN", "5.17.15", "2.6.32", "5.18-rc3", True),
    ("X.Y-rc", "6.11.8", "3.10", "6.12-rc", True),
    ("X.Y-rc", "6.12.3", "3.10", "6.12-rc", False),
    ("X.Y-rc", "6.15.0-rc7", "3.10", "6.15-rc", True),          # some 6.15 rc was tested
    ("X.Y-rc", "6.15.0", "3.10", "6.15-rc", False),
    ("X.Y-rc", "6.15.2", "3.10", "6.15-rc", False),             # 5.3: a bare '6.15' would cover this
    ("X.Y.0-rc", "5.10.0-rc7", "2.6.32", "5.10.0-rc", True),
    ("X.Y.0-rc", "5.10.0", "2.6.32", "5.10.0-rc", False),
    ("X.Y.0-rc", "5.9.16", "2.6.32", "5.10.0-rc", True),
    ("X.Y-rc0", "6.8.12", "2.6.32", "6.9-rc0", True),
    ("X.Y-rc0", "6.9.0-rc1", "2.6.32", "6.9-rc0", False),
    ("X.Y-rc0", "4.18-rc0", "2.6.18", "4.18-rc0", True),
    ("X.Y.0", "5.7.0", "2.6.32", "5.7.0", True),
    ("X.Y.0", "5.7.1", "2.6.32", "5.7.0", False),
    ("X.Y", "4.11.5", "2.6.18", "4.11", True),                 # the whole 4.11.y series
    ("X.Y", "4.12.0-rc1", "2.6.18", "4.11", False),
    ("X.Y", "7.0.12", "3.10", "7.0", True),
    ("X.Y", "7.1.0", "3.10", "7.0", False),
    ("X.Y", "2.6.32", "3.10", "6.6", False),                   # below the minimum
    ("X.Y", "2.6.18", "2.6.18", "4.11", True),
]


@pytest.mark.parametrize("form,kernel,lo,hi,inside", RANGE_CASES)
def test_kernel_in_range(form, kernel, lo, hi, inside):
    assert re.fullmatch(MAX_FORMS[form], hi)
    assert k.kernel_in_range(kernel, lo, hi) is inside


def test_every_printed_maximum_form_is_tested():
    tested = {form for form, *_ in RANGE_CASES}
    for r in k.systemtap_releases(include_respins=True):
        if r.kernel_max:
            forms = [f for f, rx in MAX_FORMS.items() if re.fullmatch(rx, r.kernel_max)]
            assert len(forms) == 1 and forms[0] in tested, (r.version, r.kernel_max, forms)


def test_stale_printed_minimum_gives_way_to_the_real_floor():
    # 5.0 and 5.1 print 2.6.32, but NEWS 5.0 makes 3.10 the oldest supported kernel.
    for v in ("5.0", "5.0a", "5.1"):
        r = k.release_for(v)
        assert (r.version, r.kernel_min, r.supported_min, r.floor) == (v, "2.6.32", "3.10", "3.10")
    assert k.release_for("4.9").floor == "2.6.32"
    assert k.stap_covers_kernel("5.0", "3.5.5") is False
    assert k.stap_covers_kernel("5.0", "3.5.5", ("2.6.32", "6.6-rc1")) is False   # what its stap -V says
    assert k.stap_covers_kernel("5.1", "4.18.0") is True
    assert k.stap_covers_kernel("4.9", "3.5.5") is True
    assert k.supported_floor("5.1", "2.6.32") == "3.10" and k.supported_floor("5.2", "3.10") == "3.10"
    assert k.supported_floor("12.0", None) is None


def test_respins_are_in_the_table_but_not_chosen():
    every = {r.version for r in k.systemtap_releases(include_respins=True)}
    chosen_from = {r.version for r in k.systemtap_releases()}
    assert every - chosen_from == {"4.9a", "5.0a"}
    assert k.release_for("4.9a").respin_of == "4.9" and k.release_for("4.9").respin_of is None
    assert k.release_for("2.2.1").version == "2.2.1" and k.release_for("4.8.1").version == "4.8"


def test_printed_ranges_that_upstream_corrected():
    # Rows that differed from upstream's session.cxx on 2026-12-03 (issue 11).
    assert (k.release_for("4.1").kernel_min, k.release_for("4.1").kernel_max) == ("2.6.18", "5.1-rc2")
    assert k.release_for("4.4").kernel_max == "5.10.0-rc"
    assert k.release_for("4.9").kernel_max == "6.3.0-rc1"
    assert k.release_for("5.3").kernel_max == "6.15-rc"
    assert k.stap_covers_kernel("5.3", "6.15.2") is False
    assert (k.release_for("5.4").kernel_min, k.release_for("5.4").kernel_max) == ("3.10", "6.18-rc")
    assert (k.release_for("5.5").kernel_min, k.release_for("5.5").kernel_max) == ("3.10", "7.0")


def test_ubuntu_1210():
    p = k.platform_packages("ubuntu", "12.10", "3.5.0-17-generic", kernel_version="3.5.0-17.28")
    assert p["headers"] == ["linux-headers-3.5.0-17-generic"]
    assert p["debuginfo"] == ["linux-image-3.5.0-17-generic-dbgsym"]
    assert p["eol"] and p["old_releases_url"].startswith("http://old-releases.ubuntu.com")
    assert p["debuginfo_method"] == "launchpad"
    assert p["launchpad_url"] == "https://launchpad.net/ubuntu/quantal/amd64/linux-image-3.5.0-17-generic-dbgsym/3.5.0-17.28"
    assert p["python"] == "/usr/bin/python2.7" and p["gcc"] == "4.7"


@pytest.mark.parametrize("ver,code", [("22.04", "jammy"), ("24.04", "noble")])
def test_ubuntu_current(ver, code):
    p = k.platform_packages("ubuntu", ver, "6.8.0-31-generic")
    assert p["debuginfo"] == ["linux-image-unsigned-6.8.0-31-generic-dbgsym"]
    assert p["debuginfo_method"] == "apt-ddebs"
    repo = p["ddebs_repo"]
    assert repo["url"] == "http://ddebs.ubuntu.com" and repo["suites"][:2] == [code, f"{code}-updates"]
    assert repo["keyring_package"] == "ubuntu-dbgsym-keyring" and len(repo["key_fingerprint"]) == 40


def test_fedora_41_and_variants():
    p = k.platform_packages("fedora", "41", "6.11.8-300.fc41.x86_64")
    assert p["headers"] == ["kernel-devel-6.11.8-300.fc41.x86_64"]
    assert p["debuginfo_command"].startswith("dnf debuginfo-install")
    d = k.platform_packages("fedora", "41", "6.11.8-300.fc41.x86_64+debug")
    assert d["kernel_variant"] == "debug" and d["headers"] == ["kernel-debug-devel-6.11.8-300.fc41.x86_64"]
    rt = k.platform_packages("rhel", "9.4", "5.14.0-427.13.1.el9_4.x86_64+rt")
    assert rt["debuginfo"] == ["kernel-rt-debuginfo-5.14.0-427.13.1.el9_4.x86_64"]
    assert rt["debuginfo_command"] == "dnf debuginfo-install -y kernel-rt-5.14.0-427.13.1.el9_4.x86_64"


def test_rhel():
    p = k.platform_packages("centos", "6.10", "2.6.32-220.el6.x86_64")
    assert p["family"] == "redhat" and p["debuginfo_method"] == "yum-debuginfo"
    assert p["debuginfo_command"] == "debuginfo-install -y kernel-2.6.32-220.el6.x86_64"
    r = k.platform_packages("rhel", "9.4", "5.14.0-427.el9.x86_64")
    assert r["headers"] == ["kernel-devel-5.14.0-427.el9.x86_64"]


def test_debian():
    p = k.platform_packages("debian", "12", "6.1.0-50-amd64")
    assert p["headers"] == ["linux-headers-6.1.0-50-amd64"] and p["debuginfo"] == ["linux-image-6.1.0-50-amd64-dbg"]


def test_unknown_distribution():
    with pytest.raises(LookupError):
        k.platform_packages("plan9", "4", "x")


# FRAME_WARN=1024 (32-bit defaults, some distributions) gets 512, stap's own 64-bit default (issue 14 item 8)
@pytest.mark.parametrize("fw,val", [(2048, 1024), (1024, 512), (None, 1024), (0, 4096), (8192, 4096), (4112, 4096)])
def test_safe_maxstringlen(fw, val):
    assert k.safe_maxstringlen(fw) == val


def test_gate_checks():
    assert "debuginfo.vmlinux" not in k.gate_checks(False)
    assert "debuginfo.vmlinux" in k.gate_checks(True)


def test_frame_rule_covers_every_measured_frame():
    """The rule is drawn from measurements (doctor/knowledge/stap_frames.toml, bench/measure_maxstringlen_frames.py):
    it never predicts a frame smaller than one measured, and the value it picks for a limit keeps every measured
    frame of that MAXSTRINGLEN within the limit."""
    rows = k.frame_rule()["measured"]
    assert len({r["maxstringlen"] for r in rows}) >= 3
    for r in rows:
        assert k.frame_for(r["maxstringlen"]) >= r["largest_frame"], r
    for fw in (1024, 2048, 4096):
        pick = k.safe_maxstringlen(fw)
        assert all(r["largest_frame"] <= fw for r in rows if r["maxstringlen"] == pick)
