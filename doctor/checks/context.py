"""Derived facts shared by the checks (parsed config, versions, distro), computed once per run."""
from __future__ import annotations

from functools import cached_property

from .. import knowledge, parsers

# The config options the checks look at; a disagreement between two config files on these is reported.
IMPORTANT = ("CONFIG_UPROBES", "CONFIG_UTRACE", "CONFIG_TRACEPOINTS", "CONFIG_ARCH_SUPPORTS_UPROBES",
             "CONFIG_KPROBES", "CONFIG_RELAY", "CONFIG_DEBUG_FS", "CONFIG_MODULES", "CONFIG_MODULE_UNLOAD",
             "CONFIG_DEBUG_INFO", "CONFIG_FRAME_WARN", "CONFIG_MODULE_SIG_FORCE", "CONFIG_SECURITY_LOCKDOWN_LSM")

# Where stap and check-config.sh look, in stap's order of preference.
CONFIG_CANDIDATES = ("/lib/modules/{R}/build/.config", "/proc/config.gz", "/boot/config-{R}")


class Context:
    def __init__(self, snap, host_label: str | None = None):
        self.snap = snap
        self.host = host_label or snap.source.get("host") or "HOST"

    # -- kernel config --
    @cached_property
    def configs(self) -> list[tuple[str, dict[str, str] | None, str]]:
        """(path, options or None, note) for every candidate that exists."""
        out = []
        for t in CONFIG_CANDIDATES:
            path = self.snap.path(t)
            fact = self.snap.files.get(path, {})
            st = fact.get("status")
            if st == "ok" and "text" in fact:
                try:
                    out.append((path, parsers.parse_kconfig(fact["text"]), "ok"))
                except parsers.ParseError as e:
                    out.append((path, None, str(e)))
            elif st in ("unreadable", "error"):
                out.append((path, None, fact.get("error", st)))
        return out

    @cached_property
    def config(self) -> tuple[str, dict[str, str]] | None:
        for path, opts, _ in self.configs:
            if opts is not None:
                return path, opts
        return None

    def opt(self, name: str) -> str | None:
        return self.config[1].get(name) if self.config else None

    def on(self, name: str) -> bool:
        return self.opt(name) == "y"

    # -- kernel version --
    @cached_property
    def kernel_version(self) -> tuple[str, str]:
        return parsers.upstream_kernel_version(self.snap.kernel_release, self.snap.text("/proc/version"),
                                               self.snap.text("/proc/version_signature"))

    @cached_property
    def kernel_gcc(self) -> str | None:
        return parsers.kernel_compiler(self.snap.text("/proc/version"))

    # -- distribution --
    @cached_property
    def os(self) -> dict[str, str]:
        texts = {p: self.snap.text(p) for p in ("/etc/os-release", "/etc/lsb-release", "/etc/redhat-release")}
        if not texts["/etc/os-release"]:
            texts["/etc/os-release"] = self.snap.text("/usr/lib/os-release")
        try:
            return parsers.os_release(texts)
        except Exception:  # noqa: BLE001 - an unparseable os-release means "unknown distribution"
            return {"id": "", "version_id": "", "name": "", "codename": ""}

    @cached_property
    def packages(self) -> dict | None:
        try:
            return knowledge.platform_packages(self.os["id"], self.os["version_id"], self.snap.kernel_release)
        except LookupError:
            return None

    # -- stap --
    @cached_property
    def stap(self):
        """(StapVersion or None, error message or None)."""
        cmd = self.snap.commands.get("stap-V")
        if cmd is None:
            return None, None
        if cmd.get("error"):
            return None, f"`stap -V` {cmd['error']}"
        text = (cmd.get("stdout") or "") + "\n" + (cmd.get("stderr") or "")
        try:
            return parsers.parse_stap_version(text), None
        except parsers.ParseError as e:
            return None, f"`stap -V` exited {cmd.get('rc')}: {e}"

    # -- boot and live facts --
    @cached_property
    def cmdline(self) -> dict[str, str] | None:
        """Kernel boot parameters (before '--'); a bare flag maps to ''. None: /proc/cmdline not collected."""
        text = self.snap.text("/proc/cmdline")
        if text is None:
            return None
        out: dict[str, str] = {}
        for word in text.split():
            if word == "--":
                break
            k, _, v = word.partition("=")
            out[k] = v
        return out

    @cached_property
    def securityfs(self) -> bool | None:
        """Is securityfs mounted (where lockdown and the LSM list show)? None: /proc/mounts not collected."""
        mounts = self.snap.text("/proc/mounts")
        if mounts is None:
            return None
        return any(len(p) > 2 and p[2] == "securityfs" for p in (ln.split() for ln in mounts.splitlines()))

    @cached_property
    def secure_boot(self) -> tuple[bool | None, str]:
        """(Secure Boot on?, evidence) from the SecureBoot EFI variable (4 attribute bytes, then 0 or 1)."""
        from ..snapshot import SECURE_BOOT_VAR
        var = self.snap.files.get(SECURE_BOOT_VAR, {})
        if var.get("hex") and len(var["hex"]) >= 10:
            on = int(var["hex"][8:10], 16) == 1
            return on, f"SecureBoot={int(on)} (efivars)"
        efi = self.snap.files.get("/sys/firmware/efi", {}).get("status")
        if efi == "ok":
            return None, "booted by EFI but the SecureBoot variable is not readable"
        if efi == "missing" and self.securityfs is not None:   # /sys of the running kernel was collected
            return False, "not booted by EFI (no /sys/firmware/efi): no Secure Boot"
        return None, "Secure Boot state not collected"

    @cached_property
    def kernel_packaged(self) -> tuple[bool | None, str]:
        """(does a package provide the running kernel?, its name or why not): custom kernels have no
        headers or debug packages anywhere."""
        from ..hostfacts import kernel_owner
        return kernel_owner(self.snap.commands.get("kernel-package"))

    # -- remedies --
    def play(self, tag: str) -> str:
        return f"ansible-playbook playbooks/site.yml --tags {tag} -l {self.host}"

    def remedy(self, tag: str, command: str | None = None) -> str:
        r = self.play(tag)
        return f"{r}   or on the host: {command}" if command else r
