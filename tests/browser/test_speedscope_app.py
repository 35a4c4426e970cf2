"""Our speedscope JSON in the real speedscope application (npm package, served on loopback, in
Chromium): its Sandwich table must list our frames with the weights our folded output gives."""

import functools
import http.server
import re
import shutil
import subprocess
import tarfile
import threading
from pathlib import Path

import pytest

from stapdoctor.profiler.collapse import collapse_stap
from stapdoctor.profiler.folded import read_folded, write_folded
from stapdoctor.profiler.speedscope import write_speedscope

pytestmark = pytest.mark.browser

SPEEDSCOPE = "speedscope@1.25.0"
CASES = Path(__file__).resolve().parents[1] / "data" / "collapse"


@pytest.fixture(scope="module")
def speedscope_app(tmp_path_factory):
    """speedscope's release files from npm, and a loopback HTTP server over a temp directory."""
    root = tmp_path_factory.mktemp("speedscope")
    npm = shutil.which("npm")
    if npm is None:
        pytest.fail("npm missing: tests/setup.sh installs it (Debian's npm) where Node.js brings none")
    r = subprocess.run([npm, "pack", SPEEDSCOPE, "--silent"], cwd=root, capture_output=True, text=True, timeout=300)
    if r.returncode != 0:
        pytest.fail(f"npm pack {SPEEDSCOPE} failed: {r.stderr.strip()[-500:]}")
    with tarfile.open(root / r.stdout.strip().splitlines()[-1]) as t:
        t.extractall(root, filter="data")

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *a):
            pass

    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(root)))
    th = threading.Thread(target=srv.serve_forever, daemon=True)
    th.start()
    yield root, f"http://127.0.0.1:{srv.server_address[1]}"
    srv.shutdown()
    th.join(10)


def _weights(stacks, names):
    """(function name, total, self) per frame, from folded stacks, as speedscope's Sandwich counts them."""
    total: dict[str, int] = {}
    self_: dict[str, int] = {}
    for stack, c in stacks.items():
        for f in set(stack):
            total[f] = total.get(f, 0) + c
        self_[stack[-1]] = self_.get(stack[-1], 0) + c
    return sorted((names.get(f, f), total[f], self_.get(f, 0)) for f in total)


def _num(text: str) -> int:
    return int(text.split(" (")[0].replace(",", ""))


@pytest.mark.parametrize("case", ["busy-debian-unstable", "same-name-two-modules", "mangled-cpp-rust-names"])
def test_speedscope_shows_our_frames_and_weights(case, speedscope_app, browser, tmp_path):
    root, base = speedscope_app
    with open(CASES / case / "input.txt", "rb") as f:
        c = collapse_stap(f)
    with open(root / f"{case}.json", "w", encoding="utf-8") as f:
        write_speedscope(c.stacks, f, name=case, modules=c.modules, names=c.names)
    folded = tmp_path / "out.folded"
    with open(folded, "wb") as f:
        write_folded(c.stacks, f)
    with open(folded, "rb") as f:
        want = _weights(read_folded(f), c.names)

    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    try:
        page.goto(f"{base}/package/dist/release/index.html#profileURL={base}/{case}.json")
        page.get_by_text("Sandwich").wait_for(timeout=30_000)
        page.get_by_text("Sandwich").click()
        page.get_by_text("Symbol Name").wait_for(timeout=30_000)
        text = page.evaluate("document.body.innerText")
    finally:
        page.close()
    assert errors == []
    table = text.split("Symbol Name", 1)[1]
    cells = [x.strip() for x in re.split(r"[\t\n]+", table) if x.strip()]
    got = sorted((cells[i + 2], _num(cells[i]), _num(cells[i + 1])) for i in range(0, len(cells) - 2, 3))
    assert got == want
