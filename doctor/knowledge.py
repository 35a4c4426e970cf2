"""The one place for facts about systemtap releases and distributions.

The data lives in TOML files beside this module (each fact with its source); the doctor's remedies and
the playbooks' choices (through playbooks/filter_plugins) both read it, so they cannot disagree.
"""
from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

DATA = Path(__file__).with_name("knowledge")


@dataclass(frozen=True)
class Release:
    version: str
    tag: str
    date: str | None
    kernel_min: str | None
    kernel_max: str | None
    gcc_min: str | None
    needs_cxx11: bool
    elfutils_min: str | None
    source: str
    notes: str = ""


def _load(name: str) -> dict:
    with open(DATA / name, "rb") as f:
        return tomllib.load(f)


@lru_cache(maxsize=None)
def systemtap_releases() -> tuple[Release, ...]:
    """All known releases, oldest first."""
    rows = []
    for r in _load("systemtap_releases.toml").get("release", []):
        rows.append(Release(
            version=str(r["version"]), tag=r.get("tag", f"release-{r['version']}"), date=r.get("date"),
            kernel_min=r.get("kernel_min"), kernel_max=r.get("kernel_max"), gcc_min=r.get("gcc_min"),
            needs_cxx11=bool(r.get("needs_cxx11", False)), elfutils_min=r.get("elfutils_min"),
            source=r.get("source", ""), notes=r.get("notes", "")))
    rows.sort(key=lambda r: version_key(r.version))
    return tuple(rows)


def release_for(stap_version: str) -> Release | None:
    """The table row for an installed stap version (matching major.minor)."""
    mm = ".".join(stap_version.split(".")[:2])
    for r in systemtap_releases():
        if r.version == mm or r.version == stap_version:
            return r
    return None


# ---------------------------------------------------------------- versions
_NUM = re.compile(r"\d+")


def version_key(v: str) -> tuple[int, ...]:
    """Numeric key for a dotted version ('4.7.2' -> (4, 7, 2)); non-numbers are ignored."""
    return tuple(int(x) for x in _NUM.findall(v.split("-")[0].split("+")[0])) or (0,)


def kernel_key(v: str) -> tuple:
    """Orderable key for a kernel version as stap prints them: '6.1.0-rc3' < '6.1.0' == '6.1' < '6.1.176'.

    A '-rcN' suffix (or a bare '-rc') sorts before the release it precedes; distro suffixes
    ('-50-amd64', '.fc41.x86_64') are ignored: use upstream_kernel_version() to get the real version.
    """
    m = re.match(r"\s*(\d+(?:\.\d+)*)(.*)", v or "")
    if not m:
        return ((0, 0, 0), 1, 0)
    nums = [int(x) for x in m.group(1).split(".")]
    while len(nums) < 3:
        nums.append(0)
    rc = re.match(r"-rc(\d*)", m.group(2))
    if rc:
        return (tuple(nums[:3]), 0, int(rc.group(1) or 0))
    return (tuple(nums[:3]), 1, 0)


def kernel_in_range(kernel: str, lo: str | None, hi: str | None) -> bool:
    """Is the kernel inside stap's tested range? The range's last entry counts as its whole
    minor series' pre-releases only: '6.1.0-rc3' does not cover 6.1.176, as stap 4.8 proves on
    Debian 12 (pass 4 fails there)."""
    k = kernel_key(kernel)
    if lo and k < kernel_key(lo):
        return False
    if hi is None:
        return True
    if re.fullmatch(r"\s*\d+\.\d+\s*", hi):
        # "4.11" as the top of the range: the whole 4.11.y series was tested.
        return k[0][:2] <= kernel_key(hi)[0][:2]
    return k <= kernel_key(hi)


def stap_covers_kernel(stap_version: str, kernel_release: str,
                       tested_range: tuple[str, str] | None = None) -> bool | None:
    """True/False when known; None when neither stap -V nor the table give a range."""
    if tested_range is None:
        r = release_for(stap_version)
        if r is None or r.kernel_max is None:
            return None
        tested_range = (r.kernel_min, r.kernel_max)
    return kernel_in_range(kernel_release, tested_range[0], tested_range[1])


def choose_systemtap_ref(kernel_version: str, gcc_version: str | None = None) -> str:
    """The release tag to build for a kernel (upstream version) and compiler.

    The newest release whose tested range covers the kernel and whose toolchain floor the compiler
    meets; for a kernel newer than every tested range, the newest release (it is the most likely to
    work); for one older than all of them, the oldest release that still lists it.
    """
    rels = list(systemtap_releases())
    if not rels:
        raise LookupError("no systemtap releases in the knowledge table")

    def gcc_ok(r: Release) -> bool:
        return not (gcc_version and r.gcc_min and version_key(gcc_version) < version_key(r.gcc_min))

    covering = [r for r in rels if r.kernel_max and kernel_in_range(kernel_version, r.kernel_min, r.kernel_max)
                and gcc_ok(r)]
    if covering:
        return covering[-1].tag
    k = kernel_key(kernel_version)
    # Newer than all: the newest release that still supports the kernel's era and compiler.
    for r in reversed(rels):
        if r.kernel_min and k < kernel_key(r.kernel_min):
            continue
        if gcc_ok(r):
            return r.tag
    return rels[0].tag


