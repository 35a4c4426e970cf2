"""HostSnapshot: the files and command outputs the checks need, as plain JSON-able data.

Checks never touch the filesystem: they read a snapshot. A snapshot comes from the live host, from a
sysroot (`--root DIR`: an image, a chroot, a fixture tree, or what the fleet collector fetched), or from
a saved JSON file. Every fact is keyed by the path or command it came from, which is its source.

A sysroot may carry command outputs that cannot be re-run offline in `.stapdoctor/`:
  commands/<name>.out, <name>.err, <name>.rc   (names: stap-V, id, uname-r, gcc-version, kernel-package)
  env                                            (KEY=VALUE lines: DEBUGINFOD_URLS)
  stat/<name>                                    ("MODE_OCTAL UID GID PATH", names: staprun, gcc, make)
  systemtap-rc                                   (the collecting user's ~/.systemtap/rc)
  elf/<name>                                     ("PATH BUILD_ID HAS_DWARF" lines for debug vmlinux candidates)
The POSIX-sh fleet collector (playbooks/roles/doctor_collect/files/collect.sh) writes these, plus the links and
sizes records that doctor/collected.py reads (it holds the tree in memory: a root object, not a directory).
"""
from __future__ import annotations

import datetime as _dt
import json
import os
import stat as _stat
import subprocess
from dataclasses import asdict, dataclass, field
from typing import Any

from . import safeio

SCHEMA = "stapdoctor.snapshot/1"
MAX_TEXT = 4 * 1024 * 1024  # a kernel .config is ~300 KB; anything much larger is not what we want
MAX_SNAPSHOT = 64 * 1024 * 1024  # a saved snapshot is ~1 MB

# Text files the checks read; {R} is the kernel release.
TEXT_FILES = (
    "/proc/version", "/proc/version_signature", "/proc/sys/kernel/osrelease",
    "/proc/sys/kernel/modules_disabled",
    "/etc/os-release", "/usr/lib/os-release", "/etc/lsb-release", "/etc/redhat-release",
    "/boot/config-{R}", "/lib/modules/{R}/build/.config", "/lib/modules/{R}/build/include/generated/compile.h",
    "/lib/modules/{R}/build/include/generated/utsrelease.h",
    "/lib/modules/{R}/build/include/generated/utsversion.h",
    "/sys/kernel/security/lockdown", "/sys/module/module/parameters/sig_enforce",
    "/sys/kernel/security/securelevel", "/proc/filesystems", "/proc/mounts",
    # lockdown/sig_enforce predicted from boot parameters when /sys says nothing; what stap-report records
    "/proc/cmdline", "/sys/kernel/security/lsm", "/sys/fs/selinux/enforce", "/sys/module/apparmor/parameters/enabled",
)
# Files whose existence and size matter, not their content.
PRESENCE_FILES = (
    "/lib/modules/{R}/build/Makefile", "/lib/modules/{R}/build/Module.symvers", "/proc/modules",
    "/boot/System.map-{R}", "/proc/kallsyms", "/sys/firmware/efi", "/boot/vmlinuz-{R}", "/lib/modules/{R}/vmlinuz",
)
SECURE_BOOT_VAR = "/sys/firmware/efi/efivars/SecureBoot-8be4df61-93ca-11d2-aa0d-00e098032b8c"
# (vmlinux.id is raw ELF notes, like /sys/kernel/notes: as text its build-id bytes would be garbled)
BINARY_FILES = ("/sys/kernel/notes", "/proc/config.gz", "/lib/modules/{R}/build/vmlinux.id", SECURE_BOOT_VAR)
LINKS = ("/lib/modules/{R}/build",)
# Where stap and elfutils look for the kernel's DWARF (plus the build-id path, added once known).
VMLINUX_CANDIDATES = (
    "/usr/lib/debug/boot/vmlinux-{R}", "/usr/lib/debug/lib/modules/{R}/vmlinux", "/boot/vmlinux-{R}",
    "/lib/modules/{R}/vmlinux", "/lib/modules/{R}/build/vmlinux", "/usr/lib/debug/vmlinux-{R}",
)
STAP_DIRS = ("/usr/local/bin", "/usr/bin", "/bin", "/opt/systemtap/current/bin", "/usr/local/sbin", "/usr/sbin")
ENV_KEYS = ("DEBUGINFOD_URLS", "SYSTEMTAP_DIR", "STAPDOCTOR_SYSTEMTAP_REPO")


