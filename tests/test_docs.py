"""The documentation's relative links lead somewhere: every ``[text](path#anchor)`` in the
README, docs/, models/, formats/ and training/ names a file of the repository and, where it
names an anchor in a Markdown file, a heading of that file (as GitHub makes anchors)."""

from __future__ import annotations

import re
import unicodedata
from functools import cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FOLDERS = ("docs", "models", "formats", "training", "benchmarks")
DOCS = [ROOT / "README.md", *sorted(p for d in FOLDERS for p in (ROOT / d).rglob("*.md"))]
LINK = re.compile(r"\]\(([^)\s]+)\)")
HEADING = re.compile(r"^#{1,6}\s+(.*?)\s*#*\s*$")


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, only letters, digits, spaces, hyphens and
    underscores kept (Markdown's backticks and asterisks go), spaces made hyphens."""
    kept = (c for c in heading.strip().lower() if c in " -_" or unicodedata.category(c)[0] in "LN")
    return "".join(kept).replace(" ", "-")


@cache
def anchors(path: Path) -> frozenset[str]:
    """The anchors of a Markdown file's headings (a repeated one gets -1, -2, ...), fenced code skipped."""
    seen: dict[str, int] = {}
    found = set()
    fenced = False
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith("```"):
            fenced = not fenced
        m = None if fenced else HEADING.match(line)
        if m:
            s = slug(m.group(1))
            n = seen[s] = seen.get(s, -1) + 1
            found.add(f"{s}-{n}" if n else s)
    return frozenset(found)


def broken_links(doc: Path) -> list[str]:
    out = []
    for target in LINK.findall(doc.read_text(encoding="utf-8")):
        if re.match(r"[a-z][a-z0-9+.-]*:", target):  # http:, mailto:, ...
            continue
        path, _, anchor = target.partition("#")
        dest = (doc.parent / path).resolve() if path else doc
        if not dest.exists():
            out.append(f"{target}: no such file")
        elif anchor and dest.suffix == ".md" and anchor not in anchors(dest):
            out.append(f"{target}: no such heading")
    return out


def test_the_anchor_of_a_heading_is_github_s():
    assert slug("Long groups (B = 21 … 30, session 55)") == "long-groups-b--21--30-session-55"
    assert slug("Mirror images (`mirrors`)") == "mirror-images-mirrors"
    assert slug("GAP-TV (`gaptv`)") == "gap-tv-gaptv"


def test_a_link_to_a_missing_heading_is_found(tmp_path):
    (tmp_path / "a.md").write_text("# Title\n## Part one\n## Part one\n```\n# not a heading\n```\n")
    doc = tmp_path / "b.md"
    doc.write_text("[x](a.md#part-one) [y](a.md#part-one-1) [z](a.md#not-a-heading) [w](c.md) [v](https://e.org/#q)\n")
    assert broken_links(doc) == ["a.md#not-a-heading: no such heading", "c.md: no such file"]


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_leads_to_a_file_and_heading(doc):
    assert broken_links(doc) == []
