"""A host's collector output, read into memory as a sysroot the snapshot code can read: never extracted.

Why: the archive comes from a host that may be compromised. Extracting it (even with tarfile's 'data'
filter, bypassed by CVE-2025-4517 and absent from Debian 12's Python 3.11.2) would let it write on the
controller. Here it is read as a stream: regular files and directories only, names checked, every size
capped; nothing touches the disk and nothing follows a link.

The collector (playbooks/roles/doctor_collect/files/collect.sh) prints

    stapdoctor-collect/1 base64        (or "hex" where the host has no base64 tool)
    <the tar.gz of a sysroot-shaped tree, encoded>
    stapdoctor-collect/1 end

The tree holds copies of the files the checks read at their own paths, the build tree's files under
lib/modules/R/build/ itself, and in .stapdoctor/ the recorded commands (see doctor/snapshot.py) plus
  links   "PATH<TAB>TARGET" per symbolic link the checks care about (lib/modules/R/build)
  sizes   "SIZE<TAB>PATH" per file whose existence and size matter, not its content
"""
from __future__ import annotations

import binascii
import io
import posixpath
import stat as _stat
import tarfile
from types import SimpleNamespace
from typing import Any

from .safeio import MiB, UnsafeFile, gunzip, human

MARK = "stapdoctor-collect/1"
MAX_OUTPUT = 24 * MiB        # encoded text from one host (a collected tree is ~100-300 KiB of tar.gz)
MAX_ARCHIVE = 16 * MiB       # the tar.gz itself
MAX_MEMBER = 8 * MiB         # one file (a kernel .config is ~300 KiB)
MAX_TOTAL = 32 * MiB         # all files together, uncompressed
MAX_MEMBERS = 4000
MAX_NAME = 1024


class CollectedError(ValueError):
    """Collector output that cannot be used; the message says what was wrong and where."""


def decode_output(text: str) -> bytes:
    """The tar.gz inside the collector's stdout (shell noise around the markers is ignored)."""
    if len(text) > MAX_OUTPUT:
        raise CollectedError(f"collector output is larger than {human(MAX_OUTPUT)}")
    lines = text.replace("\r", "").split("\n")
    start = next((i for i, ln in enumerate(lines) if ln.strip().startswith(MARK + " ")
                  and ln.strip() != f"{MARK} end"), None)
    if start is None:
        first = next((ln for ln in lines if ln.strip()), "")
        raise CollectedError("no snapshot in the collector's output"
                             + (f" (it printed: {first.strip()[:200]!r})" if first else " (it printed nothing)"))
    encoding = lines[start].split()[1]
    try:
        end = lines.index(f"{MARK} end", start + 1)
    except ValueError:
        raise CollectedError("the collector's output is cut short (no end marker)") from None
    body = "".join("".join(lines[start + 1:end]).split())
    try:
        if encoding == "base64":
            raw = binascii.a2b_base64(body.encode("ascii"), strict_mode=True) if body else b""
        elif encoding == "hex":
            raw = bytes.fromhex(body)
        else:
            raise CollectedError(f"unknown encoding {encoding[:20]!r} in the collector's output")
    except (binascii.Error, ValueError, UnicodeEncodeError) as e:
        if isinstance(e, CollectedError):
            raise
        raise CollectedError(f"the collector's output is not valid {encoding} ({e})") from None
    if len(raw) > MAX_ARCHIVE:
        raise CollectedError(f"the collected archive is larger than {human(MAX_ARCHIVE)}")
    return raw


def _member_path(name: str) -> str:
    """'./etc/os-release' -> '/etc/os-release'; CollectedError for anything that could mean another place."""
    if len(name) > MAX_NAME:
        raise CollectedError(f"member name longer than {MAX_NAME} characters")
    if any(ord(c) < 0x20 or c == "\x7f" or 0xD800 <= ord(c) <= 0xDFFF for c in name):
        raise CollectedError(f"member name {name[:80]!r} has control characters or bytes that are not UTF-8")
    if name.startswith("/"):
        raise CollectedError(f"member {name[:200]!r} has an absolute name")
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if any(p == ".." for p in parts):
        raise CollectedError(f"member {name[:200]!r} has a '..' component")
    return "/" + "/".join(parts)


