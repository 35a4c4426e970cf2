"""The one place for facts about systemtap releases and distributions.

The data lives in TOML files beside this module (each fact with its source); the doctor's remedies and
the playbooks' choices (through playbooks/filter_plugins) both read it, so they cannot disagree.
"""
from __future__ import annotations

import re
import shlex
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
    kernel_min: str | None       # exactly what `stap -V` prints ("tested kernel versions: MIN ... MAX")
    kernel_max: str | None
    gcc_min: str | None
    needs_cxx11: bool
    elfutils_min: str | None
    source: str
    notes: str = ""
    supported_min: str | None = None   # the real floor where the printed minimum is stale (5.0, 5.1: 3.10)
    version_stream: str | None = None  # "stderr" (clog, before 2.7) or "stdout" (cout, from 2.7)
    respin_of: str | None = None       # "4.9" for the upstream re-tag release-4.9a

    @property
    def floor(self) -> str | None:
        """The oldest kernel this release supports: NEWS 5.0's 3.10 beats the 2.6.32 that 5.0 and 5.1 print."""
        return higher_kernel(self.kernel_min, self.supported_min)


def _load(name: str) -> dict:
    with open(DATA / name, "rb") as f:
        return tomllib.load(f)


@lru_cache(maxsize=None)
def _release_rows() -> tuple[Release, ...]:
    rows = []
    for r in _load("systemtap_releases.toml").get("release", []):
        rows.append(Release(
            version=str(r["version"]), tag=r.get("tag", f"release-{r['version']}"), date=r.get("date"),
            kernel_min=r.get("kernel_min"), kernel_max=r.get("kernel_max"), gcc_min=r.get("gcc_min"),
            needs_cxx11=bool(r.get("needs_cxx11", False)), elfutils_min=r.get("elfutils_min"),
            source=r.get("source", ""), notes=r.get("notes", ""), supported_min=r.get("supported_min"),
            version_stream=r.get("version_stream"), respin_of=r.get("respin_of")))
    rows.sort(key=lambda r: version_key(r.version))  # stable: a re-tag stays after its base
    return tuple(rows)


def systemtap_releases(include_respins: bool = False) -> tuple[Release, ...]:
    """All known releases, oldest first.

    Upstream re-tags (release-4.9a, release-5.0a: same session.cxx, no NEWS entry) are left out unless asked
    for, so a choice among releases names the base release's tag.
    """
    rows = _release_rows()
    return rows if include_respins else tuple(r for r in rows if r.respin_of is None)


def release_for(stap_version: str) -> Release | None:
    """The table row for an installed stap version (an exact match, e.g. '4.9a', else major.minor)."""
    rows = systemtap_releases(include_respins=True)
    for r in rows:
        if r.version == stap_version:
            return r
    mm = ".".join(stap_version.split(".")[:2])
    for r in rows:
        if r.version == mm and r.respin_of is None:
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


def higher_kernel(a: str | None, b: str | None) -> str | None:
    """The later of two kernel versions (either may be None)."""
    if a is None or b is None:
        return a if b is None else b
    return b if kernel_key(b) > kernel_key(a) else a


_SERIES_MAX = re.compile(r"\s*(\d+)\.(\d+)\s*")              # "4.11", "7.0": the whole series
_ANY_RC_MAX = re.compile(r"\s*(\d+)\.(\d+)(?:\.0)?-rc\s*")    # "6.15-rc", "5.10.0-rc": some rc of it