@dataclass
class HostSnapshot:
    """Plain data; `files[path]` = {status, text|size|link...}; `commands[name]` = {argv, rc, stdout, stderr}."""
    kernel_release: str
    source: dict[str, Any]
    files: dict[str, dict[str, Any]] = field(default_factory=dict)
    commands: dict[str, dict[str, Any]] = field(default_factory=dict)
    elf: dict[str, dict[str, Any]] = field(default_factory=dict)
    env: dict[str, str] = field(default_factory=dict)
    user: dict[str, Any] = field(default_factory=dict)
    tools: dict[str, dict[str, Any]] = field(default_factory=dict)
    target: dict[str, Any] | None = None
    schema: str = SCHEMA

    # -- convenience for checks (pure: no I/O) --
    def path(self, template: str) -> str:
        return template.replace("{R}", self.kernel_release)

    def fact(self, template: str) -> dict[str, Any]:
        return self.files.get(self.path(template), {"status": "not-collected"})

    def text(self, template: str) -> str | None:
        f = self.fact(template)
        return f.get("text") if f.get("status") == "ok" else None

    def exists(self, template: str) -> bool:
        return self.fact(template).get("status") == "ok"

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(asdict(self), indent=indent, sort_keys=True)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "HostSnapshot":
        if not isinstance(d, dict) or not str(d.get("schema", "")).startswith("stapdoctor.snapshot/"):
            raise SnapshotError("not a stapdoctor snapshot (no 'schema': 'stapdoctor.snapshot/N' field)")
        if d["schema"] != SCHEMA:
            raise SnapshotError(f"snapshot schema {d['schema']!r} is not supported (this stapdoctor reads {SCHEMA})")
        if not isinstance(d.get("kernel_release"), str) or not isinstance(d.get("files", {}), dict):
            raise SnapshotError("snapshot is missing 'kernel_release' or has a malformed 'files' table")
        from .validate import Malformed, snapshot as shape
        try:
            shape(d)
        except Malformed as e:
            raise SnapshotError(f"malformed snapshot: {e}") from None
        known = {k: d[k] for k in cls.__dataclass_fields__ if k in d}
        known.setdefault("source", {})
        return cls(**known)


class SnapshotError(Exception):
    """A snapshot or sysroot that cannot be used; the message says why and what to do."""


def load(path: str | os.PathLike) -> HostSnapshot:
    try:
        data = json.loads(safeio.read_regular(path, MAX_SNAPSHOT).decode("utf-8"))
    except RecursionError:
        raise SnapshotError(f"malformed snapshot {path}: nested too deeply") from None
    except FileNotFoundError:
        raise SnapshotError(f"snapshot file {path} does not exist") from None
    except IsADirectoryError:
        raise SnapshotError(f"{path} is a directory; to check a sysroot use --root {path}") from None
    except PermissionError:
        raise SnapshotError(f"cannot read snapshot file {path}: permission denied") from None
    except safeio.UnsafeFile as e:
        raise SnapshotError(f"cannot read snapshot file {path}: {e.strerror}") from None
    except OSError as e:
        raise SnapshotError(f"cannot read snapshot file {path}: {e.strerror or e}") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise SnapshotError(f"{path} is not a JSON snapshot ({e}); create one with 'stapdoctor snapshot -o FILE'") from None
    snap = HostSnapshot.from_dict(data)
    snap.source = dict(snap.source, loaded_from=str(path))
    return snap


