"""Verdicts check by check for real hosts' facts (see tests/data/doctor/SOURCES.md)."""
import json
import subprocess
import sys

import pytest

from stapdoctor.doctor import checks, snapshot

# Every check's status for every host; "-" means the check is not reported (only with --deep/--pid).
# sig_enforce is a WARN where the tree has CONFIG_MODULE_SIG=y but no sig_enforce parameter: not collected.
EXPECTED = {
    #                 config uprobes uret   kprobes relay debugfs modules unload dbginfo frame  build  uts    vmlinux stap   range  lockdn sigenf user   staprun transport
    "ubuntu-12.04":  "pass   fail    skip   pass    pass  pass    pass    pass   pass    pass   pass   pass   fail    fail   skip   pass   pass   pass   skip    skip",
    "ubuntu-12.10":  "pass   pass    warn   pass    pass  pass    pass    pass   pass    pass   pass   pass   fail    fail   skip   pass   pass   pass   skip    skip",
    "rhel-6":        "pass   pass    pass   pass    pass  pass    pass    pass   pass    pass   pass   pass   fail    pass   warn   pass   warn   pass   pass    pass",
    "ubuntu-22.04":  "pass   pass    pass   pass    pass  pass    pass    pass   pass    pass   fail   skip   fail    fail   skip   pass   warn   pass   skip    skip",
    "fedora-41":     "pass   pass    pass   pass    pass  pass    pass    pass   pass    pass   pass   pass   fail    pass   pass   pass   warn   pass   pass    pass",
    "debian-12-stap-4.8": "pass pass pass   pass    pass  pass    pass    pass   pass    pass   pass   pass   fail    pass   warn   pass   warn   pass   pass    pass",
    "lockdown":      "pass   pass    pass   pass    pass  pass    pass    pass   pass    pass   pass   pass   fail    pass   pass   fail   fail   pass   pass    pass",
    "ready":         "pass   pass    pass   pass    pass  pass    pass    pass   pass    pass   pass   pass   pass    pass   pass   pass   pass   pass   pass    pass",
}
ORDER = ["kernel.config", "kernel.uprobes", "kernel.uretprobes", "kernel.kprobes", "kernel.relay", "kernel.debugfs",
         "kernel.modules", "kernel.module_unload", "kernel.debug_info", "kernel.frame_warn", "devel.build", "devel.uts",
         "debuginfo.vmlinux", "stap.installed", "stap.kernel_range", "policy.lockdown", "policy.sig_enforce",
         "access.user", "access.staprun", "transport"]


def findings_for(root):
    return {f.id: f for f in checks.run_checks(snapshot.collect(str(root)))}


@pytest.mark.parametrize("host", sorted(EXPECTED))
def test_verdicts_check_by_check(host, host_root):
    got = findings_for(host_root(host))
    want = dict(zip(ORDER, EXPECTED[host].split()))
    assert {k: got[k].status for k in ORDER} == want
    for f in got.values():
        assert f.evidence and "\n" not in f.evidence
        if f.status == "fail":
            assert f.remedy, f"{f.id} fails without a remedy"


def test_ubuntu_1204_uses_stap_words(host_root):
    f = findings_for(host_root("ubuntu-12.04"))["kernel.uprobes"]
    assert f.evidence.startswith("process probes not available without kernel CONFIG_UTRACE or "
                                 "CONFIG_TRACEPOINTS/CONFIG_ARCH_SUPPORTS_UPROBES/CONFIG_UPROBES")
    assert "3.2.14" in f.evidence  # the upstream version, from /proc/version_signature


def test_ubuntu_1210_debuginfo_remedy_points_at_launchpad(host_root):
    f = findings_for(host_root("ubuntu-12.10"))["debuginfo.vmlinux"]
    assert "--tags debuginfo" in f.remedy
    assert "linux-image-3.5.0-17-generic-dbgsym" in f.remedy and "launchpad.net" in f.remedy


def test_ubuntu_1210_builds_release_49(host_root):
    f = findings_for(host_root("ubuntu-12.10"))["stap.installed"]
    assert "systemtap_ref=release-4.9" in f.remedy


def test_debian12_stap48_is_predicted_out_of_range(host_root):
    f = findings_for(host_root("debian-12-stap-4.8"))["stap.kernel_range"]
    assert "6.1.176" in f.evidence and "6.1.0-rc3" in f.evidence
    assert "release-" in f.evidence and "--tags systemtap" in f.remedy


