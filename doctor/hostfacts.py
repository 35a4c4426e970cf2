"""Facts that are not plain files: who packaged the kernel, the compiler and make, debuginfod, stap's rc.

Collected into the snapshot's `commands`/`tools`/`files` tables like every other fact, from the live host,
from a sysroot (`.stapdoctor/commands/<name>.*` and `.stapdoctor/stat/<name>` written by the POSIX-sh fleet
collector), never decided here: the checks do that.
"""
from __future__ import annotations

import os
import re
from typing import Any

URLS_DIR = "/etc/debuginfod"
RC_KEY = "~/.systemtap/rc"      # the checking user's stap defaults (stap-report records them)
MAX_URLS_FILES = 16
KERNEL_IMAGES = ("/boot/vmlinuz-{R}", "/lib/modules/{R}/vmlinuz")   # Debian/Ubuntu, then Fedora/RHEL 8+


BUILD_MAKEFILE = "/lib/modules/{R}/build/Makefile"
_CC = re.compile(r"^\s*(?:export\s+)?CC\s*:?=\s*([A-Za-z0-9_.+-]+)\s*$", re.M)


def kbuild_cc(r, makefile: str) -> str:
    """The compiler kbuild calls: a plain `CC = NAME` in the build tree's top Makefile (distributions may pin
    the kernel's own gcc-N there), else upstream's default, gcc."""
    try:
        head = r.read(makefile, 8192).decode("utf-8", "replace")
    except OSError:
        return "gcc"
    m = _CC.search(head)
    return m.group(1) if m else "gcc"


def kernel_image(snap) -> str | None:
    """The running kernel's image that a package would own, when the snapshot saw one."""
    for t in KERNEL_IMAGES:
        if snap.exists(t):
            return snap.path(t)
    return None


def _dpkg_kernel_lists(r, path: str) -> str | None:
    """The linux-image* package whose file list holds `path`, read directly (`dpkg -S` takes 0.1-0.5 s: too
    slow for every check); None sends the caller to `dpkg -S` for any other package name."""
    info = "/var/lib/dpkg/info"
    try:
        names = [n for n in r.listdir(info) if n.startswith("linux-image") and n.endswith(".list")]
    except OSError:
        return None
    for n in sorted(names)[:64]:
        try:
            text = r.read(f"{info}/{n}", 8 << 20).decode("utf-8", "replace")
        except (OSError, ValueError):
            continue
        if any(line == path for line in text.splitlines()):
            return n[:-len(".list")].split(":")[0]
    return None


def _package_query(r, path: str) -> dict[str, Any] | None:
    """`dpkg -S PATH` or `rpm -qf PATH` (in the sysroot's database for --root); None: no package manager."""
    from .snapshot import _run
    if not r.live and not getattr(r, "root", None):
        return None  # an in-memory tree (the fleet's): commands run on the host, by the collector
    root = None if r.live else r.root
    if r.exists("/var/lib/dpkg/status"):
        hit = _dpkg_kernel_lists(r, path)
        if hit:
            return {"argv": ["(dpkg info lists)", path], "rc": 0, "stdout": f"{hit}: {path}\n", "stderr": "",
                    "manager": "dpkg"}
        argv = ["dpkg"] + ([f"--admindir={root}/var/lib/dpkg"] if root else []) + ["-S", path]
    elif any(r.isdir(d) for d in ("/var/lib/rpm", "/usr/lib/sysimage/rpm")):
        argv = ["rpm"] + (["--root", root] if root else []) + ["-qf", "--qf", "%{NAME}\\n", path]
    else:
        return None
    res = _run(argv)
    res["manager"] = argv[0]
    return res


def kernel_owner(cmd: dict[str, Any] | None) -> tuple[bool | None, str]:
    """(packaged?, package or why) from the recorded `dpkg -S` / `rpm -qf` of the kernel image."""
    if not cmd:
        return None, "not collected"
    if cmd.get("error"):
        return None, f"{cmd['argv'][0]} {cmd['error']}"
    out = (cmd.get("stdout") or "").strip().splitlines()
    if cmd.get("rc") == 0 and out:
        first = out[0]
        pkg = first.split(":", 1)[0] if ": /" in first else first   # dpkg: "pkg: /path"; rpm: "pkg"
        return True, pkg.strip()[:120]
    return False, ((cmd.get("stderr") or "").strip().splitlines() or out or ["not owned by any package"])[0][:160]