# ---------------------------------------------------------------- distributions
@lru_cache(maxsize=None)
def _distros() -> dict:
    return _load("distros.toml")


def family_of(distro_id: str) -> str | None:
    for name, fam in _distros()["family"].items():
        if distro_id in fam["ids"]:
            return name
    return None


def release_facts(distro_id: str, version_id: str) -> dict:
    """Facts for one release ('ubuntu', '12.10'); falls back to the major version ('rhel', '6.10' -> '6')."""
    rel = _distros().get("release", {})
    for key in (f"{distro_id}:{version_id}", f"{distro_id}:{version_id.split('.')[0]}"):
        if key in rel:
            return dict(rel[key])
    return {}


def _fill(items, **kw) -> list[str]:
    return [s.format(**kw) for s in items]


def platform_packages(distro_id: str, version_id: str, kernel_release: str, *, arch: str = "amd64",
                      kernel_version: str | None = None) -> dict:
    """Package names, repositories and method for headers and debug symbols of one kernel.

    `kernel_version` is the distro's full package version (Ubuntu '3.5.0-17.28'), used for the
    Launchpad URL of EOL Ubuntu releases.
    """
    fam_name = family_of(distro_id)
    if fam_name is None:
        raise LookupError(f"unknown distribution {distro_id!r}")
    fam = _distros()["family"][fam_name]
    facts = release_facts(distro_id, version_id)
    codename = facts.get("codename", "")
    kw = dict(R=kernel_release, codename=codename, arch=arch, kernel_version=kernel_version or "")
    out = {
        "family": fam_name,
        "distro": distro_id,
        "version": version_id,
        "codename": codename,
        "eol": bool(facts.get("eol", False)),
        "gcc": facts.get("gcc"),
        "python": facts.get("python"),
        "headers": _fill(fam["headers"], **kw),
        "debuginfo": _fill(fam["debuginfo"], **kw),
        "debuginfo_method": facts.get("debuginfo_method", fam["debuginfo_method"]),
        "systemtap_package": fam["systemtap_package"],
        "build_deps": list(fam["build_deps"]),
        "source": fam.get("source", ""),
    }
    if fam_name == "ubuntu":
        if version_key(version_id) < (18, 4):
            out["debuginfo"] = _fill(fam["debuginfo_before_18_04"], **kw)
        out["ddebs_repo"] = {
            "url": fam["ddebs_url"], "suites": _fill(fam["ddebs_suites"], **kw),
            "components": list(fam["ddebs_components"]), "keyring_package": fam["ddebs_keyring_package"],
            "key_fingerprint": (fam["ddebs_key_fingerprint_old"] if version_key(version_id) < (16, 4)
                                else fam["ddebs_key_fingerprint"]),
        }
        if out["eol"]:
            out["old_releases_url"] = fam["old_releases_url"]
            if version_key(version_id) < (14, 4):
                # ddebs.ubuntu.com dropped these series: fetch the .ddeb from Launchpad on the controller.
                out["debuginfo_method"] = "launchpad"
                out["launchpad_url"] = fam["launchpad_ddeb_url"].format(**kw)
    if fam_name == "redhat":
        variant, base = split_variant(kernel_release)
        if variant:
            pkg = variant_package(variant)
            out["headers"] = [f"{pkg}-devel-{base}"]
            out["debuginfo"] = [f"{pkg}-debuginfo-{base}"]
        dnf = facts.get("dnf")
        if out["debuginfo_method"] == "yum-debuginfo":
            cmd = fam["debuginfo_command_yum"]
        elif dnf == 5:
            cmd = fam["debuginfo_command_dnf5"]
        else:
            cmd = fam["debuginfo_command"]
        if variant:  # debuginfo-install kernel-rt-5.14.0-... (the variant's package, without the +rt suffix)
            cmd = cmd.replace("kernel-core-{R}", "kernel-{R}").replace("kernel-{R}", f"{variant_package(variant)}-{{R}}")
            kw = dict(kw, R=base)
        out["debuginfo_command"] = cmd.format(**kw)
        out["kernel_variant"] = variant
    return out


# stap-prep's variants (debug, kdump, PAE, xen at the end after '.', '+' or nothing: el5debug), the PAEdebug
# and aarch64 64k/16k kernels ('+64k', '+16k-debug'), and realtime kernels ('.rt14.' or '+rt', '+rt-debug').
_VARIANT_TAIL = re.compile(r"(?:\+(?P<plus>(?:rt|64k|16k|PAE|PAEdebug|debug|kdump|xen)(?:-debug)?)"
                           r"|[.]?(?P<bare>PAEdebug|debug|kdump|PAE|xen))$")


