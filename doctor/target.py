"""Target readiness facts: the executable and each library it maps, with their symbols and unwind data.

Collected (not checked) here; checks/target.py decides. A library without a symbol table shows as hex
addresses in a flame graph; one without unwind data cuts stacks short.
"""
from __future__ import annotations

import os
from typing import Any

from . import elfinfo

LIB_DIRS = ("/lib/x86_64-linux-gnu", "/usr/lib/x86_64-linux-gnu", "/lib64", "/usr/lib64", "/lib", "/usr/lib",
            "/usr/local/lib")


def _maps(r, pid: int) -> tuple[str | None, list[str]]:
    exe = os.readlink(f"/proc/{pid}/exe")
    paths: list[str] = []
    with open(f"/proc/{pid}/maps", encoding="utf-8", errors="replace") as f:
        for line in f:
            parts = line.split(None, 5)
            if len(parts) == 6 and "x" in parts[1] and parts[5].startswith("/"):
                p = parts[5].rstrip("\n")
                if p.endswith(" (deleted)"):
                    p = p[: -len(" (deleted)")]
                if p not in paths:
                    paths.append(p)
    return exe, paths


def _needed(r, path: str) -> list[str]:
    """DT_NEEDED libraries resolved in the usual directories (no ldd: it would run the loader)."""
    from elftools.elf.elffile import ELFFile
    try:
        with open(r.real(path), "rb") as f:
            elf = ELFFile(f)
            dyn = elf.get_section_by_name(".dynamic")
            if dyn is None:
                return []
            names = [t.needed for t in dyn.iter_tags() if t.entry.d_tag == "DT_NEEDED"]
    except Exception:  # noqa: BLE001 - the object itself is reported by inspect_elf
        return []
    out = []
    for n in names:
        for d in LIB_DIRS:
            cand = f"{d}/{n}"
            if os.path.exists(r.real(cand)):
                out.append(cand)
                break
        else:
            out.append(f"(not found) {n}")
    return out


def separate_debug(r, path: str, info: dict[str, Any]) -> str | None:
    """Where gdb/elfutils/stap find separate debuginfo: by build-id, then by .gnu_debuglink."""
    bid = info.get("build_id")
    cands = []
    if bid and len(bid) > 2:
        cands.append(f"/usr/lib/debug/.build-id/{bid[:2]}/{bid[2:]}.debug")
    link = info.get("debuglink")
    if link and "/" not in link:
        d = os.path.dirname(path)
        cands += [f"/usr/lib/debug{d}/{link}", f"{d}/.debug/{link}", f"{d}/{link}"]
    for c in cands:
        try:
            if c != path and os.path.isfile(r.real(c)):
                return c
        except OSError:
            continue
    return None


class TargetError(ValueError):
    """A --pid/--binary that names nothing usable: a usage error (exit 2), said before any check runs."""


def resolve_binary(root: str, binary: str) -> str:
    """The executable --binary names: a bare name is looked up in PATH (live host only), a directory or a
    file that is not ELF is refused."""
    import shutil
    live = os.path.abspath(root) == "/"
    path = binary
    if "/" not in binary:
        if not live:
            raise TargetError(f"--binary {binary}: give a path inside the --root tree, not a bare name")
        found = shutil.which(binary)
        if found is None:
            raise TargetError(f"--binary {binary}: no such file, and not found in PATH")
        path = found
    host = path if live else os.path.join(root, path.lstrip("/"))
    if os.path.isdir(host):
        raise TargetError(f"--binary {binary}: is a directory, not an executable")
    try:
        with open(host, "rb") as f:
            magic = f.read(4)
    except FileNotFoundError:
        raise TargetError(f"--binary {binary}: no such file") from None
    except OSError as e:
        raise TargetError(f"--binary {binary}: cannot read it ({e.strerror or e})") from None
    if magic != b"\x7fELF":
        raise TargetError(f"--binary {binary}: not an ELF file (a script or a wrapper? give the executable it runs)")
    return os.path.abspath(path) if live else path


def check_pid(root: str, pid: int) -> None:
    if os.path.abspath(root) != "/":
        raise TargetError("--pid needs the live host (not --root)")
    if not os.path.exists(f"/proc/{pid}"):
        raise TargetError(f"--pid {pid}: no such process (it exited, or never existed)")


def collect_target(r, *, pid: int | None = None, binary: str | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"pid": pid, "binary": binary, "objects": []}
    try:
        if pid is not None:
            if not r.live:
                return out | {"error": "--pid needs the live host (not --root)"}
            exe, paths = _maps(r, pid)
            out["exe"] = exe
        else:
            exe = binary
            if not os.path.isfile(r.real(binary)):
                return out | {"error": f"{binary}: no such file"}
            paths = [binary] + _needed(r, binary)
            out["exe"] = binary
    except FileNotFoundError:
        return out | {"error": f"no process {pid} (it exited, or never existed)"}
    except PermissionError:
        return out | {"error": f"cannot read /proc/{pid}/maps: permission denied (run as root or as its owner)"}
    except OSError as e:
        return out | {"error": str(e)}
    for p in paths:
        if p.startswith("(not found)"):
            out["objects"].append({"path": p.split(" ", 2)[2], "status": "missing"})
            continue
        info = elfinfo.inspect_elf(r.real(p))
        obj = {"path": p} | info
        if info.get("status") == "ok":
            dbg = separate_debug(r, p, info)
            if dbg:
                dinfo = elfinfo.inspect_elf(r.real(dbg))
                obj["debug_file"] = dbg
                obj["debug_has_symtab"] = dinfo.get("has_symtab", False)
                obj["debug_has_dwarf"] = dinfo.get("has_dwarf", False)
                obj["debug_has_debug_frame"] = dinfo.get("has_debug_frame", False)
        out["objects"].append(obj)
    return out