def collect(r, snap, run_commands: bool, debuginfod: bool = False, debuginfod_timeout: float = 30.0) -> None:
    """Add these facts to `snap` (r: snapshot._Root)."""
    from .snapshot import _file_fact, _find_tool, _recorded_command, _run, _tool_fact

    # Which package provides the kernel: a distribution kernel has headers and debug packages, a custom one not.
    image = kernel_image(snap)
    rec = _recorded_command(r, "kernel-package")
    if rec:
        snap.commands["kernel-package"] = rec
    elif image:
        res = _package_query(r, image)
        if res is not None:
            snap.commands["kernel-package"] = res
    elif snap.source.get("kind") == "live":
        snap.commands["kernel-package"] = {"argv": ["(no image)"], "rc": 1, "stdout": "",
                                           "stderr": f"no {snap.path(KERNEL_IMAGES[0])} or {snap.path(KERNEL_IMAGES[1])}"}

    # The toolchain kbuild runs in pass 4: the compiler (the build tree's CC, else gcc; its version should be
    # the kernel's) and make.
    cc = kbuild_cc(r, snap.path(BUILD_MAKEFILE))
    for key, name in (("gcc", cc), ("make", "make")):
        try:
            snap.tools[key] = _tool_fact(r, _find_tool(r, name), key) | {"name": name}
        except OSError as e:
            snap.tools[key] = {"status": "error", "error": str(e), "name": name}
    gcc = snap.tools["gcc"].get("path")
    if run_commands and gcc and not snap.tools["gcc"].get("recorded"):
        snap.commands["gcc-version"] = _run([r.real(gcc), "-dumpfullversion", "-dumpversion"])
    else:
        rec = _recorded_command(r, "gcc-version")
        if rec:
            snap.commands["gcc-version"] = rec

    # debuginfod: the system's URL files (profile.d turns them into DEBUGINFOD_URLS for login shells).
    try:
        names = sorted(n for n in r.listdir(URLS_DIR) if n.endswith(".urls"))[:MAX_URLS_FILES]
        snap.files[URLS_DIR] = {"status": "ok", "entries": names}
        for n in names:
            snap.files[f"{URLS_DIR}/{n}"] = _file_fact(r, f"{URLS_DIR}/{n}", "text")
    except OSError:
        snap.files[URLS_DIR] = {"status": "missing"}
    if debuginfod and not any(e.get("has_dwarf") for e in snap.elf.values()):  # a local vmlinux needs no server
        snap.commands["debuginfod-find"] = query_debuginfod(snap, debuginfod_timeout)

    # stap-report's ~/.systemtap/rc (default options of every stap run by this user)
    if r.live:
        home = os.path.expanduser("~")
        fact = _file_fact(r, f"{home}/.systemtap/rc", "text")
    else:
        fact = _file_fact(r, "/.stapdoctor/systemtap-rc", "text")
    if fact.get("status") == "ok":
        fact["text"] = fact["text"][:4096]
    snap.files[RC_KEY] = fact


def urls(snap) -> tuple[str, str]:
    """(space-separated URLs, where from): DEBUGINFOD_URLS, else /etc/debuginfod/*.urls."""
    env = (snap.env.get("DEBUGINFOD_URLS") or "").strip()
    if env:
        return env, "DEBUGINFOD_URLS"
    found = []
    for n in snap.files.get(URLS_DIR, {}).get("entries", []):
        text = snap.text(f"{URLS_DIR}/{n}") or ""
        found += [w for w in text.split() if w.startswith(("http://", "https://", "file://"))]
    return " ".join(found), f"{URLS_DIR}/*.urls" if found else ""


def query_debuginfod(snap, timeout: float) -> dict[str, Any]:
    """`debuginfod-find debuginfo BUILD-ID` for the running kernel, as stap-prep asks it (bounded)."""
    from .checks.debuginfo import running_build_id
    from .snapshot import _run
    bid, _ = running_build_id(snap)
    found, _where = urls(snap)
    if not bid:
        return {"argv": ["debuginfod-find"], "rc": None, "error": "the running kernel's build-id is unknown"}
    if not found:
        return {"argv": ["debuginfod-find"], "rc": None, "error": "no debuginfod URLs configured"}
    env = dict(os.environ, DEBUGINFOD_URLS=found, DEBUGINFOD_TIMEOUT=str(int(timeout)))
    return _run(["debuginfod-find", "debuginfo", bid], timeout=timeout + 5, env=env) | {"urls": found}
