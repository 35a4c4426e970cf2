"""Variant kernels as systemtap's stap-prep names them (issue 14, item 4): the uname -r forms in stap-prep's
comments plus RHEL 9's +rt-debug and aarch64 +64k, each to the package that provides it."""
import pytest

from stapdoctor.doctor import knowledge as k

CASES = [
    # uname -r (forms quoted in stap-prep)              variant      headers package
    ("2.6.32-30.el6.x86_64",                            None,        "kernel-devel-2.6.32-30.el6.x86_64"),
    ("2.6.18-194.3.1.el5debug",                         "debug",     "kernel-debug-devel-2.6.18-194.3.1.el5"),
    ("2.6.18-8.el5xen",                                 "xen",       "kernel-xen-devel-2.6.18-8.el5"),
    ("2.6.33.4-95.fc13.i686.PAE",                       "PAE",       "kernel-PAE-devel-2.6.33.4-95.fc13.i686"),
    ("3.18.6-100.fc20.i686+PAE",                        "PAE",       "kernel-PAE-devel-3.18.6-100.fc20.i686"),
    ("3.19.0-1.fc22.i686+PAEdebug",                     "PAEdebug",  "kernel-PAEdebug-devel-3.19.0-1.fc22.i686"),
    ("2.6.32-220.el6.x86_64.kdump",                     "kdump",     "kernel-kdump-devel-2.6.32-220.el6.x86_64"),
    ("5.14.0-200.rt14.201.el9",                         "rt",        "kernel-rt-devel-5.14.0-200.rt14.201.el9"),
    ("5.14.0-447.el9.x86_64+rt",                        "rt",        "kernel-rt-devel-5.14.0-447.el9.x86_64"),
    ("5.14.0-427.13.1.el9_4.x86_64+rt-debug",           "rt-debug",  "kernel-rt-debug-devel-5.14.0-427.13.1.el9_4.x86_64"),
    ("5.14.0-200.rt14.201.el9+debug",                   "rt-debug",  "kernel-rt-debug-devel-5.14.0-200.rt14.201.el9"),
    ("5.14.0-362.8.1.el9_3.aarch64+64k",                "64k",       "kernel-64k-devel-5.14.0-362.8.1.el9_3.aarch64"),
    ("5.14.0-362.8.1.el9_3.aarch64+64k-debug",          "64k-debug", "kernel-64k-debug-devel-5.14.0-362.8.1.el9_3.aarch64"),
    ("6.8.9-300.fc40.aarch64+16k",                      "16k",       "kernel-16k-devel-6.8.9-300.fc40.aarch64"),
]


@pytest.mark.parametrize("release,variant,headers", CASES)
def test_variant_package(release, variant, headers):
    assert k.kernel_variant(release) == variant
    p = k.platform_packages("rhel", "9", release)
    assert p["headers"] == [headers]
    assert p["debuginfo"] == [headers.replace("-devel-", "-debuginfo-")]


def test_rt_debug_is_not_plain_debug():
    p = k.platform_packages("rhel", "9.4", "5.14.0-427.13.1.el9_4.x86_64+rt-debug")
    assert "kernel-rt-debug-5.14.0-427.13.1.el9_4.x86_64" in p["debuginfo_command"]


def test_debian_flavours_are_not_variants():
    for rel in ("6.1.0-50-rt-amd64", "6.1.0-50-amd64", "5.15.0-1034-realtime", "6.18.44-fc-v1147"):
        assert k.kernel_variant(rel) is None