# ---------------------------------------------------------------- collection
class _Root:
    """Reads paths inside a root directory, following symlinks within that root."""

    def __init__(self, root: str):
        self.root = os.path.abspath(root)
        self.live = self.root == "/"

    def real(self, path: str) -> str:
        """Resolve `path` as the host under root sees it (absolute links stay inside root)."""
        if self.live:
            return path
        parts = [p for p in path.split("/") if p]
        cur = ""
        hops = 0
        while parts:
            part = parts.pop(0)
            if part == "..":
                cur = cur.rsplit("/", 1)[0]
                continue
            if part == ".":
                continue
            cand = f"{cur}/{part}"
            host = self.root + cand
            if os.path.islink(host):
                hops += 1
                if hops > 40:
                    raise OSError(f"too many levels of symbolic links at {cand}")
                target = os.readlink(host)
                if target.startswith("/"):
                    cur = ""
                parts = [p for p in target.split("/") if p] + parts
                continue
            cur = cand
        return self.root + (cur or "/")

    def read(self, path: str, limit: int = MAX_TEXT) -> bytes:
        """Regular files only, at most `limit` bytes (a FIFO or /dev/zero would hang or never end)."""
        return safeio.read_regular(self.real(path), limit)

    def stat(self, path: str) -> os.stat_result:
        return os.stat(self.real(path))

    # The few questions collect() asks of a root, so an in-memory root (doctor/collected.py) fits too.
    def host(self, path: str) -> str:
        return path if self.live else self.root.rstrip("/") + path

    def exists(self, path: str) -> bool:
        return os.path.exists(self.real(path))

    def lexists(self, path: str) -> bool:
        return os.path.lexists(self.host(path))

    def readlink(self, path: str) -> str | None:
        return os.readlink(self.host(path)) if os.path.islink(self.host(path)) else None

    def isdir(self, path: str) -> bool:
        return os.path.isdir(self.real(path))

    def listdir(self, path: str) -> list[str]:
        return os.listdir(self.real(path))

    def is_executable(self, path: str) -> bool:
        host = self.real(path)
        return os.path.isfile(host) and os.access(host, os.X_OK)

    def inspect_elf(self, path: str) -> dict[str, Any]:
        from . import elfinfo
        return elfinfo.inspect_elf(self.real(path))


def _decode(raw: bytes) -> tuple[str, bool]:
    """Text for JSON; True when the bytes were not clean UTF-8 (a garbled or binary file)."""
    try:
        return raw.decode("utf-8"), False
    except UnicodeDecodeError:
        return raw.decode("utf-8", "replace"), True


def _file_fact(r: _Root, path: str, kind: str) -> dict[str, Any]:
    try:
        if kind == "presence":
            st = r.stat(path)
            return {"status": "ok", "size": st.st_size}
        raw = r.read(path)
        if kind == "binary":
            if path.endswith(".gz"):
                try:
                    raw = safeio.gunzip(raw, MAX_TEXT)
                except ValueError as e:
                    return {"status": "error", "error": str(e)}
                text, garbled = _decode(raw)
                return {"status": "ok", "text": text, "binary": garbled, "gunzipped": True}
            return {"status": "ok", "hex": raw.hex(), "size": len(raw)}
        text, garbled = _decode(raw)
        fact: dict[str, Any] = {"status": "ok", "text": text}
        if garbled or "\0" in text:
            fact["binary"] = True
        return fact
    except FileNotFoundError:
        return {"status": "missing"}
    except NotADirectoryError:
        return {"status": "missing"}
    except PermissionError as e:
        return {"status": "unreadable", "error": f"permission denied ({e.strerror})"}
    except IsADirectoryError:
        return {"status": "error", "error": "is a directory"}
    except OSError as e:
        return {"status": "error", "error": e.strerror or str(e)}


def _link_fact(r: _Root, path: str) -> dict[str, Any]:
    if not r.lexists(path):
        return {"status": "missing"}
    fact: dict[str, Any] = {"status": "ok", "link": r.readlink(path)}
    try:
        fact["resolves"] = r.isdir(path)
    except OSError as e:
        fact["resolves"] = False
        fact["error"] = str(e)
    return fact


def _kernel_release(r: _Root) -> tuple[str, str]:
    """The kernel whose facts we collect, and where that came from."""
    if r.live:
        return os.uname().release, "uname -r"
    for p in ("/proc/sys/kernel/osrelease", "/.stapdoctor/commands/uname-r.out"):
        try:
            rel = r.read(p, 4096).decode("utf-8", "replace").strip()
            if rel:
                return rel, p
        except OSError:
            pass
    try:
        mods = sorted(r.listdir("/lib/modules"))
    except OSError:
        mods = []
    if len(mods) == 1:
        return mods[0], "the only directory in /lib/modules"
    try:
        cfgs = sorted(n[len("config-"):] for n in r.listdir("/boot") if n.startswith("config-"))
    except OSError:
        cfgs = []
    if len(cfgs) == 1:
        return cfgs[0], "the only /boot/config-*"
    raise SnapshotError(
        f"cannot tell which kernel {r.root} runs: no proc/sys/kernel/osrelease, and "
        f"{len(mods)} kernels in lib/modules, {len(cfgs)} configs in boot; "
        "write the release into DIR/proc/sys/kernel/osrelease")


