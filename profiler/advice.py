"""stap's warnings and errors, turned into what to do next.

Each rule quotes the stap message it matches (the strings are those of systemtap's runtime,
translator and staprun; tests feed each one verbatim). Advice is keyed by a stable id so the
summary, the terminal and tests agree.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Callable, Iterable


@dataclass(frozen=True)
class Limits:
    """The stap -D limits of a run (what advice suggests raising)."""

    maxmapentries: int = 10240
    maxaction: int = 20000
    maxbacktrace: int = 100
    maxstringlen: int = 1024
    maxskipped: int | None = None  # None: stap's default (100)
    buffer_size: int | None = None  # -s MB; None: stap's default
    no_overload: bool = False


@dataclass
class Advice:
    id: str
    title: str
    fix: str
    evidence: list[str] = field(default_factory=list)  # the stap lines (or facts) that triggered it


Rule = tuple[str, "re.Pattern[str]", Callable[[re.Match, Limits], tuple[str, str]]]


def _maps(m: re.Match, lim: Limits) -> tuple[str, str]:
    return ("the stacks table overflowed (MAXMAPENTRIES)",
            f"raise --maxmapentries (now {lim.maxmapentries}), e.g. --maxmapentries {lim.maxmapentries * 4}; "
            "each entry costs about 2*MAXSTRINGLEN bytes per CPU of kernel memory")


def _skipped(m: re.Match, lim: Limits) -> tuple[str, str]:
    skipped = int(m.group(2))
    if skipped == 0:
        return ("", "")
    cur = lim.maxskipped if lim.maxskipped is not None else 100
    return (f"{skipped} probe hits were skipped",
            "samples were dropped (contention, reentrancy or low stack); the flame graph is still "
            f"representative unless the number is large. If stap stopped with 'Skipped too many probes', "
            f"raise --maxskipped (now {cur}); see the 'Skipped due to ...' lines for the cause")


def _too_many_skipped(m: re.Match, lim: Limits) -> tuple[str, str]:
    cur = lim.maxskipped if lim.maxskipped is not None else 100
    return ("stap stopped: too many skipped probes (MAXSKIPPED)",
            f"raise --maxskipped (now {cur}), e.g. --maxskipped {cur * 10}")


def _overload(m: re.Match, lim: Limits) -> tuple[str, str]:
    return ("stap stopped: probe overhead exceeded its threshold",
            "the probes used too much CPU (common under emulation or at high sample rates); rerun with "
            "--no-overload (sets -D STP_NO_OVERLOAD) to let the run continue")


def _transport(m: re.Match, lim: Limits) -> tuple[str, str]:
    cur = f"{lim.buffer_size} MB" if lim.buffer_size else "stap's default"
    nxt = (lim.buffer_size or 16) * 4
    return (f"{m.group(1)} transport failures: stap output was lost",
            f"raise the buffer with -s/--buffer-size (now {cur}), e.g. -s {nxt}")


def _missing_unwind_runtime(m: re.Match, lim: Limits) -> tuple[str, str]:
    mod = m.group(1)
    if mod == "kernel":
        return ("no kernel unwind data",
                "kernel frames may be missing or cut short: install the debug symbols of the running "
                "kernel (`stapdoctor check` names the package), or profile without --kernel")
    if mod.startswith("(unknown"):
        return ("a sampled address was in a module stap knows nothing about",
                "usually a JIT or anonymous code region, or a library loaded after stap started; "
                "its frames end the stack early")
    return (f"no unwind data for {mod}",
            f"stacks through {mod} end early. stapdoctor passes -d for every file the target mapped "
            f"at start: if {mod} was loaded later (dlopen), restart the profile once it is loaded; "
            f"otherwise install its debug symbols (find the package with `dpkg -S {mod}` or "
            f"`rpm -qf {mod}`, then its -dbgsym / -debuginfo package)")


def _missing_symbols_translator(m: re.Match, lim: Limits) -> tuple[str, str]:
    mod = m.group(1)
    return (f"stap has no unwind/symbol data for {mod}",
            f"install debug symbols for {mod} (find the package with `dpkg -S {mod}` or `rpm -qf {mod}`, "
            "then install its -dbgsym / -debuginfo package) or build it with -g and frame pointers; "
            "frames through it may be lost")


def _maxaction(m: re.Match, lim: Limits) -> tuple[str, str]:
    return ("a probe hit MAXACTION (too many statements in one probe)",
            f"raise --maxaction (now {lim.maxaction}), e.g. --maxaction {lim.maxaction * 5}")


def _frame_size(m: re.Match, lim: Limits) -> tuple[str, str]:
    return (f"pass 4: stack frame of {m.group(1)} bytes exceeds the kernel's CONFIG_FRAME_WARN={m.group(2)}",
            f"MAXSTRINGLEN={lim.maxstringlen} is too large for this kernel: drop --maxstringlen (stapdoctor "
            "then sizes it from CONFIG_FRAME_WARN) or lower it")


def _pass4(m: re.Match, lim: Limits) -> tuple[str, str]:
    return ("pass 4 failed: the kernel module did not compile",
            "run `stapdoctor check --deep`: it compiles a minimal module and explains the compiler error "
            "(most often a systemtap release older than the kernel, or kernel headers that do not match)")


def _insmod(m: re.Match, lim: Limits) -> tuple[str, str]:
    return ("the kernel refused the module",
            "module loading is restricted (lockdown, module signature enforcement, or "
            "kernel.modules_disabled): run `stapdoctor check` for the policy findings and their fixes")


def _permission(m: re.Match, lim: Limits) -> tuple[str, str]:
    return ("not allowed to run stap modules",
            "run as root, or add the user to the stapusr and stapdev groups (`stapdoctor check` shows which "
            "groups are missing)")


def _no_build(m: re.Match, lim: Limits) -> tuple[str, str]:
    return ("no kernel build tree for the running kernel",
            "install the kernel headers/devel package of the running kernel (`stapdoctor check` names it)")


def _symtab(m: re.Match, lim: Limits) -> tuple[str, str]:
    return ("stap has no kernel symbol table",
            "kernel frames are resolved by stapdoctor from /proc/kallsyms; install the kernel's debug "
            "symbols or System.map if frames show as bare addresses")


RULES: list[Rule] = [
    # runtime: "ERROR: Array overflow, check MAXMAPENTRIES near identifier 'stacks' at ..."
    ("maxmapentries", re.compile(r"Array overflow, check MAXMAPENTRIES"), _maps),
    # runtime, in probe end: "ERROR: aggregation overflow in global(s___global_stacks) near ..."
    ("maxmapentries", re.compile(r"aggregation overflow in "), _maps),
    # runtime: "WARNING: Number of errors: 0, skipped probes: 12"
    ("skipped", re.compile(r"Number of errors: (\d+), skipped probes: (\d+)"), _skipped),
    # runtime: "ERROR: Skipped too many probes, check MAXSKIPPED or try again with stap -t ..."
    ("maxskipped", re.compile(r"Skipped too many probes, check MAXSKIPPED"), _too_many_skipped),
    # runtime (>= 1.x): "ERROR: probe overhead exceeded threshold"; (>= 2.x) "ERROR: probe overhead
    # (12345 cycles) exceeded threshold (500000000 cycles) in last 1000000000 cycles"
    ("overload", re.compile(r"probe overhead( \(\d+ cycles\))? exceeded threshold"), _overload),
    # staprun transport: "WARNING: There were 3 transport failures. Try stap -s to increase the ..."
    ("transport", re.compile(r"There were (\d+) transport failures"), _transport),
    # runtime unwinder: "WARNING: Missing unwind data for a module, rerun with 'stap -d /lib/libc.so.6'"
    ("unwind", re.compile(r"Missing unwind data for a module, rerun with 'stap -d (.+)'"), _missing_unwind_runtime),
    # translator: "WARNING: missing unwind/symbol data for module '/usr/lib/libfoo.so'"
    ("symbols", re.compile(r"missing unwind/symbol data for module '([^']+)'"), _missing_symbols_translator),
    # runtime: "ERROR: MAXACTION exceeded near keyword at profile.stp:55:2"
    ("maxaction", re.compile(r"MAXACTION exceeded"), _maxaction),
    # gcc in pass 4: "error: the frame size of 4112 bytes is larger than 2048 bytes [-Werror=frame-larger-than=]"
    ("maxstringlen", re.compile(r"the frame size of (\d+) bytes is larger than (\d+) bytes"), _frame_size),
    # stap: "Pass 4: compilation failed.  [man error::pass4]"
    ("pass4", re.compile(r"Pass 4: compilation failed"), _pass4),
    # staprun: "ERROR: Couldn't insert module '/tmp/stap_x.ko': Operation not permitted"
    ("insmod", re.compile(r"Couldn't insert module .*: (Operation not permitted|Key was rejected by service|"
                          r"Required key not available)"), _insmod),
    # staprun: "ERROR: You are trying to run systemtap as a normal user."
    ("permission", re.compile(r"You are trying to run systemtap as a normal user"), _permission),
    # stap: 'Checking "/lib/modules/6.1.0-56-amd64/build/.config" failed with error: No such file or directory'
    ("devel", re.compile(r'Checking "[^"]*/build/\.config" failed with error'), _no_build),
    # stap: "WARNING: Kernel function symbol table missing [man warning::symbols]"
    ("kernel-symtab", re.compile(r"Kernel function symbol table missing"), _symtab),
]

# Rules whose advice is only relevant in some runs.
KERNEL_ONLY = {"kernel-symtab"}


def advise(lines: Iterable[str], limits: Limits, *, kernel: bool = False) -> list[Advice]:
    """Advice for stap's stderr lines, one entry per distinct (id, title), evidence collected."""
    out: dict[tuple[str, str], Advice] = {}
    for line in lines:
        line = line.rstrip("\n")
        for rid, pat, make in RULES:
            if rid in KERNEL_ONLY and not kernel:
                continue
            m = pat.search(line)
            if not m:
                continue
            title, fix = make(m, limits)
            if not title:
                continue
            adv = out.setdefault((rid, title), Advice(rid, title, fix))
            if len(adv.evidence) < 5 and line.strip() not in adv.evidence:
                adv.evidence.append(line.strip())
    return list(out.values())


def skipped_count(lines: Iterable[str]) -> tuple[int | None, int | None]:
    """(errors, skipped probes) from stap's end-of-run line, or (None, None) when it did not print it
    (stap prints it only when one of them is non-zero)."""
    pat = RULES[2][1]
    errors = skipped = None
    for line in lines:
        m = pat.search(line)
        if m:
            errors, skipped = int(m.group(1)), int(m.group(2))
    return errors, skipped
