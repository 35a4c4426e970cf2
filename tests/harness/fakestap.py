"""A small autotools-shaped systemtap stand-in git repository, and a git daemon to serve it.

Why: sourceware's git is not reachable from the test machines, yet the systemtap_build role's
mechanics (clone at a ref, ./configure --prefix, make, make install, run the new ``stap -V``, switch
the link, build once per platform and copy) must be proven for real. The repository's ``make install``
installs a ``stap`` that prints a real-looking ``stap -V`` (on stderr, as systemtap does) and a
``staprun``. Tag ``release-X.Y`` per version; a version listed in ``broken`` fails halfway through
``make install`` (after copying ``stap``), to prove a failed build never replaces a working stap.
"""

from __future__ import annotations

import contextlib
import socket
import subprocess
import time
from pathlib import Path
from typing import Iterator

CONFIGURE = r"""#!/bin/sh
# Minimal configure: accepts --prefix=DIR and ignores the --disable-*/--without-* flags real
# systemtap takes, like autoconf's configure does for unknown options (with a warning).
prefix=/usr/local
for arg in "$@"; do
    case $arg in
        --prefix=*) prefix=${arg#--prefix=} ;;
        --*) echo "configure: WARNING: unrecognized option: $arg" >&2 ;;
    esac
done
echo "checking for a BSD-compatible install... /usr/bin/install -c"
printf 'PREFIX = %s\n' "$prefix" > config.mk
echo "config.status: creating config.mk"
"""

MAKEFILE = """\
include config.mk
VERSION := $(shell cat VERSION)

all: stap staprun

stap: stap.in VERSION
\tsed -e 's|@VERSION@|$(VERSION)|g' -e 's|@PREFIX@|$(PREFIX)|g' stap.in > stap
\tchmod 755 stap

staprun: staprun.in
\tsed -e 's|@VERSION@|$(VERSION)|g' staprun.in > staprun
\tchmod 755 staprun

install: all
\tmkdir -p $(PREFIX)/bin $(PREFIX)/share/systemtap
\tinstall -m 755 stap $(PREFIX)/bin/stap
\t$(INSTALL_HOOK)
\tinstall -m 755 staprun $(PREFIX)/bin/staprun
\techo $(VERSION) > $(PREFIX)/share/systemtap/VERSION

.PHONY: all install
"""

STAP_IN = """#!/bin/sh
# Stand-in for systemtap's stap (test repository): answers -V like the real one.
case "$1" in
    -V|--version)
        cat >&2 <<'EOV'
Systemtap translator/driver (version @VERSION@/0.188, release-@VERSION@)
Copyright (C) 2005-2025 Red Hat, Inc. and others
This is free software; see the source for copying conditions.
tested kernel versions: 4.14 ... 6.17-rc6
enabled features: AVAHI BPF LIBSQLITE3 NLS NSS READLINE MONITOR JSON_C
EOV
        exit 0 ;;
esac
echo "stap (test stand-in @VERSION@, prefix @PREFIX@): only -V works" >&2
exit 1
"""

STAPRUN_IN = """#!/bin/sh
echo "staprun (test stand-in @VERSION@)" >&2
exit 1
"""


def _git(repo: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(repo), "-c", "user.name=stapdoctor tests", "-c", "user.email=tests@stapdoctor.invalid",
         *args], check=True, text=True, capture_output=True).stdout


def make_repo(path: Path, versions: tuple[str, ...] = ("5.3", "5.4"), broken: tuple[str, ...] = ("5.5",)) -> Path:
    """Create the repository with a commit and a ``release-V`` tag per version (oldest first)."""
    path.mkdir(parents=True, exist_ok=True)
    subprocess.run(["git", "init", "-q", "-b", "master", str(path)], check=True)
    (path / "configure").write_text(CONFIGURE)
    (path / "configure").chmod(0o755)
    (path / "Makefile").write_text(MAKEFILE)
    (path / "stap.in").write_text(STAP_IN)
    (path / "staprun.in").write_text(STAPRUN_IN)
    for v in (*versions, *broken):
        (path / "VERSION").write_text(v + "\n")
        mk = MAKEFILE
        if v in broken:
            # Fails halfway through `make install`, after stap is already in the prefix.
            mk = mk.replace("\t$(INSTALL_HOOK)\n", "\t@echo 'error: simulated failure halfway' >&2; exit 1\n")
        else:
            mk = mk.replace("\t$(INSTALL_HOOK)\n", "")
        (path / "Makefile").write_text(mk)
        _git(path, "add", "-A")
        _git(path, "commit", "-q", "-m", f"systemtap stand-in {v}")
        _git(path, "tag", f"release-{v}")
    return path


@contextlib.contextmanager
def git_daemon(base: Path, address: str, port: int = 9418) -> Iterator[str]:
    """Serve the repositories under ``base`` read-only over git:// on ``address``; yields the URL base."""
    proc = subprocess.Popen(
        ["git", "daemon", "--reuseaddr", f"--base-path={base}", "--export-all", f"--listen={address}",
         f"--port={port}", str(base)],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 10
        while True:
            with contextlib.suppress(OSError), socket.create_connection((address, port), timeout=0.5):
                break
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"git daemon did not start: {proc.stderr.read().decode() if proc.stderr else ''}")
            time.sleep(0.1)
        yield f"git://{address}:{port}"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
