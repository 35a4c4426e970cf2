"""`stapdoctor check --deep`: compile and run a hello probe for real, and explain a failure.

The only check that acts on the host (minutes of kbuild under stap's pass 4); its raw result is stored
in the snapshot so the verdict itself stays a pure function, and a saved snapshot carries it along.
"""
from __future__ import annotations

import re
import subprocess
import time
from typing import Any

# A fixed script: nothing from the user goes into it.
HELLO = 'probe begin { println("stapdoctor: hello from a stap module"); exit() }'
_PASS = re.compile(r"^Pass (\d): .*? in (\d+)usr/(\d+)sys/(\d+)real ms\.", re.M)
_ERR = re.compile(r"(error:|Error \d|cc1: all warnings being treated as errors|ERROR:|fatal error)")


def run_deep(stap: str, timeout: float = 1800.0, status=None) -> dict[str, Any]:
    """Run `stap -v -e HELLO`; `status(text)` is told which pass is running (for a progress line).

    A watchdog kills stap after `timeout` seconds even while pass 4 prints nothing for minutes
    (a compile under emulation took 837 s on a loaded 2-core machine).
    """
    import threading

    argv = [stap, "-v", "-e", HELLO]
    started = time.monotonic()
    try:
        p = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
                             text=True, errors="replace")
    except OSError as e:
        return {"argv": argv, "rc": None, "error": str(e)}
    killed = threading.Event()

    def _kill() -> None:
        killed.set()
        p.kill()

    watchdog = threading.Timer(timeout, _kill)
    watchdog.daemon = True
    watchdog.start()
    err_lines: list[str] = []
    try:
        assert p.stderr is not None and p.stdout is not None
        for line in p.stderr:
            err_lines.append(line)
            if status and line.startswith("Pass "):
                status(line.split(":", 1)[0] + " done; " + _next_pass(line))
        out = p.stdout.read()
        rc = p.wait()
    except KeyboardInterrupt:
        p.kill()
        p.wait()
        raise
    finally:
        watchdog.cancel()
    if killed.is_set():
        err_lines.append(f"stapdoctor: killed after {timeout:g} s (raise --deep-timeout)\n")
        rc = None
    return {"argv": argv, "rc": rc, "stdout": out, "stderr": "".join(err_lines),
            "seconds": round(time.monotonic() - started, 1)}


def _next_pass(line: str) -> str:
    m = re.match(r"Pass (\d)", line)
    nxt = int(m.group(1)) + 1 if m else 0
    names = {2: "pass 2: analysis", 3: "pass 3: translating to C", 4: "pass 4: compiling the module (minutes)",
             5: "pass 5: running"}
    return names.get(nxt, "finishing")


def pass_times(stderr: str) -> dict[int, float]:
    """Pass number -> wall seconds, from stap -v's 'Pass N: ... in Xusr/Ysys/Zreal ms.' lines."""
    return {int(m.group(1)): int(m.group(4)) / 1000 for m in _PASS.finditer(stderr or "")}


def first_errors(stderr: str, limit: int = 4) -> list[str]:
    lines = [ln.strip() for ln in (stderr or "").splitlines() if _ERR.search(ln)]
    return lines[:limit]


def summarize(res: dict[str, Any]) -> tuple[str, str]:
    """(status, one-line evidence) for a deep run."""
    if res.get("error"):
        return "fail", f"could not run stap: {res['error']}"
    times = pass_times(res.get("stderr", ""))
    shown = ", ".join(f"pass {n} {t:.1f}s" for n, t in sorted(times.items()))
    if res.get("rc") == 0 and "hello from a stap module" in (res.get("stdout") or ""):
        return "pass", f"hello probe ran ({shown})"
    failed = re.search(r"Pass (\d): compilation failed|Pass (\d).*failed", res.get("stderr", ""))
    where = f"pass {failed.group(1) or failed.group(2)} failed" if failed else f"stap exited {res.get('rc')}"
    errs = first_errors(res.get("stderr", ""))
    return "fail", f"{where} ({shown or 'no pass completed'}): " + (" | ".join(errs) if errs else
                                                                   (res.get("stderr") or "").strip()[-300:])