def _run(argv: list[str], timeout: float = 15, env: dict[str, str] | None = None) -> dict[str, Any]:
    try:
        p = subprocess.run(argv, capture_output=True, timeout=timeout, stdin=subprocess.DEVNULL, env=env)
    except FileNotFoundError:
        return {"argv": argv, "rc": None, "error": "not found"}
    except PermissionError:
        return {"argv": argv, "rc": None, "error": "permission denied"}
    except subprocess.TimeoutExpired:
        return {"argv": argv, "rc": None, "error": f"timed out after {timeout:g} s"}
    except OSError as e:
        return {"argv": argv, "rc": None, "error": str(e)}
    return {"argv": argv, "rc": p.returncode, "stdout": _decode(p.stdout)[0], "stderr": _decode(p.stderr)[0]}


def _recorded_command(r: _Root, name: str) -> dict[str, Any] | None:
    base = f"/.stapdoctor/commands/{name}"
    out = {}
    for key, suffix in (("stdout", ".out"), ("stderr", ".err"), ("rc", ".rc")):
        try:
            raw = r.read(base + suffix)
        except OSError:
            continue
        text = _decode(raw)[0]
        if key == "rc":
            try:
                out[key] = int(text.strip())
            except ValueError:
                out[key] = None
        else:
            out[key] = text
    if not out:
        return None
    out.setdefault("rc", 0)
    out["argv"] = ["(recorded)", name]
    return out


def _find_tool(r: _Root, name: str, extra_dirs: tuple[str, ...] = ()) -> str | None:
    dirs: list[str] = list(extra_dirs)
    if r.live:
        dirs += os.environ.get("PATH", "").split(os.pathsep)
    dirs += list(STAP_DIRS)
    seen = set()
    for d in dirs:
        if not d or d in seen:
            continue
        seen.add(d)
        p = f"{d.rstrip('/')}/{name}"
        try:
            if r.is_executable(p):
                return p
        except OSError:
            continue
    return None


def _tool_fact(r: _Root, path: str | None, name: str) -> dict[str, Any]:
    if path is None:
        rec = _read_stat_record(r, name)
        return rec or {"status": "missing"}
    st = r.stat(path)
    return {"status": "ok", "path": path, "mode": _stat.S_IMODE(st.st_mode), "uid": st.st_uid, "gid": st.st_gid,
            "group": _group_name(r, st.st_gid)}


def _read_stat_record(r: _Root, name: str) -> dict[str, Any] | None:
    try:
        line = r.read(f"/.stapdoctor/stat/{name}").decode("utf-8", "replace").split()
        return {"status": "ok", "path": line[3], "mode": int(line[0], 8), "uid": int(line[1]), "gid": int(line[2]),
                "group": _group_name(r, int(line[2])), "recorded": True}
    except (OSError, IndexError, ValueError):
        return None


def _group_table(r: _Root) -> list[tuple[str, int, list[str]]]:
    try:
        text = r.read("/etc/group").decode("utf-8", "replace")
    except OSError:
        return []
    rows = []
    for line in text.splitlines():
        parts = line.split(":")
        if len(parts) >= 4 and parts[2].isdigit():
            rows.append((parts[0], int(parts[2]), [m for m in parts[3].split(",") if m]))
    return rows


def _group_name(r: _Root, gid: int) -> str | None:
    for name, g, _ in _group_table(r):
        if g == gid:
            return name
    return None


def _user(r: _Root) -> dict[str, Any]:
    if r.live:
        import grp
        import pwd
        uid = os.getuid()
        try:
            name = pwd.getpwuid(uid).pw_name
        except KeyError:
            name = str(uid)
        groups = []
        for gid in sorted(set(os.getgroups()) | {os.getgid()}):
            try:
                groups.append(grp.getgrgid(gid).gr_name)
            except KeyError:
                groups.append(str(gid))
        return {"uid": uid, "name": name, "groups": groups, "source": "process credentials"}
    rec = _recorded_command(r, "id")
    if rec and rec.get("stdout"):
        return _parse_id(rec["stdout"]) | {"source": "recorded `id`"}
    return {"source": "not collected"}


def _parse_id(text: str) -> dict[str, Any]:
    """Parse `id` output: uid=1000(alice) gid=1000(alice) groups=1000(alice),27(stapusr)."""
    out: dict[str, Any] = {"groups": []}
    for part in text.split():
        key, _, val = part.partition("=")
        if key == "uid":
            num, _, name = val.partition("(")
            out["uid"] = int(num) if num.isdigit() else None
            out["name"] = name.rstrip(")") or num
        elif key == "groups":
            for g in val.split(","):
                num, _, name = g.partition("(")
                out["groups"].append(name.rstrip(")") or num)
    return out