def kernel_in_range(kernel: str, lo: str | None, hi: str | None) -> bool:
    """Is the kernel inside stap's tested range, as `stap -V` prints it?

    The maximum's forms (all printed by some release, see systemtap_releases.toml):
      X.Y            the whole X.Y.y series was tested ("4.11", 5.5's "7.0");
      X.Y.0          that release only: 4.3's "5.7.0" does not cover 5.7.1;
      X.Y-rcN, X.Y.0-rcN, X.Y-rc0
                     up to that pre-release: '6.1.0-rc3' covers neither 6.1.0 nor 6.1.176, as stap 4.8
                     proves on Debian 12 (pass 4 fails there); rc0 is the merge window before rc1;
      X.Y-rc, X.Y.0-rc
                     some release candidate of X.Y: every X.Y-rcN, not the X.Y release ("6.15-rc" leaves
                     6.15.y out).
    """
    k = kernel_key(kernel)
    if lo and k < kernel_key(lo):
        return False
    if hi is None:
        return True
    m = _SERIES_MAX.fullmatch(hi)
    if m:
        return k[0][:2] <= (int(m.group(1)), int(m.group(2)))
    m = _ANY_RC_MAX.fullmatch(hi)
    if m:
        return k < ((int(m.group(1)), int(m.group(2)), 0), 1, 0)
    return k <= kernel_key(hi)


def supported_floor(stap_version: str, printed_min: str | None) -> str | None:
    """The oldest kernel a stap version supports: what it prints, raised to the release's real floor
    (5.0 and 5.1 print 2.6.32, but NEWS 5.0 makes 3.10 the oldest supported)."""
    r = release_for(stap_version)
    return higher_kernel(printed_min, r.supported_min if r else None)


def stap_covers_kernel(stap_version: str, kernel_release: str,
                       tested_range: tuple[str, str] | None = None) -> bool | None:
    """True/False when known; None when neither stap -V nor the table give a range.

    tested_range is what this stap printed; the release's real floor (supported_min) still applies.
    """
    if tested_range is None:
        r = release_for(stap_version)
        if r is None or r.kernel_max is None:
            return None
        tested_range = (r.kernel_min, r.kernel_max)
    return kernel_in_range(kernel_release, supported_floor(stap_version, tested_range[0]), tested_range[1])


def _pick(rels: list[Release], kernel_version: str, gcc_version: str | None) -> Release | None:
    """The newest release covering the kernel that the compiler can build; for a kernel newer than every
    tested range, the newest release that still supports its era (the most likely to work); for one
    older than all, the oldest release."""
    if not rels:
        return None

    def gcc_ok(r: Release) -> bool:
        return not (gcc_version and r.gcc_min and version_key(gcc_version) < version_key(r.gcc_min))

    covering = [r for r in rels if r.kernel_max and kernel_in_range(kernel_version, r.floor, r.kernel_max)
                and gcc_ok(r)]
    if covering:
        return covering[-1]
    k = kernel_key(kernel_version)
    for r in reversed(rels):
        if r.floor and k < kernel_key(r.floor):
            continue
        if gcc_ok(r):
            return r
    return rels[0]


def choose_systemtap_ref(kernel_version: str, gcc_version: str | None = None) -> str:
    """The release tag to build for a kernel (upstream version) and compiler, from the table alone."""
    r = _pick(list(systemtap_releases()), kernel_version, gcc_version)
    if r is None:
        raise LookupError("no systemtap releases in the knowledge table")
    return r.tag


def _range(r: Release) -> str:
    return f"{r.kernel_min or '?'} ... {r.kernel_max}" if r.kernel_max else "no known tested range"


def choose_systemtap_build(kernel_version: str, gcc_version: str | None = None,
                           available_tags=None) -> tuple[str, str]:
    """(tag, why): the release to build, limited to the tags the configured repository really has.

    Why: the table knows releases the user's mirror may lack (a release newer than the mirror, a
    mirror that carries only some tags); cloning a missing tag fails after minutes of setup. With
    ``available_tags`` None (the repository was not asked) the table's pick is returned as it is.
    """
    rels = list(systemtap_releases())
    best = _pick(rels, kernel_version, gcc_version)
    if best is None:
        raise LookupError("no systemtap releases in the knowledge table")
    gcc = f" and gcc {gcc_version} meets its floor" if gcc_version else ""

    def why(r: Release) -> str:
        if r.kernel_max and kernel_in_range(kernel_version, r.floor, r.kernel_max):
            return f"{r.tag}: the newest release whose tested kernels ({_range(r)}) include {kernel_version}{gcc}"
        return f"{r.tag}: no release's tested range includes {kernel_version}; the newest one for its era{gcc} ({_range(r)})"

    if available_tags is None:
        return best.tag, why(best) + " (the repository's tags were not asked)"
    have = {str(t) for t in available_tags}
    if best.tag in have:
        return best.tag, why(best)
    alt = _pick([r for r in rels if r.tag in have], kernel_version, gcc_version)
    if alt is None:
        raise LookupError(f"the repository has none of the known release tags (wanted {best.tag}); "
                          f"set systemtap_ref to one of its tags")
    return alt.tag, (f"{best.tag} would be the pick ({_range(best)}) but the repository has no such tag; "
                     f"among the tags it has, {why(alt)}")