def read_archive(raw: bytes, label: str) -> "MemoryRoot":
    """Read a collector tar.gz into a MemoryRoot; CollectedError names the member that was refused."""
    try:
        tar_bytes = gunzip(raw, MAX_TOTAL + MAX_MEMBERS * 1024)  # headers: 512 bytes, plus pax records
    except ValueError as e:
        raise CollectedError(f"the collected archive: {e}") from None
    root = MemoryRoot(label)
    total = 0
    try:
        with tarfile.open(fileobj=io.BytesIO(tar_bytes), mode="r|") as tf:
            for count, m in enumerate(tf, 1):
                if count > MAX_MEMBERS:
                    raise CollectedError(f"the collected archive has more than {MAX_MEMBERS} members")
                path = _member_path(m.name)
                if path in root.files or (path in root.dirs and not m.isdir()):
                    raise CollectedError(f"member {path!r} appears twice")
                if m.type == tarfile.DIRTYPE:
                    root.dirs.add(path)
                    continue
                if m.type not in (tarfile.REGTYPE, tarfile.AREGTYPE):
                    raise CollectedError(f"member {path!r} is not a regular file or directory "
                                         f"(tar type {m.type!r}): refused")
                if m.size > MAX_MEMBER:
                    raise CollectedError(f"member {path!r} is larger than {human(MAX_MEMBER)}")
                total += m.size
                if total > MAX_TOTAL:
                    raise CollectedError(f"the collected files together are larger than {human(MAX_TOTAL)}")
                f = tf.extractfile(m)
                data = f.read(m.size) if f is not None else b""
                if len(data) != m.size:
                    raise CollectedError(f"member {path!r} is cut short")
                root.files[path] = data
    except tarfile.TarError as e:
        raise CollectedError(f"the collected archive is not a valid tar file ({e})") from None
    except (EOFError, ValueError) as e:
        if isinstance(e, CollectedError):
            raise
        raise CollectedError(f"the collected archive is damaged ({e})") from None
    root.load_metadata()
    return root


class MemoryRoot:
    """A sysroot held in memory, with the interface of doctor.snapshot's _Root. No path is ever opened;
    links are the collector's records (host path -> target) and are never followed."""

    live = False

    def __init__(self, label: str):
        self.root = label
        self.files: dict[str, bytes] = {}
        self.dirs: set[str] = {"/"}
        self.links: dict[str, str] = {}
        self.sizes: dict[str, int] = {}

    def load_metadata(self) -> None:
        for line in self.files.get("/.stapdoctor/links", b"").decode("utf-8", "replace").splitlines():
            path, sep, target = line.partition("\t")
            if sep and path.startswith("/"):
                self.links[posixpath.normpath(path)] = target
        for line in self.files.get("/.stapdoctor/sizes", b"").decode("utf-8", "replace").splitlines():
            size, sep, path = line.partition("\t")
            if sep and size.isdigit() and path.startswith("/"):
                self.sizes[posixpath.normpath(path)] = int(size)
        for path in list(self.files) + list(self.sizes):  # every parent of a file is a directory
            parent = posixpath.dirname(path)
            while parent not in self.dirs:
                self.dirs.add(parent)
                parent = posixpath.dirname(parent)

    # -- the _Root interface --------------------------------------------------------------------
    def real(self, path: str) -> str:
        return posixpath.normpath("/" + path.lstrip("/"))

    def read(self, path: str, limit: int = 4 * MiB) -> bytes:
        p = self.real(path)
        if p in self.files:
            data = self.files[p]
            if len(data) > limit:
                raise UnsafeFile(f"larger than {human(limit)}: not read", p)
            return data
        if p in self.dirs:
            raise IsADirectoryError(21, "is a directory", p)
        raise FileNotFoundError(2, "no such file", p)

    def stat(self, path: str) -> Any:
        p = self.real(path)
        if p in self.files or p in self.sizes:
            size = len(self.files[p]) if p in self.files else self.sizes[p]
            return SimpleNamespace(st_size=size, st_mode=_stat.S_IFREG | 0o644, st_uid=0, st_gid=0)
        if p in self.dirs:
            return SimpleNamespace(st_size=0, st_mode=_stat.S_IFDIR | 0o755, st_uid=0, st_gid=0)
        raise FileNotFoundError(2, "no such file", p)

    def exists(self, path: str) -> bool:
        p = self.real(path)
        return p in self.files or p in self.sizes or p in self.dirs

    def lexists(self, path: str) -> bool:
        return self.real(path) in self.links or self.exists(path)

    def readlink(self, path: str) -> str | None:
        return self.links.get(self.real(path))

    def isdir(self, path: str) -> bool:
        return self.real(path) in self.dirs

    def listdir(self, path: str) -> list[str]:
        p = self.real(path)
        if p not in self.dirs:
            raise FileNotFoundError(2, "no such directory", p)
        prefix = p.rstrip("/") + "/"
        return sorted({q[len(prefix):].split("/", 1)[0] for q in (*self.files, *self.sizes, *self.dirs)
                       if q.startswith(prefix) and q != p})

    def is_executable(self, path: str) -> bool:
        return False  # a collected tree holds no programs; the collector records their output

    def inspect_elf(self, path: str) -> dict[str, Any]:
        return {"status": "error", "error": "not inspected: the collector records build-ids in .stapdoctor/elf"}
