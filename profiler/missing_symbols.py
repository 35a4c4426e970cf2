"""Frames without a symbol, named: which file lacks symbols, and how to get them.

A frame the symboliser could not name shows as ``[libfoo.so.1+0x24d5e]`` (the file is known) or as a
bare ``0x7f…`` address (no mapped file). The flame graph's tooltip says so (:func:`frame_note`), and
the summary says once per file which package carries its debug symbols, found from the package that
owns the file, or the debuginfod command for its build-id (:func:`how_to_get`). The package names
live in doctor/knowledge/debug_symbols.toml.
"""

from __future__ import annotations

import os
import re
import subprocess
from dataclasses import dataclass

_MODULE_FRAME = re.compile(r"\[(?P<module>[^\[\]]+)\+0x[0-9a-fA-F]+\]")
_BARE_ADDRESS = re.compile(r"0x[0-9a-fA-F]+")


def frame_note(name: str) -> str | None:
    """The tooltip's word on a frame without a symbol (None for a named frame). No " (" in it: the
    SVG's script takes the name as the text before the last " (" of the tooltip."""
    m = _MODULE_FRAME.fullmatch(name)
    if m:
        mod = m.group("module")
        if mod == "kernel":
            return " — no symbol: the kernel address is not in /proc/kallsyms; kptr_restrict hides it"
        return f" — no symbol: {mod} has no symbol table here; summary.txt says how to get its debug symbols"
    if _BARE_ADDRESS.fullmatch(name):
        return " — no symbol: the address is in no mapped file: JIT code, or a stack the unwinder lost"
    return None


@dataclass(frozen=True)
class Distro:
    id: str
    like: tuple[str, ...]
    codename: str


def _knowledge() -> dict:
    from stapdoctor.doctor import knowledge

    return knowledge.debug_symbols()


def this_distro() -> Distro:
    import distro

    return Distro(distro.id(), tuple(distro.like().split()), distro.codename() or "")


def family(d: Distro) -> str | None:
    from stapdoctor.doctor import knowledge

    for did in (d.id, *d.like):
        fam = knowledge.family_of(did)
        if fam is not None:
            return fam
    return None


def _path_variants(path: str) -> list[str]:
    """The file as the package database may list it: with a merged /usr, /lib/x and /usr/lib/x are one."""
    out = [path]
    if path.startswith("/usr/"):
        out.append(path[4:])
    elif path.startswith(("/lib", "/bin", "/sbin")):
        out.append("/usr" + path)
    real = os.path.realpath(path)
    if real not in out:
        out.append(real)
    return out


def owning_package(path: str, fam: str | None, timeout: float = 10.0) -> str | None:
    """The binary package that installed ``path``, asked of the family's package database."""
    return owning_packages([path], fam, timeout).get(path)


def owning_packages(paths: list[str], fam: str | None, timeout: float = 10.0) -> dict[str, str]:
    """{path: binary package} for the files a package installed, asked of the family's package
    database: dpkg once for all of them (each dpkg-query costs a read of its whole database), rpm per file."""
    fams = _knowledge()["family"]
    if fam not in fams or not paths:
        return {}
    query = fams[fam]["owner_query"]
    # a glob character would make dpkg-query -S match other files: such a path is not asked about
    variants = {p: [v for v in _path_variants(p) if not any(c in v for c in "*?[]\\")] for p in paths}
    owner: dict[str, str] = {}
    if query[0] == "dpkg-query":
        asked = list(dict.fromkeys(v for vs in variants.values() for v in vs))
        for line in _run([*query, *asked], timeout).splitlines():
            # "libc6:amd64: /lib/x86_64-linux-gnu/libc.so.6" or "pkg1, pkg2: FILE"; "diversion by ..." lines
            head, sep, file = line.rpartition(": ")
            if sep and not line.startswith("diversion "):
                owner.setdefault(file, head.split(",")[0].strip().split(":")[0])
    else:
        for vs in variants.values():
            for v in vs:
                out = _run([*query, v], timeout).strip()
                if out and "not owned" not in out:
                    owner.setdefault(v, out.splitlines()[0].strip())
                    break
    found = {}
    for p, vs in variants.items():
        pkg = next((owner[v] for v in vs if v in owner), None)
        if pkg and re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9+._-]*", pkg):
            found[p] = pkg
    return found


def _run(argv: list[str], timeout: float) -> str:
    """A package database's answer (stdout; "" when the tool is missing or hangs)."""
    try:
        return subprocess.run(argv, capture_output=True, text=True, timeout=timeout).stdout
    except (OSError, subprocess.TimeoutExpired):
        return ""


def how_to_get(path: str, build_id: str | None, *, distro: Distro | None = None, pkg: str | None = None,
               ask: bool = True, env: dict | None = None) -> str:
    """One sentence: how to get the debug symbols of ``path`` on this distribution (the package that
    carries them, or debuginfod by build-id, or a rebuild when no package installed the file).
    ``pkg``: its package when known; ``ask=False``: already asked (owning_packages), None is no package."""
    d = distro or this_distro()
    fam = family(d)
    k = _knowledge()
    known = fam in k["family"]  # a package database we know how to ask
    if pkg is None and known and ask:
        pkg = owning_package(path, fam)
    own_urls = (env if env is not None else os.environ).get("DEBUGINFOD_URLS")
    distro_url = k["debuginfod"].get(d.id) or next((k["debuginfod"][x] for x in d.like if x in k["debuginfod"]), None)
    debuginfod = None
    if build_id and (own_urls or (distro_url and (pkg or not known))):
        # the distribution's server has only what the distribution built: not for a file of no package
        prefix = "" if own_urls else f"DEBUGINFOD_URLS={distro_url} "
        debuginfod = f"by its build-id from debuginfod: `{prefix}debuginfod-find debuginfo {build_id}`"
    keep = (f", or put its debug file at /usr/lib/debug/.build-id/{build_id[:2]}/{build_id[2:]}.debug"
            if build_id and len(build_id) > 2 else "")
    ways = []
    if pkg and known:
        f = k["family"][fam]
        names = [n.format(pkg=pkg) for n in f["debug_packages"]]
        cmd = f["install"].format(pkg=pkg, debug_package=names[0])
        where = f["where"].format(pkg=pkg, codename=d.codename or "CODENAME")
        ways.append(f"it is from package {pkg}: `{cmd}` ({where})")
    elif pkg:
        ways.append(f"it is from package {pkg}: install that package's -dbgsym, -dbg or -debuginfo package")
    elif known:
        ways.append(f"it is not from a package: rebuild it with -g and without stripping{keep}")
    else:  # a distribution debug_symbols.toml does not describe: say what to look for, not that there is none
        ways.append("install the debug symbols of the package that installed it (its -dbgsym, -dbg or -debuginfo "
                    f"package), or rebuild it with -g and without stripping{keep}")
    if debuginfod:
        ways.append(debuginfod)
    return "; or ".join(ways) + "; then profile again"