def _env(r: _Root) -> dict[str, str]:
    if r.live:
        return {k: os.environ[k] for k in ENV_KEYS if k in os.environ}
    try:
        text = r.read("/.stapdoctor/env").decode("utf-8", "replace")
    except OSError:
        return {}
    out = {}
    for line in text.splitlines():
        k, sep, v = line.partition("=")
        if sep and k in ENV_KEYS:
            out[k] = v
    return out


def _recorded_elf(r: _Root) -> dict[str, dict[str, Any]]:
    try:
        text = r.read("/.stapdoctor/elf/vmlinux").decode("utf-8", "replace")
    except OSError:
        return {}
    out = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) >= 3:
            out[parts[0]] = {"status": "ok", "build_id": parts[1] if parts[1] != "-" else None,
                             "has_dwarf": parts[2] == "1", "recorded": True}
    return out


def collect(root: "str | _Root" = "/", *, pid: int | None = None, binary: str | None = None,
            run_commands: bool | None = None, debuginfod: bool = False) -> HostSnapshot:
    """Collect a snapshot of the live host (root='/'), of a sysroot directory, or of a root object
    with _Root's methods (the fleet's in-memory collected tree, doctor/collected.py)."""
    from . import elfinfo

    if isinstance(root, (str, os.PathLike)):
        if not os.path.isdir(root):
            raise SnapshotError(f"--root {root}: no such directory")
        r = _Root(root)
    else:
        r = root
    release, release_src = _kernel_release(r)
    if run_commands is None:
        run_commands = r.live
    snap = HostSnapshot(kernel_release=release, source={
        "kind": "live" if r.live else "sysroot", "root": r.root, "host": os.uname().nodename if r.live else None,
        "collected_at": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "kernel_release_from": release_src})
    sub = snap.path
    for t in TEXT_FILES:
        snap.files[sub(t)] = _file_fact(r, sub(t), "text")
    for t in PRESENCE_FILES:
        snap.files[sub(t)] = _file_fact(r, sub(t), "presence")
    for t in BINARY_FILES:
        snap.files[sub(t)] = _file_fact(r, sub(t), "binary")
    for t in LINKS:
        snap.files[sub(t)] = _link_fact(r, sub(t))

    # Debug vmlinux candidates, plus the build-id path once the running kernel's id is known.
    notes = snap.files.get("/sys/kernel/notes", {})
    running_id = elfinfo.build_id_from_notes(bytes.fromhex(notes["hex"])) if notes.get("hex") else None
    candidates = [sub(t) for t in VMLINUX_CANDIDATES]
    if running_id:
        candidates.append(f"/usr/lib/debug/.build-id/{running_id[:2]}/{running_id[2:]}.debug")
    recorded = _recorded_elf(r)
    for p in candidates:
        if p in recorded:
            snap.elf[p] = recorded[p]
            continue
        try:
            if r.exists(p):
                snap.elf[p] = r.inspect_elf(p)
        except OSError:
            continue
    for p, fact in recorded.items():
        snap.elf.setdefault(p, fact)

    stap = _find_tool(r, "stap")
    staprun = _find_tool(r, "staprun", (os.path.dirname(stap),) if stap else ())
    snap.tools["stap"] = {"status": "ok", "path": stap} if stap else {"status": "missing"}
    try:
        snap.tools["staprun"] = _tool_fact(r, staprun, "staprun")
    except OSError as e:
        snap.tools["staprun"] = {"status": "error", "error": str(e)}
    if run_commands and stap:
        snap.commands["stap-V"] = _run([r.real(stap), "-V"])
    else:
        rec = _recorded_command(r, "stap-V")
        if rec:
            snap.commands["stap-V"] = rec
    snap.user = _user(r)
    snap.env = _env(r)
    repo = snap.env.get("STAPDOCTOR_SYSTEMTAP_REPO", "")
    if run_commands and repo:
        # The systemtap repository the playbooks build from (their systemtap_git_url): which release tags it
        # really has decides the remedy's ref. Asked only when the user names it: `check` stays offline.
        snap.commands["systemtap-tags"] = _run(["git", "ls-remote", "--tags", "--", repo], timeout=30)
    from . import hostfacts  # kernel package, toolchain, debuginfod, ~/.systemtap/rc
    hostfacts.collect(r, snap, run_commands, debuginfod=debuginfod)
    if pid is not None or binary is not None:
        from . import target
        snap.target = target.collect_target(r, pid=pid, binary=binary)
    return snap
