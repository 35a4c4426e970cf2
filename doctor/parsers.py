"""Parsers for what hosts print: kernel configs, `stap -V`, /proc/version, os-release.

Each takes text (possibly garbage) and returns data or raises ParseError with a message a person can act
on; none of them touches the filesystem.
"""
from __future__ import annotations

import re
from dataclasses import dataclass


class ParseError(ValueError):
    """Input that is not what it claims to be."""


# ---------------------------------------------------------------- kernel config
_CFG = re.compile(r"^(CONFIG_[A-Za-z0-9_]+)=(.*)$")
_UNSET = re.compile(r"^# (CONFIG_[A-Za-z0-9_]+) is not set$")


def parse_kconfig(text: str) -> dict[str, str]:
    """CONFIG_X -> value ('y', 'm', '"str"', '2048'); options 'is not set' map to 'n'."""
    if "\0" in text or "\ufffd" in text[:4096]:
        raise ParseError("binary data, not a kernel config")
    opts: dict[str, str] = {}
    for line in text.splitlines():
        line = line.rstrip("\r")
        m = _CFG.match(line)
        if m:
            opts[m.group(1)] = m.group(2)
            continue
        m = _UNSET.match(line)
        if m:
            opts[m.group(1)] = "n"
    if not opts:
        raise ParseError("no CONFIG_ lines: not a kernel config")
    return opts


# ---------------------------------------------------------------- stap -V
@dataclass(frozen=True)
class StapVersion:
    version: str                 # "4.8"
    elfutils: str | None         # "0.188" (the version stap was built against)
    build: str | None            # "Debian version 4.8-2", "rpm 2.5-5.el6", "release-5.2", "non-git sources"
    tested_min: str | None
    tested_max: str | None
    features: tuple[str, ...]


# The first line of every release's version() (session.cxx):
#   1.x      "(version %s/%s %s)"   VERSION, dwfl_version(), GIT_MESSAGE      -- no comma
#   2.0-2.5  "(version %s/%s, %s)"  VERSION, dwfl_version(), STAP_EXTENDED_VERSION
#   2.6+     "(version %s)"         version_string(): VERSION "/" runtime-elfutils ["/" build-elfutils] ", " extended
# The build string runs to the line's last ')': it may hold commas and parentheses
# ("git branch master, url ..., commit ...", "Debian version 4.2-3ubuntu0.1 (focal)").
_VER = re.compile(r"Systemtap translator/driver \(version ([0-9][0-9A-Za-z.+~-]*)/([0-9][0-9.]*)(?:/[0-9.]*)?")
_TESTED = re.compile(r"tested kernel versions:[ \t]*(\S+)[ \t]*\.\.\.[ \t]*(\S+)")


def parse_stap_version(text: str) -> StapVersion:
    """Parse `stap -V` of any release, 1.x to now (stdout from 2.7 on, stderr before: pass both joined)."""
    text = text or ""
    head = None
    for m in _VER.finditer(text):
        end = text.find("\n", m.end())
        rest = text[m.end():end if end >= 0 else len(text)].rstrip()
        # The rest of the line: "[,] [build])". Plain string work: a regex here backtracks badly on junk.
        if rest.endswith(")") and rest[:1] in (",", " ", "\t", ")"):
            head, build = m, rest[:-1].removeprefix(",").strip() or None
            break
    if head is None:
        first = (text or "").strip().splitlines()[:1]
        raise ParseError(f"not stap -V output (first line: {first[0][:120]!r})" if first else "empty stap -V output")
    t = _TESTED.search(text)
    feats = re.search(r"enabled features:[ \t]*(.*)", text)
    return StapVersion(version=head.group(1), elfutils=head.group(2), build=build,
                       tested_min=t.group(1) if t else None, tested_max=t.group(2) if t else None,
                       features=tuple(feats.group(1).split()) if feats else ())


# ---------------------------------------------------------------- kernel version strings
def upstream_kernel_version(release: str, proc_version: str | None = None,
                            version_signature: str | None = None) -> tuple[str, str]:
    """The upstream kernel version and where it came from.

    uname -r hides it on Debian ('6.1.0-50-amd64' is 6.1.176) and Ubuntu ('3.5.0-17-generic' is 3.5.5);
    /proc/version_signature (Ubuntu) and the '#1 SMP ... Debian 6.1.176-1' tail of /proc/version carry it.
    """
    if version_signature:
        parts = version_signature.split()
        if len(parts) >= 3 and re.match(r"\d+\.\d+", parts[-1]):
            return parts[-1].rstrip("+"), "/proc/version_signature"
    if proc_version:
        # Only the UTS part after '#': the compiler's "(Debian 12.2.0-14)" comes earlier in the line.
        m = re.search(r"#\d+.*\bDebian (\d+\.\d+(?:\.\d+)?)(?:-\S+)?", proc_version)
        if m:
            return m.group(1), "/proc/version"
    m = re.match(r"(\d+\.\d+(?:\.\d+)?)", release or "")
    return (m.group(1) if m else release), "uname -r"