def test_rhel6_utrace(host_root):
    f = findings_for(host_root("rhel-6"))["kernel.uprobes"]
    assert "CONFIG_UTRACE=y" in f.evidence


def test_build_id_mismatch_fails(host_root):
    f = findings_for(host_root("ready", vmlinux="other"))["debuginfo.vmlinux"]
    assert f.status == "fail" and "build-id mismatch" in f.evidence


def test_debuginfod_turns_missing_debuginfo_into_warning(host_root, tmp_path):
    root = host_root("debian-12-stap-4.8")
    (root / ".stapdoctor" / "env").write_text("DEBUGINFOD_URLS=https://debuginfod.debian.net\n")
    try:
        f = findings_for(root)["debuginfo.vmlinux"]
    finally:
        (root / ".stapdoctor" / "env").unlink()
    assert f.status == "warn" and "DEBUGINFOD_URLS" in f.evidence


def test_uts_mismatch_fails(host_root):
    f = findings_for(host_root("fedora-41", uts="1 SMP PREEMPT_DYNAMIC Fri Oct 11 10:00:00 UTC 2024"))["devel.uts"]
    assert f.status == "fail"


def test_configs_disagree_warns(host_root):
    root = host_root("fedora-41")
    cfg = next((root / "usr/src").glob("linux-headers-*")) / ".config"
    saved = cfg.read_text()
    cfg.write_text(saved.replace("CONFIG_UPROBES=y", "# CONFIG_UPROBES is not set"))
    try:
        f = findings_for(root)["kernel.config"]
    finally:
        cfg.write_text(saved)
    assert f.status == "warn" and "CONFIG_UPROBES" in f.evidence and "/boot/config-" in f.evidence


def test_non_root_user_without_groups_fails(host_root):
    root = host_root("fedora-41", id="uid=1000(alice) gid=1000(alice) groups=1000(alice),10(wheel)")
    got = findings_for(root)
    assert got["access.user"].status == "fail" and "stapusr" in got["access.user"].remedy
    root = host_root("fedora-41", id="uid=1000(bob) gid=1000(bob) groups=1000(bob),156(stapusr)")
    assert findings_for(root)["access.user"].status == "warn"


def test_cli_exit_codes_and_json(host_root):
    ready = subprocess.run([sys.executable, "-m", "stapdoctor.doctor", "check", "--root", str(host_root("ready")),
                            "--json"], capture_output=True, text=True)
    assert ready.returncode == 0, ready.stderr
    data = json.loads(ready.stdout)
    assert data["schema"] == "stapdoctor.check/1" and data["ready"] is True
    notready = subprocess.run([sys.executable, "-m", "stapdoctor.doctor", "check", "--root",
                               str(host_root("ubuntu-12.04"))], capture_output=True, text=True)
    assert notready.returncode == 1
    assert "FAIL" in notready.stdout and "kernel.uprobes" in notready.stdout and "Fixes:" in notready.stdout
    usage = subprocess.run([sys.executable, "-m", "stapdoctor.doctor", "check", "--bogus"], capture_output=True, text=True)
    assert usage.returncode == 2


def test_json_matches_documented_schema(host_root):
    import jsonschema
    from importlib.resources import files
    schema = json.loads(files("stapdoctor.doctor").joinpath("schema/check-report.v1.json").read_text())
    for host in EXPECTED:
        out = subprocess.run([sys.executable, "-m", "stapdoctor.doctor", "check", "--root", str(host_root(host)),
                              "--json"], capture_output=True, text=True)
        jsonschema.validate(json.loads(out.stdout), schema)


def test_snapshot_roundtrip_gives_same_verdicts(host_root, tmp_path):
    root = host_root("debian-12-stap-4.8")
    out = tmp_path / "snap.json"
    r = subprocess.run([sys.executable, "-m", "stapdoctor.doctor", "snapshot", "--root", str(root), "-o", str(out)],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    direct = {f.id: (f.status, f.evidence) for f in checks.run_checks(snapshot.collect(str(root)))}
    loaded = {f.id: (f.status, f.evidence) for f in checks.run_checks(snapshot.load(out))}
    assert direct == loaded
    data = json.loads(out.read_text())
    assert data["source"]["kind"] == "sysroot" and data["source"]["kernel_release_from"] == "/proc/sys/kernel/osrelease"
