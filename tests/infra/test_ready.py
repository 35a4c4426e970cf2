"""Is each host what site.yml promises: headers, debug symbols, a working stap, stap groups?"""

from __future__ import annotations

import re


def _family(host) -> str:
    return "debian" if host.system_info.distribution in ("debian", "ubuntu") else "redhat"


def test_kernel_headers(host, kernel_release):
    build = host.file(f"/lib/modules/{kernel_release}/build")
    assert build.exists, f"/lib/modules/{kernel_release}/build missing: kernel headers not installed"
    assert host.file(f"/lib/modules/{kernel_release}/build/Makefile").exists
    if _family(host) == "debian":
        assert host.package(f"linux-headers-{kernel_release}").is_installed
    else:
        assert host.run(f"rpm -q kernel-devel-{kernel_release}").rc == 0


def test_kernel_debug_symbols(host, kernel_release, hostvars):
    if hostvars.get("debuginfo_use_debuginfod"):
        return  # the user chose to fetch DWARF on demand
    candidates = [f"/usr/lib/debug/boot/vmlinux-{kernel_release}",
                  f"/usr/lib/debug/lib/modules/{kernel_release}/vmlinux"]
    found = [p for p in candidates if host.file(p).exists]
    assert found, f"no debug vmlinux for {kernel_release} in {candidates}"
    assert host.file(found[0]).size > 10_000_000, "the debug vmlinux is too small to hold DWARF"


def test_stap_runs(host):
    r = host.run("stap -V")
    assert r.rc == 0, r.stderr
    assert re.search(r"version \d+\.\d+", r.stderr + r.stdout)


def test_built_stap_is_switched(host, hostvars):
    if hostvars.get("systemtap_install", "auto") != "build":
        return
    root = hostvars.get("systemtap_prefix_root", "/opt/systemtap")
    current = host.file(f"{root}/current")
    assert current.is_symlink
    version = current.linked_to.rstrip("/").rsplit("/", 1)[-1]
    ref = hostvars.get("systemtap_ref")
    if ref:
        assert version == ref.removeprefix("release-")
    assert host.file(f"{root}/{version}/.stapdoctor-build.json").exists
    assert host.check_output("readlink /usr/local/bin/stap") == f"{root}/current/bin/stap"
    v = host.run("/usr/local/bin/stap -V")  # stdout from 2.7 on, stderr before
    assert f"version {version}" in v.stdout + v.stderr


def test_stap_groups_and_users(host, hostvars):
    for g in ("stapusr", "stapsys", "stapdev"):
        assert host.group(g).exists, g
    for u in hostvars.get("stap_users", []):
        name = u["name"] if isinstance(u, dict) else u
        groups = u.get("groups", ["stapusr", "stapdev"]) if isinstance(u, dict) else ["stapusr", "stapdev"]
        assert set(groups) <= set(host.user(name).groups), name


def test_staprun_setuid(host):
    for path in ("/opt/systemtap/current/bin/staprun", "/usr/bin/staprun"):
        f = host.file(path)
        if f.exists:
            st = host.file(f.linked_to if f.is_symlink else path)
            assert st.user == "root" and st.group == "stapusr"
            assert st.mode & 0o4000, f"{path} is not setuid"
            return
    raise AssertionError("no staprun found")