def kernel_compiler(proc_version: str | None) -> str | None:
    """gcc version the kernel was built with, from /proc/version ('gcc version 4.7.2 (...)', 'gcc-12 (...) 12.2.0')."""
    if not proc_version:
        return None
    m = re.search(r"gcc version (\d+\.\d+(?:\.\d+)?)", proc_version)
    if m:
        return m.group(1)
    m = re.search(r"\(\S*gcc[^()]*(?:\([^()]*\))?\s*(\d+\.\d+(?:\.\d+)?)", proc_version)
    return m.group(1) if m else None


def proc_version_uts(proc_version: str) -> str | None:
    """The UTS_VERSION part of /proc/version ('#1 SMP PREEMPT_DYNAMIC Debian 6.1.176-1 (2026-05-01)')."""
    m = re.search(r"(#\d+\S*\s.*)$", proc_version.strip())
    if not m:
        return None
    uts = m.group(1)
    # Ubuntu appends the signature in parentheses after the date: not part of UTS_VERSION.
    uts = re.sub(r"\s+\(Ubuntu [^)]*\)$", "", uts)
    return uts.strip()


def compile_h_uts(text: str) -> str | None:
    m = re.search(r'#define\s+UTS_VERSION\s+"([^"]*)"', text or "")
    return m.group(1) if m else None


# ---------------------------------------------------------------- distributions
def os_release(files: dict[str, str | None]) -> dict[str, str]:
    """id, version_id, name, codename from os-release / lsb-release / redhat-release texts via `distro`.

    `distro` reads files, so the texts are written to a private temporary root first: one parser for
    live hosts, sysroots and snapshots alike.
    """
    import tempfile
    from pathlib import Path

    import distro

    files = {path: _bounded_release_text(path, text) for path, text in files.items()}
    with tempfile.TemporaryDirectory(prefix="stapdoctor-os-") as tmp:
        etc = Path(tmp, "etc")
        etc.mkdir()
        for path, text in files.items():
            if text is None:
                continue
            dest = Path(tmp, path.lstrip("/"))
            dest.parent.mkdir(parents=True, exist_ok=True)
            dest.write_text(text, encoding="utf-8", errors="replace")
        try:
            d = distro.LinuxDistribution(include_lsb=False, include_uname=False, include_oslevel=False,
                                         root_dir=tmp)
            info = {"id": d.id(), "version_id": d.version(best=False), "name": d.name(pretty=True),
                    "codename": d.codename()}
        except (ValueError, OSError):
            # distro's shell-style lexer gives up on an unclosed quote (a truncated file): keep what
            # the plain KEY=VALUE lines say.
            vals = _plain_pairs(files.get("/etc/os-release") or "")
            info = {"id": vals.get("ID", "").lower(), "version_id": vals.get("VERSION_ID", ""),
                    "name": vals.get("PRETTY_NAME", vals.get("NAME", "")), "codename": vals.get("VERSION_CODENAME", "")}
        lsb = files.get("/etc/lsb-release")
        if lsb and not info["id"]:
            vals = _plain_pairs(lsb)
            info["id"] = vals.get("DISTRIB_ID", "").lower()
            info["version_id"] = vals.get("DISTRIB_RELEASE", "")
            info["codename"] = vals.get("DISTRIB_CODENAME", "")
    if info["id"] == "rhel" and not files.get("/etc/os-release"):
        # distro names every /etc/redhat-release 'rhel'; the text says which family member it is.
        first = (files.get("/etc/redhat-release") or "").lower()
        for word, ident in (("fedora", "fedora"), ("centos", "centos"), ("rocky", "rocky"), ("alma", "almalinux")):
            if first.startswith(word):
                info["id"] = ident
    return info


# What distro reads from os-release. Only these lines reach its shell-style lexer, which is slow per
# character and quadratic in the length of one token (1 MB of NULs took 33 s).
_OS_RELEASE_KEYS = frozenset({"ID", "ID_LIKE", "NAME", "PRETTY_NAME", "VERSION", "VERSION_ID", "VERSION_CODENAME",
                              "UBUNTU_CODENAME", "BUILD_ID", "VARIANT", "VARIANT_ID"})
_MAX_RELEASE_TEXT, _MAX_RELEASE_LINE = 64 * 1024, 512


def _bounded_release_text(path: str, text: str | None) -> str | None:
    """The part of a release file the parsers need, in linear time: at most 64 KiB; for os-release only
    the known KEY=VALUE lines of at most 512 characters (the last of each key, as a shell would)."""
    if text is None:
        return None
    text = text[:_MAX_RELEASE_TEXT]
    if not path.endswith("os-release"):
        return text
    lines: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, _ = line.partition("=")
        if sep and key.strip() in _OS_RELEASE_KEYS and len(line) <= _MAX_RELEASE_LINE:
            lines[key.strip()] = line.strip()
    return "".join(f"{line}\n" for line in lines.values())


def _plain_pairs(text: str) -> dict[str, str]:
    out = {}
    for line in text.splitlines():
        key, sep, val = line.partition("=")
        if sep and key.strip().isidentifier():
            out[key.strip()] = val.strip().strip("'\"")
    return out
