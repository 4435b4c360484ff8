"""Every relative link and #anchor in README.md and docs/*.md resolves, as on a plain GitHub view.

markdown-it-py (CommonMark, plus tables) parses the pages, so links inside tables and code spans
are told apart as GitHub tells them; the resolution is ours: a link's file must exist inside the
repository, and its anchor must be a heading of the target page under GitHub's slug rules
(lowercase, punctuation dropped, each space a '-', repeated headings suffixed -1, -2, ...).
External links (http, https, mailto) are not checked: the tests run offline.
"""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest
from markdown_it import MarkdownIt

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
PARSER = MarkdownIt("commonmark").enable("table")


def github_slug(heading: str) -> str:
    """The anchor GitHub gives a heading's text (the rendered text: code spans keep their content)."""
    return re.sub(r"[^\w\- ]", "", heading.lower()).replace(" ", "-")


def parse(page: Path) -> tuple[list[str], list[str]]:
    """(the page's anchors, in order, with duplicate suffixes; every link and image target)."""
    tokens = PARSER.parse(page.read_text(encoding="utf-8"))
    anchors, seen, targets = [], Counter(), []
    for i, token in enumerate(tokens):
        if token.type == "heading_open":
            inline = tokens[i + 1].children
            text = "".join(c.content for c in inline if c.type in ("text", "code_inline"))
            slug = github_slug(text)
            anchors.append(slug if not seen[slug] else f"{slug}-{seen[slug]}")
            seen[slug] += 1
        for child in token.children or ():
            if child.type == "link_open":
                targets.append(child.attrs["href"])
            elif child.type == "image":
                targets.append(child.attrs["src"])
    return anchors, targets


def broken_links(page: Path) -> list[str]:
    problems = []
    for target in parse(page)[1]:
        url = urlsplit(target)
        if url.scheme or url.netloc:  # http(s), mailto: not checked offline
            continue
        path = (page.parent / unquote(url.path)).resolve() if url.path else page
        if not path.is_relative_to(ROOT):
            problems.append(f"{target}: outside the repository (broken on GitHub)")
        elif not path.exists():
            problems.append(f"{target}: no such file {path.relative_to(ROOT)}")
        elif url.fragment and path.suffix == ".md" and unquote(url.fragment) not in parse(path)[0]:
            problems.append(f"{target}: no heading with anchor #{url.fragment} in {path.relative_to(ROOT)}")
    return problems


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_links_and_anchors_resolve(page: Path) -> None:
    problems = broken_links(page)
    assert not problems, f"broken links in {page.relative_to(ROOT)}:\n" + "\n".join(problems)


def test_every_docs_page_links_back_and_is_linked_from_the_readme() -> None:
    readme_targets = {(ROOT / urlsplit(t).path).resolve() for t in parse(ROOT / "README.md")[1]}
    for page in PAGES[1:]:
        assert parse(page)[1][:1] == ["../README.md"], f"{page.name}: start it with [← README](../README.md)"
        assert page in readme_targets, f"README.md does not link {page.relative_to(ROOT)}"


def test_github_slug() -> None:
    assert github_slug('"Unable to acquire lock"') == "unable-to-acquire-lock"
    assert github_slug("Configuration: conf/, composed into params.yaml") == (
        "configuration-conf-composed-into-paramsyaml")
    assert github_slug("Seeds: every number is a distribution") == "seeds-every-number-is-a-distribution"
    assert github_slug("An interrupted dvc repro: broken or short dvc.lock") == (
        "an-interrupted-dvc-repro-broken-or-short-dvclock")
