"""The shape of a saved snapshot, checked before any check reads it.

Why: `check --snapshot FILE` reads files from elsewhere. A null where a string belongs, or a number
where a table belongs, used to reach the checks and come out as "internal error" FAILs (exit 1, as if
the host were not ready). A malformed snapshot is a usage error: exit 2, saying where it is wrong.
Keys this table does not know (facts added later) must still be plain JSON of bounded depth.
"""
from __future__ import annotations

import re
from typing import Any

MAX_DEPTH = 32
_HEX = re.compile(r"[0-9a-fA-F]*\Z")


class Malformed(ValueError):
    """`where` is a JSON path such as files['/proc/version'].text."""

    def __init__(self, where: str, what: str):
        super().__init__(f"{where}: {what}")
        self.where = where


def _name(v: Any) -> str:
    if v is None:
        return "null"
    return {bool: "a boolean", int: "a number", float: "a number", str: "a string", list: "a list",
            dict: "a table"}.get(type(v), type(v).__name__)


class Opt:
    def __init__(self, spec):
        self.spec = spec


class List:
    def __init__(self, spec):
        self.spec = spec


class Map:
    """A table with any keys, every value of one shape."""

    def __init__(self, spec):
        self.spec = spec


class Obj:
    """A table with known keys (each optional unless `required`), other keys any plain JSON."""

    def __init__(self, fields: dict, required: tuple = ()):
        self.fields, self.required = fields, required


HEX = "hex"
ANY = "any"
_EXPECT = {str: "a string", int: "a whole number", bool: "true or false", float: "a number", HEX: "a hex string"}


def _plain(v: Any, where: str, depth: int) -> None:
    if depth > MAX_DEPTH:
        raise Malformed(where, f"nested more than {MAX_DEPTH} levels deep")
    if isinstance(v, dict):
        for k, x in v.items():
            _plain(x, f"{where}[{k!r}]", depth + 1)
    elif isinstance(v, list):
        for i, x in enumerate(v):
            _plain(x, f"{where}[{i}]", depth + 1)


def check(v: Any, spec: Any, where: str, depth: int = 0) -> None:
    if depth > MAX_DEPTH:
        raise Malformed(where, f"nested more than {MAX_DEPTH} levels deep")
    if isinstance(spec, Opt):
        if v is not None:
            check(v, spec.spec, where, depth)
        return
    if spec is ANY:
        _plain(v, where, depth)
        return
    if isinstance(spec, List):
        if not isinstance(v, list):
            raise Malformed(where, f"expected a list, got {_name(v)}")
        for i, x in enumerate(v):
            check(x, spec.spec, f"{where}[{i}]", depth + 1)
        return
    if isinstance(spec, (Map, Obj)):
        if not isinstance(v, dict):
            raise Malformed(where, f"expected a table, got {_name(v)}")
        if isinstance(spec, Map):
            for k, x in v.items():
                check(x, spec.spec, f"{where}[{k!r}]", depth + 1)
            return
        for k in spec.required:
            if k not in v:
                raise Malformed(where, f"has no {k!r}")
        for k, x in v.items():
            check(x, spec.fields.get(k, ANY), f"{where}.{k}", depth + 1)
        return
    ok = {str: isinstance(v, str), bool: isinstance(v, bool),
          int: isinstance(v, int) and not isinstance(v, bool),
          float: isinstance(v, (int, float)) and not isinstance(v, bool),
          HEX: isinstance(v, str) and bool(_HEX.match(v)) and len(v) % 2 == 0}[spec]
    if not ok:
        raise Malformed(where, f"expected {_EXPECT[spec]}, got {_name(v)}")


FILE = Obj({"status": str, "text": str, "size": int, "link": Opt(str), "resolves": bool, "error": str,
            "binary": bool, "gunzipped": bool, "hex": HEX}, required=("status",))
COMMAND = Obj({"argv": List(str), "rc": Opt(int), "stdout": str, "stderr": str, "error": str, "seconds": float})
ELF = Obj({"status": str, "build_id": Opt(str), "has_dwarf": bool, "has_symtab": bool, "has_dynsym": bool,
           "has_eh_frame": bool, "has_debug_frame": bool, "debuglink": Opt(str), "type": Opt(str), "error": str,
           "recorded": bool}, required=("status",))
TOOL = Obj({"status": str, "path": Opt(str), "mode": int, "uid": int, "gid": int, "group": Opt(str),
            "recorded": bool, "error": str}, required=("status",))
USER = Obj({"uid": Opt(int), "name": str, "groups": List(str), "source": str})
TARGET = Obj({"pid": Opt(int), "binary": Opt(str), "exe": Opt(str), "error": str,
              "objects": List(Obj({"path": str, "status": str, "build_id": Opt(str), "debuglink": Opt(str),
                                   "debug_file": str, "type": Opt(str), "error": str}, required=("path",)))},
             required=("objects",))
SNAPSHOT = Obj({"schema": str, "kernel_release": str, "source": Map(Opt(ANY)), "files": Map(FILE),
                "commands": Map(COMMAND), "elf": Map(ELF), "env": Map(str), "user": USER, "tools": Map(TOOL),
                "target": Opt(TARGET)}, required=("schema", "kernel_release"))


def snapshot(d: Any) -> None:
    """Raise Malformed naming the first place where `d` is not a snapshot's shape."""
    check(d, SNAPSHOT, "snapshot")