def split_variant(kernel_release: str) -> tuple[str | None, str]:
    """(variant, release without the variant): '5.14.0-427.el9.x86_64+rt-debug' -> ('rt-debug', '5.14.0-427.el9.x86_64'),
    '2.6.18-194.3.1.el5debug' -> ('debug', '2.6.18-194.3.1.el5'), '5.14.0-200.rt14.201.el9' -> ('rt', same)."""
    m = _VARIANT_TAIL.search(kernel_release)
    base, variant = kernel_release, None
    if m:
        base, variant = kernel_release[:m.start()], m.group("plus") or m.group("bare")
    if re.search(r"\.rt\d", base) and not (variant or "").startswith("rt"):
        variant = "rt" + (f"-{variant}" if variant else "")
    return variant, base


def kernel_variant(kernel_release: str) -> str | None:
    """'debug', 'rt', 'rt-debug', 'PAE', '64k', ... for Fedora/RHEL variant kernels; None for the plain kernel."""
    return split_variant(kernel_release)[0]


def variant_package(variant: str) -> str:
    """The package name stem of a variant kernel ('rt-debug' -> 'kernel-rt-debug'), from the knowledge table."""
    table = _distros()["family"]["redhat"].get("variant_packages", {})
    return table.get(variant, f"kernel-{variant}")


def custom_kernel_remedy(what: str, kernel_release: str, why: str = "") -> str:
    """How to get 'headers' or 'debuginfo' for a kernel no package provides (from its own build tree)."""
    return _distros()["custom_kernel"][what].format(R=kernel_release, why=why or "no package owns its image")


def compiler_package(distro_id: str, major: str) -> str | None:
    """The package of gcc `major` on this distribution ('debian', '13' -> 'gcc-13'); None: unknown family."""
    fam = family_of(distro_id)
    tpl = _distros()["family"][fam].get("compiler_package") if fam else None
    return tpl.format(major=major) if tpl else None


# ---------------------------------------------------------------- profiler needs
# The checks `stapdoctor profile` needs to pass to load and run a module...
_GATE_LOAD = ("kernel.uprobes", "kernel.modules", "kernel.module_unload", "kernel.relay", "policy.lockdown",
              "policy.sig_enforce", "access.user", "access.staprun", "transport")
# ...and, when it compiles the module on the host itself, the ones compiling needs.
_GATE_COMPILE = ("devel.build", "devel.uts", "stap.installed", "stap.kernel_range")


def gate_checks(kernel_stacks: bool, compile: bool = True) -> set[str]:
    """Check ids the profiler needs. compile=False is a module compiled elsewhere (`profile --module`):
    no headers, stap or kernel debuginfo needed on the host, only what loading and running it takes."""
    need = set(_GATE_LOAD)
    if compile:
        need |= set(_GATE_COMPILE)
    if kernel_stacks:
        need.add("kernel.kprobes")
        if compile:  # kernel unwind data goes into the module at compile time
            need.add("debuginfo.vmlinux")
    return need


def headers_hint(kernel_release: str, distro_id: str = "", version_id: str = "") -> str:
    """What to install to compile for a kernel release: this distribution's package when it is known,
    else each family's (a build box compiling for another release may not be the target's distribution)."""
    try:
        pk = platform_packages(distro_id, version_id, kernel_release)
    except LookupError:
        pk = None
    if pk:
        tool = "apt-get install" if pk["family"] in ("debian", "ubuntu") else "dnf install"
        return f"install the kernel headers for {kernel_release}: {tool} {' '.join(pk['headers'])}"
    fams = _distros()["family"]
    deb = " ".join(_fill(fams["debian"]["headers"], R=kernel_release))
    rh = " ".join(_fill(fams["redhat"]["headers"], R=kernel_release))
    return f"install the kernel headers for {kernel_release} (Debian/Ubuntu: {deb}; Fedora/RHEL: {rh})"


# ---------------------------------------------------------------- stack frames (MAXSTRINGLEN)
@lru_cache(maxsize=None)
def frame_rule() -> dict:
    """The measured frame rule (knowledge/stap_frames.toml, from bench/measure_maxstringlen_frames.py)."""
    return dict(_load("stap_frames.toml")["maxstringlen"])


def frame_for(maxstringlen: int) -> int:
    """The largest stack frame pass 4 generates for a MAXSTRINGLEN (stap's runtime keeps one such buffer on
    the stack in its error handler since 5.6): what -Werror=frame-larger-than=CONFIG_FRAME_WARN judges."""
    r = frame_rule()
    return max(maxstringlen + int(r["frame_overhead"]), int(r["fixed_frame_max"]))


def safe_maxstringlen(frame_warn: int | None, wanted: int = 4096) -> int:
    """The largest power-of-two MAXSTRINGLEN ≤ wanted whose largest frame stays within CONFIG_FRAME_WARN
    (gcc rejects only frames *larger* than the limit): 1024 for 2048, 512 (stap's own 64-bit default) for 1024.

    An unknown limit (None: no config readable) is taken as the x86_64 default 2048, since guessing high breaks
    pass 4; 0 means the kernel has no limit.
    """
    r = frame_rule()
    if frame_warn is None:
        frame_warn = int(r["unknown_frame_warn"])
    if frame_warn <= 0:
        return wanted
    value = wanted
    while value > int(r["floor"]) and frame_for(value) > frame_warn:
        value //= 2
    return value
