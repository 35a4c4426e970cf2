"""C++ and Rust symbol names made readable by binutils' demangler (``c++filt``), never by our own.

stap prints symbols as the ELF symbol table holds them (``_ZN3foo3barEv``); a flame graph of those
is hard to read.  All the names of a profile go to one ``c++filt`` process, one per line on its
stdin (never on a command line).  Only names that look mangled and are of sane length are sent:
libiberty's demangler has had crashes on hostile input, and a 10 MB "symbol" is not one.
"""

from __future__ import annotations

import re
import shutil
import subprocess

#: Itanium C++ (``_Z``, also Rust's legacy scheme) and Rust v0 (``_R``) manglings; no blanks inside.
_MANGLED = re.compile(r"_[ZR][0-9A-Za-z_$.]+")
_MAX_LEN = 4096
_TIMEOUT_S = 60


def demangle_names(names, problems: list[str] | None = None) -> dict[str, str]:
    """{mangled name: readable name} for the names c++filt could demangle (the others are absent).

    When c++filt is missing or fails, names stay as they are and ``problems`` says why (once)."""
    # names that look mangled and are of sane length: the pattern is tried by filter, in C, on every
    # name (tens of thousands where sampled PCs vary), the length on the few that match
    todo = sorted(n for n in filter(_MANGLED.fullmatch, names) if len(n) <= _MAX_LEN)
    if not todo:
        return {}
    exe = shutil.which("c++filt")
    if exe is None:
        if problems is not None:
            problems.append(f"{len(todo)} C++/Rust names stay mangled: c++filt not found (install binutils), "
                            "or pass --raw-names")
        return {}
    try:
        proc = subprocess.run([exe], input="\n".join(todo) + "\n", capture_output=True, text=True,
                              encoding="utf-8", errors="replace", timeout=_TIMEOUT_S, check=False)
    except (OSError, subprocess.SubprocessError) as e:
        if problems is not None:
            problems.append(f"c++filt failed ({e}); C++/Rust names stay mangled")
        return {}
    out = proc.stdout.split("\n")
    if proc.returncode != 0 or len(out) != len(todo) + 1:
        if problems is not None:
            problems.append(f"c++filt failed (exit {proc.returncode}); C++/Rust names stay mangled")
        return {}
    return {m: d for m, d in zip(todo, out) if d and d != m}
