"""The documentation's own promises (issue 11): the README stays a user's page of at most 450
lines, and every relative link between README.md, CONTRIBUTING.md, CHANGELOG.md, docs/ and
contrib/ resolves: the file exists and, for `#anchor`, the target has a heading with GitHub's
slug for it."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PAGES = sorted([*ROOT.glob("*.md"), *(ROOT / "docs").rglob("*.md"), *(ROOT / "contrib").rglob("*.md")])
LINK = re.compile(r"(?<!!)\[(?:[^\]\\]|\\.)*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
FENCE = re.compile(r"^\s*(```|~~~)")


def prose_lines(text: str) -> list[str]:
    """The lines outside fenced code blocks, inline code spans blanked out."""
    out, fenced = [], False
    for line in text.splitlines():
        if FENCE.match(line):
            fenced = not fenced
            continue
        if not fenced:
            out.append(re.sub(r"`[^`]*`", lambda m: " " * len(m.group(0)), line))
    return out


def github_slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, markup and punctuation dropped (letters, digits,
    `-`, `_` and spaces stay), each space a hyphen (github/cmark-gfm's html renderer; the same
    rule as the `github-slugger` package)."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link in a heading: its text
    text = text.replace("`", "").strip().lower()
    text = "".join(ch for ch in text if ch.isalnum() or ch in "-_ ")
    return text.replace(" ", "-")


def anchors(page: Path) -> set[str]:
    seen: dict[str, int] = {}
    out = set()
    fenced = False
    for line in page.read_text(encoding="utf-8").splitlines():
        if FENCE.match(line):
            fenced = not fenced
            continue
        m = None if fenced else re.match(r"^#{1,6}\s+(.*?)\s*#*\s*$", line)
        if m:
            slug = github_slug(m.group(1))
            n = seen.get(slug, 0)
            seen[slug] = n + 1
            out.add(slug if n == 0 else f"{slug}-{n}")  # GitHub numbers repeated headings
    return out


def broken_links(page: Path, root: Path = ROOT) -> list[str]:
    bad = []
    for lineno, line in enumerate(prose_lines(page.read_text(encoding="utf-8")), 1):
        for target in LINK.findall(line):
            if re.match(r"^[a-z][a-z0-9+.-]*:", target):  # https:, mailto: ...: not ours to check
                continue
            file_part, _, anchor = target.partition("#")
            dest = (page.parent / file_part).resolve() if file_part else page
            where = f"{page.relative_to(root)}:{lineno}: {target}"
            if not dest.exists():
                bad.append(f"{where}: no such file")
            elif anchor and (dest.is_dir() or dest.suffix != ".md"):
                bad.append(f"{where}: anchor on a file that is not Markdown")
            elif anchor and anchor not in anchors(dest):
                bad.append(f"{where}: no heading with that anchor")
    return bad


def test_the_pages_are_found() -> None:
    names = {p.relative_to(ROOT).as_posix() for p in PAGES}
    assert {"README.md", "CONTRIBUTING.md", "CHANGELOG.md", "docs/README.md", "docs/model.md",
            "docs/validation.md", "docs/performance.md", "docs/failures.md"} <= names


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_relative_links_resolve(page: Path) -> None:
    assert broken_links(page) == []


def test_readme_is_at_most_450_lines() -> None:
    assert len((ROOT / "README.md").read_text(encoding="utf-8").splitlines()) <= 450


def test_readme_links_to_the_moved_material() -> None:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    for target in ("docs/model.md", "docs/validation.md", "docs/performance.md", "docs/failures.md",
                   "CONTRIBUTING.md"):
        assert f"]({target}" in text, target


@pytest.mark.parametrize(("heading", "slug"), [
    ("Token-ring model: `fsyncprobe model`", "token-ring-model-fsyncprobe-model"),
    ("Cluster: `fsyncprobe cluster REPORT.json... | DIR`", "cluster-fsyncprobe-cluster-reportjson--dir"),
    ("Corosync facts it uses (3.1.x; Debian 12 ships 3.1.7)", "corosync-facts-it-uses-31x-debian-12-ships-317"),
    ("The stall probe on a throttled disk: no effect seen", "the-stall-probe-on-a-throttled-disk-no-effect-seen"),
])
def test_github_slug(heading: str, slug: str) -> None:
    assert github_slug(heading) == slug


def test_a_broken_link_is_found(tmp_path: Path) -> None:
    (tmp_path / "a.md").write_text("# Top\n\n## Two words\n\n[ok](#two-words) [self](a.md#top)\n"
                                   "[gone](b.md) [bad](#nothing) `[code](c.md)`\n```\n[fenced](d.md)\n```\n")
    found = broken_links(tmp_path / "a.md", tmp_path)
    assert [f.split(": ", 1)[1] for f in found] == ["b.md: no such file", "#nothing: no heading with that anchor"]

