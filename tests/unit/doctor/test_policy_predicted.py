"""Lockdown and signature enforcement when the live facts are missing: predicted from the config, never a
PASS by absence (issue 14, items 1-2). The configs are real distribution configs (tests/data/doctor/kconfig)
with the options a real kernel of that kind sets; /proc/mounts is this machine's, which has no securityfs."""
import gzip
import json
import os
import subprocess
import sys

from stapdoctor.doctor import checks, snapshot

# /proc/mounts of a Debian 12 VM whose securityfs is not mounted (this machine, 2026-12-03).
MOUNTS_NO_SECURITYFS = ("proc /proc proc rw,relatime 0 0\nsysfs /sys sysfs rw,relatime 0 0\n"
                        "/dev/vda / ext4 rw,relatime,discard 0 0\n")
MOUNTS_SECURITYFS = MOUNTS_NO_SECURITYFS + "securityfs /sys/kernel/security securityfs rw,nosuid,nodev,noexec,relatime 0 0\n"
# This machine's kernel (6.18.44-fc-v1147): lockdown forced to integrity at build time.
FORCED = ("config-7.2.13+deb14-amd64", {"CONFIG_LOCK_DOWN_KERNEL_FORCE_NONE": "n",
                                         "CONFIG_LOCK_DOWN_KERNEL_FORCE_INTEGRITY": "y"})


def found(root):
    return {f.id: f for f in checks.run_checks(snapshot.collect(str(root)))}


def test_forced_integrity_without_securityfs_fails(host_root):
    """This machine's case: FORCE_INTEGRITY, lockdown in CONFIG_LSM, securityfs not mounted."""
    got = found(host_root("ready", lockdown=None, config=FORCED, mounts=MOUNTS_NO_SECURITYFS))
    f = got["policy.lockdown"]
    assert f.status == "fail", f.evidence
    assert "[integrity] predicted" in f.evidence and "CONFIG_LOCK_DOWN_KERNEL_FORCE_INTEGRITY=y" in f.evidence
    assert "securityfs is not mounted" in f.evidence and "mount -t securityfs" in f.remedy


def test_image_without_sys_is_not_a_pass(host_root):
    """Debian 12's config has SECURITY_LOCKDOWN_LSM, LOCK_DOWN_IN_EFI_SECURE_BOOT and MODULE_SIG: an image
    without /sys can say neither 'no lockdown' nor 'signing not built in'."""
    got = found(host_root("debian-12-stap-4.8", lockdown=None))
    lock, sig = got["policy.lockdown"], got["policy.sig_enforce"]
    assert lock.status == "warn" and lock.evidence.startswith("not collected (no /sys/kernel/security/lockdown")
    assert "CONFIG_LOCK_DOWN_IN_EFI_SECURE_BOOT=y" in lock.evidence
    assert sig.status == "warn" and "not built in" not in sig.evidence and "CONFIG_MODULE_SIG=y" in sig.evidence


def test_secure_boot_on_predicts_integrity(host_root):
    got = found(host_root("debian-12-stap-4.8", lockdown=None, mounts=MOUNTS_NO_SECURITYFS, secure_boot=1,
                          cmdline="BOOT_IMAGE=/boot/vmlinuz-6.1.0-50-amd64 root=/dev/vda ro quiet"))
    f = got["policy.lockdown"]
    assert f.status == "fail" and "SecureBoot=1 (efivars)" in f.evidence


def test_secure_boot_off_still_unconfirmed_without_securityfs(host_root):
    got = found(host_root("debian-12-stap-4.8", lockdown=None, mounts=MOUNTS_NO_SECURITYFS, secure_boot=0,
                          cmdline="root=/dev/vda ro"))
    f = got["policy.lockdown"]
    assert f.status == "warn" and "not known: securityfs is not mounted" in f.evidence


def test_boot_parameter_raises_lockdown(host_root):
    got = found(host_root("debian-12-stap-4.8", lockdown=None, mounts=MOUNTS_NO_SECURITYFS, secure_boot=0,
                          cmdline="root=/dev/vda ro lockdown=confidentiality"))
    assert got["policy.lockdown"].status == "fail" and "[confidentiality]" in got["policy.lockdown"].evidence


def test_securityfs_mounted_without_lockdown_file_passes(host_root):
    got = found(host_root("debian-12-stap-4.8", lockdown=None, mounts=MOUNTS_SECURITYFS))
    assert got["policy.lockdown"].status == "pass" and "not active" in got["policy.lockdown"].evidence


def test_kernel_without_lockdown_lsm_passes_from_config(host_root):
    got = found(host_root("ubuntu-12.04"))  # 3.2: no lockdown LSM at all
    assert got["policy.lockdown"].status == "pass" and "without the lockdown LSM" in got["policy.lockdown"].evidence


def test_sig_enforce_boot_parameter(host_root):
    got = found(host_root("debian-12-stap-4.8", mounts=MOUNTS_NO_SECURITYFS, cmdline="ro module.sig_enforce=1"))
    assert got["policy.sig_enforce"].status == "fail" and "module.sig_enforce" in got["policy.sig_enforce"].evidence


def test_module_sig_not_built_passes_from_config(host_root):
    cfg = ("config-7.2.13+deb14-amd64", {"CONFIG_MODULE_SIG": "n"})
    got = found(host_root("ready", sig_enforce=None, config=cfg))
    assert got["policy.sig_enforce"].status == "pass" and "CONFIG_MODULE_SIG not set" in got["policy.sig_enforce"].evidence


def test_integrity_lockdown_closes_debugfs_for_old_stap(host_root):
    """Item 2: stap < 4.4 has only the debugfs transport, which integrity lockdown already closes."""
    got = found(host_root("rhel-6", lockdown="none [integrity] confidentiality"))
    t = got["transport"]
    assert t.status == "fail" and "locked by lockdown [integrity]" in t.evidence
    assert "debugfs is locked too" in got["policy.lockdown"].evidence


def test_predicted_lockdown_closes_debugfs(host_root):
    got = found(host_root("rhel-6", config=("config-7.2.13+deb14-amd64", FORCED[1]), mounts=MOUNTS_NO_SECURITYFS))
    assert got["transport"].status == "fail" and "(predicted)" in got["transport"].evidence


def test_this_machine_lockdown_is_not_passed_by_absence():
    """Run on this very machine: a kernel forcing integrity lockdown with securityfs unmounted must not PASS."""
    try:
        cfg = gzip.decompress(open("/proc/config.gz", "rb").read()).decode()
    except OSError:
        cfg = ""
    r = subprocess.run([sys.executable, "-m", "stapdoctor.doctor", "check", "--json"], capture_output=True, text=True)
    got = {f["id"]: f for f in json.loads(r.stdout)["findings"]}
    if "CONFIG_LOCK_DOWN_KERNEL_FORCE_INTEGRITY=y" in cfg and not os.path.exists("/sys/kernel/security/lockdown"):
        assert got["policy.lockdown"]["status"] == "fail"
    else:  # elsewhere: whatever it says, an absent file alone is never the reason for a PASS
        assert "lockdown absent" not in got["policy.lockdown"]["evidence"]

