"""What stap needs from an ELF file: build-id, DWARF, symbol tables, unwind data, debuglink.

pyelftools reads only headers and the few sections involved, so even a 700 MB debug vmlinux costs
milliseconds. Errors become a string in the result, never an exception: a check reports them.
"""
from __future__ import annotations

import io
from typing import Any

from . import safeio


def build_id_from_notes(data: bytes) -> str | None:
    """The GNU build-id in a raw note blob such as /sys/kernel/notes (no ELF header around it)."""
    from elftools.elf.notes import iter_notes
    from elftools.elf.structs import ELFStructs

    class _Blob:  # just what iter_notes reads from an ELFFile
        def __init__(self, raw: bytes):
            self.stream = io.BytesIO(raw)
            self.structs = ELFStructs(little_endian=True, elfclass=64)
            self.structs.create_basic_structs()
            self.structs.create_advanced_structs()

    try:
        for note in iter_notes(_Blob(data), 0, len(data)):
            if note["n_type"] == "NT_GNU_BUILD_ID" and note["n_name"] == "GNU":
                return note["n_desc"]
    except Exception:  # noqa: BLE001 - a garbled blob means "no build-id found"
        return None
    return None


def inspect_elf(path: str) -> dict[str, Any]:
    """Facts about one ELF file; {'status': 'error', 'error': ...} for anything unreadable."""
    from elftools.common.exceptions import ELFError
    from elftools.elf.elffile import ELFFile

    info: dict[str, Any] = {"status": "ok", "build_id": None, "has_dwarf": False, "has_symtab": False,
                            "has_dynsym": False, "has_eh_frame": False, "has_debug_frame": False,
                            "debuglink": None, "type": None}
    try:
        with safeio.open_regular(path) as f:  # a FIFO or device in a sysroot must not hang or stream
            elf = ELFFile(f)
            info["type"] = elf.header["e_type"]
            for sec in elf.iter_sections():
                name = sec.name
                if name in (".debug_info", ".zdebug_info"):
                    info["has_dwarf"] = sec["sh_type"] != "SHT_NOBITS" and sec["sh_size"] > 0
                elif name == ".symtab":
                    info["has_symtab"] = sec["sh_type"] != "SHT_NOBITS"
                elif name == ".dynsym":
                    info["has_dynsym"] = True
                elif name == ".eh_frame":
                    info["has_eh_frame"] = sec["sh_type"] != "SHT_NOBITS" and sec["sh_size"] > 0
                elif name == ".debug_frame":
                    info["has_debug_frame"] = sec["sh_type"] != "SHT_NOBITS" and sec["sh_size"] > 0
                elif name == ".gnu_debuglink" and sec["sh_type"] != "SHT_NOBITS":
                    raw = sec.data()
                    info["debuglink"] = raw.split(b"\0", 1)[0].decode("utf-8", "replace")
                if sec["sh_type"] == "SHT_NOTE" and info["build_id"] is None:
                    for note in sec.iter_notes():
                        if note["n_type"] == "NT_GNU_BUILD_ID":
                            info["build_id"] = note["n_desc"]
    except FileNotFoundError:
        return {"status": "missing"}
    except PermissionError as e:
        return {"status": "unreadable", "error": str(e)}
    except (ELFError, OSError, ValueError, KeyError, AssertionError) as e:
        return {"status": "error", "error": f"not a readable ELF file: {e}"}
    except Exception as e:  # noqa: BLE001 - pyelftools raises assorted errors on garbage
        return {"status": "error", "error": f"not a readable ELF file: {type(e).__name__}: {e}"}
    return info
