"""Headless Debian chromium driven by Playwright (never `playwright install`: the system browser)."""

import os
from pathlib import Path

import pytest

CHROMIUM = os.environ.get("STAPDOCTOR_CHROMIUM", "/usr/bin/chromium")
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run"]
DATA = Path(__file__).resolve().parents[1] / "data"


@pytest.fixture(scope="session")
def browser():
    from playwright.sync_api import sync_playwright

    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} missing: install Debian's chromium (tests/apt-packages.txt)")
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield b
        b.close()


class Page:
    """A page plus everything that went wrong in it (JS errors, console errors, dialogs)."""

    def __init__(self, page):
        self.page = page
        self.errors: list[str] = []
        self.dialogs: list[str] = []
        self.answers: list[str] = []
        page.on("pageerror", lambda e: self.errors.append(str(e)))
        page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)
        page.on("dialog", self._dialog)

    def _dialog(self, d):
        self.dialogs.append(f"{d.type}: {d.message}")
        if d.type == "prompt" and self.answers:
            d.accept(self.answers.pop(0))
        else:
            d.dismiss()

    def frames(self):
        """Every frame as the browser shows it now."""
        return self.page.evaluate(
            """() => Array.from(document.querySelectorAll('#frames > g')).map(g => {
                 const t = g.querySelector('title').textContent;
                 const r = g.querySelector('rect');
                 return {name: t.substring(0, t.lastIndexOf(' (')), depth: +g.dataset.d,
                         shown: getComputedStyle(g).display !== 'none', width: +r.getAttribute('width'),
                         x: +r.getAttribute('x'), fill: getComputedStyle(r).fill,
                         match: g.classList.contains('match'), parent: g.classList.contains('parent'),
                         label: g.querySelector('text').textContent};
               })"""
        )

    def frame(self, name, depth=None):
        for f in self.frames():
            if f["name"] == name and (depth is None or f["depth"] == depth):
                return f
        raise KeyError(name)

    def locator(self, name, depth):
        return self.page.locator(f"#frames > g[data-d='{depth}']").filter(
            has=self.page.locator("title", has_text=name)
        )


@pytest.fixture
def open_svg(browser):
    pages = []

    def _open(path: Path) -> Page:
        page = browser.new_page(viewport={"width": 1300, "height": 900})
        pages.append(page)
        p = Page(page)
        page.goto(path.resolve().as_uri(), timeout=120_000)  # a big SVG on a loaded 2-core machine
        page.wait_for_function("() => window.stapdoctorFlame !== undefined")
        return p

    yield _open
    for page in pages:
        page.close()
