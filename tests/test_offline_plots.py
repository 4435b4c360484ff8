"""`dvc plots show` must draw its charts on a machine without internet.

DVC's default page loads vega from a CDN, so offline it stays blank; the repository's
`.dvc/config` points DVC at `.dvc/plots/offline.html`, which inlines the libraries
(scripts/vendor_vega.py). The check is what a person sees: the page is opened in headless
Chromium with all network refused, and every vega chart must have drawn its marks (DOM) and the
screenshot must not be blank. The same check run on DVC's own CDN template must fail, so it
cannot pass by accident.

Chromium is a system package: `make test` installs it (apt-get) when missing.
"""

from __future__ import annotations

import configparser
import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tinyrepo import ROOT, dvc

TEMPLATE = ROOT / ".dvc" / "plots" / "offline.html"
# Every request fails: names resolve nowhere and any connection goes to a closed local port.
NO_NETWORK = ['--host-resolver-rules=MAP * ~NOTFOUND', "--proxy-server=127.0.0.1:9", "--proxy-bypass-list=<-loopback>"]
QUIET = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run", "--virtual-time-budget=5000"]
# How dvc-render writes a vega chart: a div with an id, holding the inline vegaEmbed call.
VEGA_DIV = re.compile(r'<div id = "([^"]+)">\s*<script type = "text/javascript">\s*var spec =')


@pytest.fixture(scope="module")
def chromium() -> str:
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        pytest.fail("chromium not found: `make test` installs it (apt-get install -y chromium)")
    return path


def browse(chromium: str, page: Path, workdir: Path, *action: str) -> subprocess.CompletedProcess[str]:
    """Open `page` in a fresh headless Chromium profile with the network off."""
    profile = workdir / f"profile{len(list(workdir.glob('profile*')))}"
    return subprocess.run([chromium, *QUIET, *NO_NETWORK, f"--user-data-dir={profile}", *action,
                           page.as_uri()], capture_output=True, text=True, timeout=60, check=True)


class MarksPerDiv(HTMLParser):
    """Which of the given div ids contain a drawn vega scene (`<canvas|svg class="marks">`)."""

    def __init__(self, ids: set[str]) -> None:
        super().__init__()
        self.ids, self.stack, self.drawn = ids, [], set()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        if tag == "div":
            self.stack.append(attributes.get("id"))
        elif tag in ("canvas", "svg") and "marks" in (attributes.get("class") or "").split():
            self.drawn.update(i for i in self.stack if i in self.ids)

    def handle_endtag(self, tag: str) -> None:
        if tag == "div" and self.stack:
            self.stack.pop()


def drawn_charts(chromium: str, page: Path, workdir: Path) -> tuple[set[str], set[str]]:
    """(vega charts on the page, those that drew their marks after 5 s of virtual time)."""
    charts = set(VEGA_DIV.findall(page.read_text(encoding="utf-8")))
    parser = MarksPerDiv(charts)
    parser.feed(browse(chromium, page, workdir, "--dump-dom").stdout)
    return charts, parser.drawn


def ink(chromium: str, page: Path, workdir: Path) -> float:
    """Fraction of the screenshot's pixels that are not (near) white."""
    shot = workdir / "page.png"
    browse(chromium, page, workdir, f"--screenshot={shot}", "--window-size=1200,2000")
    pixels = np.asarray(Image.open(shot).convert("RGB"))
    return float((pixels.min(axis=2) < 240).mean())


def show(repo: Path, out: Path, *extra: str) -> Path:
    dvc("plots", "show", "--out", str(out), *extra, cwd=repo)
    return out / "index.html"


def test_the_repository_uses_the_offline_template():
    config = configparser.ConfigParser()
    config.read(ROOT / ".dvc" / "config")
    # DVC resolves a relative plots.html_template against the .dvc/ directory.
    assert ROOT / ".dvc" / config["plots"]["html_template"] == TEMPLATE
    text = TEMPLATE.read_text(encoding="utf-8")
    assert text.count("{plot_divs}") == 1 and "{scripts}" not in text
    assert not re.search(r"<script[^>]+src=", text)
    assert TEMPLATE.stat().st_size < 3_000_000


def test_plots_draw_without_network(tiny_repo, tmp_path, chromium):
    page = show(tiny_repo, tmp_path / "plots")
    assert "cdn.jsdelivr.net" not in page.read_text(encoding="utf-8")
    charts, drawn = drawn_charts(chromium, page, tmp_path)
    assert charts and drawn == charts, f"vega charts that drew nothing: {sorted(charts - drawn)}"
    assert ink(chromium, page, tmp_path) > 0.002  # a blank page: 0.0; two charts: ~0.01


def test_dvc_default_cdn_template_stays_blank_offline(tiny_repo, tmp_path, chromium):
    """The control: the same check on DVC's own page, which needs the CDN, finds no chart."""
    from dvc_render.html import PAGE_HTML

    default = tmp_path / "cdn.html"
    default.write_text(PAGE_HTML, encoding="utf-8")
    page = show(tiny_repo, tmp_path / "plots", "--html-template", str(default))
    assert "cdn.jsdelivr.net" in page.read_text(encoding="utf-8")
    charts, drawn = drawn_charts(chromium, page, tmp_path)
    assert charts and not drawn
