"""systemtap's real upstream source served over git, for the build tests.

Why: sourceware's git is not reachable from the test machines; ``../shared/systemtap/`` holds a git bundle
of upstream's release trees (release-4.9, release-5.4, release-5.5). The tests mirror it (read in place,
never copied into the project) and serve the mirror with ``git daemon`` on a test network address, so the
systemtap_build role clones, lists tags and builds exactly as it would from upstream.
"""

from __future__ import annotations

import contextlib
import socket
import subprocess
import time
from pathlib import Path
from typing import Iterator

REPO = Path(__file__).resolve().parents[2]
SHARED_SYSTEMTAP = REPO.parent / "shared" / "systemtap"
BUNDLE = SHARED_SYSTEMTAP / "systemtap-releases.bundle"


def mirror_bundle(dest: Path, bundle: Path = BUNDLE) -> Path:
    """A bare mirror of the upstream bundle at ``dest`` (all its tags); raises FileNotFoundError with what
    to do when ../shared/systemtap is missing."""
    if not bundle.is_file():
        raise FileNotFoundError(f"{bundle} not found: the tests build systemtap from ../shared/systemtap "
                                "(see its README)")
    dest.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(["git", "clone", "-q", "--mirror", str(bundle), str(dest)], check=True,
                   capture_output=True, text=True)
    return dest


def tag_commits(repo: Path) -> dict[str, str]:
    """{tag: commit} of a repository (peeled), as `git ls-remote` reports them to the role."""
    out = subprocess.run(["git", "-C", str(repo), "show-ref", "--tags", "-d"], check=True, text=True,
                         capture_output=True).stdout
    tags: dict[str, str] = {}
    for line in out.splitlines():
        sha, ref = line.split()
        name = ref.removeprefix("refs/tags/")
        if name.endswith("^{}"):
            tags[name[:-3]] = sha
        else:
            tags.setdefault(name, sha)
    return tags


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
