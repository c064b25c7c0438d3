"""The documentation a newcomer reads: a short README that links one reference page per topic.

Issue 26: README.md at most 25 KB with the two commands; every page of docs/
linked from the README and at most 20 KB (but the SPEC, the contract vendored
as is); every link between the README, docs/ and bench/README.md resolving to
a file of the repository and, when it names one, to a heading of that file
(GitHub's anchor rule).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
DOCS = sorted((ROOT / "docs").glob("*.md"))
PAGES = [README, ROOT / "bench" / "README.md", *DOCS]

FENCE = re.compile(r"^(```|~~~).*?^\1[^\n]*$", re.M | re.S)
LINK = re.compile(r"\]\(([^)\s]+)\)")


def _prose(path: Path) -> str:
    """The page without its fenced code blocks (a ``# comment`` there is no heading)."""
    return FENCE.sub("", path.read_text(encoding="utf-8"))


def _anchors(path: Path) -> set[str]:
    """GitHub's heading anchors: lower case, punctuation dropped, spaces to hyphens."""
    seen: dict[str, int] = {}
    anchors = set()
    for heading in re.findall(r"^#{1,6} +(.+?) *#*$", _prose(path), re.M):
        slug = re.sub(r"[^\w\- ]", "", heading.lower()).replace(" ", "-")
        n = seen.get(slug, 0)
        seen[slug] = n + 1
        anchors.add(slug if n == 0 else f"{slug}-{n}")
    return anchors


def test_the_readme_is_short_and_has_the_two_commands() -> None:
    assert README.stat().st_size <= 25_000, README.stat().st_size
    text = README.read_text(encoding="utf-8")
    assert "make demo" in text and "make test" in text


@pytest.mark.parametrize("page", DOCS, ids=lambda p: p.name)
def test_every_docs_page_is_at_most_20_kb_and_linked_from_the_readme(page: Path) -> None:
    if page.name != "SPEC.md":  # the contract is vendored verbatim, whatever its size
        assert page.stat().st_size <= 20_000, page.stat().st_size
    assert f"](docs/{page.name}" in README.read_text(encoding="utf-8"), page.name


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_link_resolves_to_a_file_and_heading(page: Path) -> None:
    for link in LINK.findall(_prose(page)):
        if re.match(r"[a-z]+:", link):  # https://, mailto: ...
            continue
        target, _, anchor = link.partition("#")
        path = (page.parent / target).resolve() if target else page
        assert path.exists(), f"{page.name}: {link}"
        assert path.is_relative_to(ROOT), f"{page.name}: {link} leaves the repository"
        if anchor and path.suffix == ".md":
            assert anchor in _anchors(path), f"{page.name}: {link}: no such heading"
