"""The README and docs/ point at what is there: every relative link and image, every `docs/...` path named.

Links are resolved from the page that holds them (a README link `docs/cli.md`, a docs page link `cli.md`);
a `#anchor` into a markdown page must be one of that page's headings, slugged as GitHub does.
"""

import re
from pathlib import Path
from typing import Dict, List, Set, Tuple

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]

LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")  # [text](target "title"), ![alt](target)
NAMED_PATH = re.compile(r"(?<![\w/.-])docs/[\w.-]+\.[A-Za-z]+\b")  # docs/cli.md, docs/panel.png in prose or code
FENCE = re.compile(r"^\s*(```|~~~)")
HEADING = re.compile(r"^#{1,6}\s+(.*?)\s*#*\s*$")


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped (not - or _), spaces to hyphens."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link in a heading keeps its text
    text = re.sub(r"[^\w\- ]", "", text.lower())
    return text.replace(" ", "-")


def _prose_lines(text: str) -> List[str]:
    """The page's lines outside fenced code blocks."""
    lines, fenced = [], False
    for line in text.splitlines():
        if FENCE.match(line):
            fenced = not fenced
        elif not fenced:
            lines.append(line)
    return lines


def _anchors(page: Path, cache: Dict[Path, Set[str]]) -> Set[str]:
    if page not in cache:
        anchors: Set[str] = set()
        seen: Dict[str, int] = {}
        for line in _prose_lines(page.read_text(encoding="utf-8")):
            heading = HEADING.match(line)
            if heading:
                slug = _slug(heading.group(1))
                anchors.add(slug if slug not in seen else f"{slug}-{seen[slug]}")
                seen[slug] = seen.get(slug, 0) + 1
        cache[page] = anchors
    return cache[page]


def _links(page: Path) -> List[Tuple[str, str]]:
    """(target, anchor) of every relative link or image on the page, code blocks and spans left out."""
    found = []
    for line in _prose_lines(page.read_text(encoding="utf-8")):
        for target in LINK.findall(re.sub(r"`[^`]*`", "", line)):
            if re.match(r"^[a-z][a-z0-9+.-]*:", target, re.IGNORECASE):  # https:, mailto:, ...
                continue
            path, _, anchor = target.partition("#")
            found.append((path, anchor))
    return found


def test_the_pages_are_found():
    names = {page.name for page in PAGES}
    assert {"README.md", "cli.md", "scripting.md", "performance.md", "development.md", "data-formats.md"} <= names


@pytest.mark.parametrize("page", PAGES, ids=lambda page: page.relative_to(ROOT).as_posix())
def test_every_relative_link_and_image_points_at_a_file(page):
    anchors: Dict[Path, Set[str]] = {}
    broken = []
    for path, anchor in _links(page):
        target = (page.parent / path).resolve() if path else page
        if not target.exists():
            broken.append(f"{path}: no such file")
        elif anchor and target.suffix == ".md" and anchor not in _anchors(target, anchors):
            broken.append(f"{path}#{anchor}: no such heading in {target.relative_to(ROOT).as_posix()}")
    assert broken == []


@pytest.mark.parametrize("page", PAGES, ids=lambda page: page.relative_to(ROOT).as_posix())
def test_every_docs_path_a_page_names_exists(page):
    """`docs/...` in prose, code spans and code blocks names a file from the repository root."""
    named = set(NAMED_PATH.findall(page.read_text(encoding="utf-8")))
    assert sorted(path for path in named if not (ROOT / path).exists()) == []


def test_the_readme_links_every_docs_page():
    """A page no one can reach from the README is a page no one reads."""
    readme_targets = {path for path, _ in _links(ROOT / "README.md")}
    reached = {Path(path).name for path in readme_targets if path.startswith("docs/")}
    for path in list(readme_targets):
        if path.startswith("docs/") and path.endswith(".md") and (ROOT / path).exists():
            reached |= {Path(linked).name for linked, _ in _links(ROOT / path)}
    pages = {page.name for page in PAGES if page.parent.name == "docs"}
    assert sorted(pages - reached) == []


def test_the_slug_is_githubs():
    assert _slug("`python main.py`: the paper's command") == "python-mainpy-the-papers-command"
    batch = "batch-script-csfnetmodulescriptscsfnet_batchpy"
    assert _slug("Batch script (`CSFNetModule/Scripts/csfnet_batch.py`)") == batch
    assert _slug("Evaluation report (`csfnet evaluate --out DIR`)") == "evaluation-report-csfnet-evaluate---out-dir"