def parse_ls_remote_tags(text: str) -> dict[str, str]:
    """`git ls-remote --tags URL` output -> {tag: commit}; an annotated tag's peeled line (^{}) wins,
    so the value is the commit the tag names, which is what a clone at that tag checks out."""
    tags: dict[str, str] = {}
    peeled: dict[str, str] = {}
    for line in (text or "").splitlines():
        m = re.fullmatch(r"([0-9a-f]{40,64})\trefs/tags/([A-Za-z0-9._/+-]+?)(\^\{\})?", line.strip())
        if m:
            (peeled if m.group(3) else tags)[m.group(2)] = m.group(1)
    tags.update(peeled)
    return tags


# ---------------------------------------------------------------- distributions
@lru_cache(maxsize=None)
def _distros() -> dict:
    return _load("distros.toml")


@lru_cache(maxsize=None)
def debug_symbols() -> dict:
    """debug_symbols.toml: the package that carries a program's debug symbols, per family."""
    return _load("debug_symbols.toml")


def debug_symbols_remedy(distro_id: str, codename: str = "") -> str:
    """How to install a program's debug symbols (package PKG) on a host of this os-release ID: its
    family's command, or every family's when the family is not known."""
    fams = debug_symbols()["family"]
    known = family_of(distro_id)
    ways = []
    for fam in [fams[known]] if known in fams else fams.values():
        first = fam["debug_packages"][0].format(pkg="PKG")
        ways.append(f"{fam['label']}: {fam['install'].format(debug_package=first, pkg='PKG')} "
                    f"({fam['where'].format(pkg='PKG', codename=codename or 'CODENAME')})")
    return "; ".join(ways)


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
        "debuginfo_method": facts.get("debuginfo_method", fam.get("debuginfo_method", "")),
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
            "keyring_path": fam["ddebs_keyring_path"],
            # the keyring package exists from 18.04 on; older releases import the key with apt-key
            "keyring_from_package": version_key(version_id) >= (18, 4),
            "key_fingerprint": (fam["ddebs_key_fingerprint_old"] if version_key(version_id) < (16, 4)
                                else fam["ddebs_key_fingerprint"]),
        }
        if out["eol"]:
            out["old_releases_url"] = fam["old_releases_url"]
            if version_key(version_id) < (14, 4):
                # ddebs.ubuntu.com dropped these series: fetch the .ddeb from Launchpad on the controller.
                out["debuginfo_method"] = "launchpad"
                out["launchpad_url"] = fam["launchpad_ddeb_url"].format(**kw)
    if fam_name == "ubuntu" and version_key(version_id) < (20, 4):
        out["build_deps"] = list(fam["build_deps_before_20_04"])
    pm = package_manager(distro_id, version_id)
    out["package_manager"] = pm["name"]
    out["install_command"] = pm["install"]
    if fam_name == "redhat":
        variant, base = split_variant(kernel_release)
        pkg = pm["debuginfo_kernel_package"]
        if variant:
            vpkg = variant_package(variant)
            out["headers"] = [f"{vpkg}-devel-{base}"]
            out["debuginfo"] = [f"{vpkg}-debuginfo-{base}"]
            # debuginfo-install kernel-rt-5.14.0-... (the variant's package, without the +rt suffix)
            pkg, kw = vpkg, dict(kw, R=base)
        out["debuginfo_method"] = pm["debuginfo_method"]
        out["debuginfo_tool"] = pm["debuginfo_tool"]
        out["debuginfo_command"] = pm["debuginfo_command"].format(pkg=pkg, **kw)
        out["kernel_variant"] = variant
        if distro_id == "fedora":
            out["eol"] = fedora_eol(version_id, facts)
            if out["eol"]:
                out["archive_repos"] = dict(_distros()["repos"]["fedora_archive"])
    return out


def package_manager(distro_id: str, version_id: str) -> dict:
    """The release's package manager from the one table: name (apt/yum/dnf/dnf5), install command,
    debuginfo method, the package holding debuginfo-install ('' when built in) and its command."""
    v = version_key(version_id)
    for row in _distros().get("package_manager", []):
        if distro_id not in row["ids"]:
            continue
        if "from" in row and v < version_key(row["from"]):
            continue
        if "until" in row and v[:len(version_key(row["until"]))] > version_key(row["until"]):
            continue
        name = row["manager"]
        m = _distros()["manager"][name]
        return {"name": name, "install": m["install"], "debuginfo_method": m.get("debuginfo_method", ""),
                "debuginfo_tool": m.get("debuginfo_tool", ""), "debuginfo_command": m.get("debuginfo_command", ""),
                "debuginfo_kernel_package": m.get("debuginfo_kernel_package", "kernel")}
    raise LookupError(f"no package manager known for {distro_id} {version_id}")


def fedora_eol(version_id: str, facts: dict | None = None) -> bool:
    """Is this Fedora release's repository in the archive (its release row, else the table's eol_through)?"""
    facts = release_facts("fedora", version_id) if facts is None else facts
    if "eol" in facts:
        return bool(facts["eol"])
    return version_key(version_id) <= version_key(_distros()["repos"]["fedora_archive"]["eol_through"])


def debuginfo_commands(pk: dict) -> list[str]:
    """The shell commands that install a host's kernel debug symbols on the host itself, in order
    (what the debuginfo role does): the ddebs source and its keyring before the -dbgsym package on
    Ubuntu, the archive for an end-of-life Fedora, the debuginfo-install tool before its command."""
    q = shlex.quote
    if pk["family"] == "redhat":
        cmds = []
        if pk.get("archive_repos"):
            a = pk["archive_repos"]
            cmds.append(" ".join(["sed", "-i", "-E", "-e", q(f"s,{a['metalink_regex']},#\\1=,"), "-e",
                                  q(f"s,{a['mirror_prefix_regex']},baseurl={a['url']},")]
                                 + [f"/etc/yum.repos.d/{f}" for f in a["repo_files"]]))
        if pk.get("debuginfo_tool"):
            cmds.append(f"{pk['install_command']} {q(pk['debuginfo_tool'])}")
        return cmds + [" ".join(q(w) for w in pk["debuginfo_command"].split())]
    pkgs = " ".join(q(p) for p in pk["debuginfo"])
    if pk.get("debuginfo_method") == "apt-ddebs":
        repo = pk["ddebs_repo"]
        if repo["keyring_from_package"]:
            cmds = [f"apt-get install -y {q(repo['keyring_package'])}"]
            opts = f"[signed-by={repo['keyring_path']}] "
        else:
            cmds = [f"apt-key adv --keyserver keyserver.ubuntu.com --recv-keys {q(repo['key_fingerprint'])}"]
            opts = ""
        lines = "\\n".join(f"deb {opts}{repo['url']} {s} {' '.join(repo['components'])}" for s in repo["suites"])
        cmds += [f"printf {q(lines + chr(92) + 'n')} > /etc/apt/sources.list.d/ddebs.list", "apt-get update"]
        return cmds + [f"apt-get install -y {pkgs}"]
    return [f"apt-get install -y {pkgs}"]


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
        tool = pk["install_command"].replace(" -y", "")
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
