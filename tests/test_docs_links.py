"""The documentation is self-contained: links resolve inside the repository, and citations name
sections that exist.

Heading format these tests rely on
----------------------------------
Numbered sections of ``docs/conventions.md`` are level-2 headings that start with ``§`` and the
number, e.g. ``## §3. Loss and training``; lettered sections of ``docs/experiments.md`` likewise,
e.g. ``## §C. Chizat, Oyallon & Bach 2019 ...``. A plain ``## 3. Loss and training`` is also
accepted. A citation is the file name followed by one or more section marks:
``docs/conventions.md §2``, ``docs/conventions.md §2 and §4``, ``[conventions.md](conventions.md)
§1–§2``, ``docs/experiments.md §A``. Keep the numbers stable: code cites them.

What is checked
---------------
1. Every relative markdown link ``[text](target)`` or image ``![alt](target)`` in ``README.md`` and
   ``docs/**/*.md`` (outside code spans and fenced blocks) points to an existing file or folder
   inside the repository; ``http(s):``/``mailto:`` and other URL schemes and pure ``#anchors``
   are ignored, a ``#fragment`` or ``?query`` is stripped.
2. Nothing users receive refers to the design folder outside the repository (``../shared``,
   ``shared/design``, ``shared/papers``, ``/work/shared``).
3. Nothing cites the out-of-repo design files by name (``CONVENTIONS §2``, ``CONVENTIONS.md``,
   ``EXPERIMENTS.md``, ``SNAKEMAKE-NOTES``, ...): their content is ``docs/conventions.md``,
   ``docs/experiments.md`` and ``docs/references.md``.
4. Every ``conventions.md §N`` / ``experiments.md §X`` citation names an existing heading.
5. ``docs/index.md`` has one row per page of ``docs/`` (each page linked once), and the README
   links to it.
6. Nothing users read imports the removed top-level modules ``lazyphase.config``, ``.train``,
   ``.jobs`` or ``.cli`` (the homes are ``lazyphase.cells``, ``lazyphase.core.train`` and
   ``lazyphase.pipeline.*``).
"""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import unquote

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
CONVENTIONS = DOCS / "conventions.md"
EXPERIMENTS = DOCS / "experiments.md"

# what users receive: scanned for references to the outside design folder and files
SCANNED = ["README.md", "docs", "src", "workflow", "scripts", "config.yaml", "config", "profiles"]
SKIP_DIRS = {"__pycache__", ".snakemake", ".pytest_cache", ".ruff_cache"}

FENCE = re.compile(r"^(```|~~~).*?^\1[^\n]*$", re.S | re.M)
CODE_SPAN = re.compile(r"(`+)(?:(?!\1).)+?\1", re.S)
# [text](target) and ![alt](target), with an optional "title"; text may hold one level of [...]
LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\[\]]*\])*\]\(\s*<?([^)\s>]+)>?(?:\s+[\"'(][^)]*)?\)")
SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:")

OUTSIDE = ["../shared", "shared/design", "shared/papers", "/work/shared"]
DESIGN_FILE_CITE = re.compile(
    r"\bCONVENTIONS\b"  # CONVENTIONS §2, CONVENTIONS.md, "the CONVENTIONS network"
    r"|\bEXPERIMENTS(?:\.md\b|\s*§|\s+section\b)"  # not the Python name EXPERIMENTS = ...
    r"|SNAKEMAKE-NOTES|\bPEERS\.md\b|ARCHITECTURE-REVIEW"
)

HEADING_NUM = re.compile(r"^#{1,6}\s+(?:§\s*(\d+)\b|(\d+)\.\s)", re.M)
HEADING_LETTER = re.compile(r"^#{1,6}\s+(?:§\s*([A-Z])\b|([A-Z])\.\s)", re.M)
# conventions.md §2 | conventions.md §2 and §4 | [conventions.md](conventions.md) §1–§2
_LINKED = r"(?:\]\([^)\s]*\))?"
CITE_NUM = re.compile(
    r"conventions\.md" + _LINKED + r"[\s,]*(§\s*\d+(?:\s*(?:,|and|&|or|–|-|/)\s*§\s*\d+)*)"
)
CITE_LETTER = re.compile(
    r"experiments\.md" + _LINKED + r"[\s,]*(§\s*[A-Z](?:\s*(?:,|and|&|or|–|-|/)\s*§\s*[A-Z])*)\b"
)


def _markdown_files() -> list[Path]:
    return [ROOT / "README.md", *sorted(DOCS.rglob("*.md"))]


def _text_files(names: list[str]):
    """Text files under the given repository paths (binaries and caches skipped)."""
    for name in names:
        path = ROOT / name
        candidates = [path] if path.is_file() else sorted(path.rglob("*")) if path.is_dir() else []
        for f in candidates:
            if not f.is_file() or SKIP_DIRS.intersection(f.relative_to(ROOT).parts):
                continue
            data = f.read_bytes()
            if b"\0" in data:
                continue
            try:
                yield f, data.decode("utf-8")
            except UnicodeDecodeError:
                continue


def _line(text: str, pos: int) -> int:
    return text.count("\n", 0, pos) + 1


def _links(md: Path) -> list[tuple[int, str]]:
    text = md.read_text(encoding="utf-8")
    # blank out code while keeping offsets (for line numbers)
    stripped = FENCE.sub(lambda m: re.sub(r"[^\n]", " ", m.group()), text)
    stripped = CODE_SPAN.sub(lambda m: " " * len(m.group()), stripped)
    return [(_line(stripped, m.start()), m.group(1)) for m in LINK.finditer(stripped)]


def _section_numbers() -> set[int]:
    text = CONVENTIONS.read_text(encoding="utf-8")
    return {int(a or b) for a, b in HEADING_NUM.findall(text)}


def _section_letters() -> set[str]:
    text = EXPERIMENTS.read_text(encoding="utf-8")
    return {a or b for a, b in HEADING_LETTER.findall(text)}


def test_markdown_files_exist():
    for name in ("conventions.md", "experiments.md", "references.md"):
        assert (DOCS / name).is_file(), f"docs/{name} is missing"


@pytest.mark.parametrize("md", _markdown_files(), ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_resolve_inside_repository(md: Path):
    bad = []
    for line, target in _links(md):
        if SCHEME.match(target) or target.startswith("#"):
            continue  # http(s), mailto, ... and in-page anchors
        path = unquote(re.split(r"[#?]", target, maxsplit=1)[0])
        if not path:
            continue
        where = f"{md.relative_to(ROOT)}:{line}: ({target})"
        if path.startswith("/"):
            bad.append(f"{where} is an absolute path; use a path relative to the file")
            continue
        resolved = (md.parent / path).resolve()
        try:
            resolved.relative_to(ROOT)
        except ValueError:
            bad.append(f"{where} points outside the repository")
            continue
        if not resolved.exists():
            bad.append(f"{where} does not exist")
    assert not bad, "broken links:\n" + "\n".join(bad)


def test_link_parser_sees_links():
    """Guard against a parser that silently finds nothing."""
    targets = {t for md in _markdown_files() for _, t in _links(md)}
    assert "docs/conventions.md" in targets
    assert "config/README.md" in targets


def test_nothing_refers_to_the_outside_design_folder():
    hits = []
    for f, text in _text_files(SCANNED):
        for needle in OUTSIDE:
            for m in re.finditer(re.escape(needle), text):
                hits.append(f"{f.relative_to(ROOT)}:{_line(text, m.start())}: {needle}")
    assert not hits, "references to files outside the repository:\n" + "\n".join(hits)


def test_nothing_cites_the_outside_design_files_by_name():
    hits = []
    for f, text in _text_files(SCANNED):
        for m in DESIGN_FILE_CITE.finditer(text):
            row = text.splitlines()[_line(text, m.start()) - 1].strip()
            hits.append(f"{f.relative_to(ROOT)}:{_line(text, m.start())}: {row[:100]}")
    assert not hits, (
        "citations of design files that are not in the repository (cite docs/conventions.md §N, "
        "docs/experiments.md §X or docs/references.md instead):\n" + "\n".join(hits)
    )


def test_conventions_sections_are_numbered_from_one():
    numbers = _section_numbers()
    assert numbers, "no '## §N. Title' headings found in docs/conventions.md"
    assert numbers == set(range(1, max(numbers) + 1)), sorted(numbers)
    assert {"A", "B", "C"} <= _section_letters()


def test_section_citations_exist():
    numbers, letters = _section_numbers(), _section_letters()
    bad = []
    for f, text in _text_files(SCANNED):
        for m in CITE_NUM.finditer(text):
            for n in re.findall(r"\d+", m.group(1)):
                if int(n) not in numbers:
                    bad.append(f"{f.relative_to(ROOT)}:{_line(text, m.start())}: {m.group()}")
        for m in CITE_LETTER.finditer(text):
            for x in re.findall(r"[A-Z]", m.group(1)):
                if x not in letters:
                    bad.append(f"{f.relative_to(ROOT)}:{_line(text, m.start())}: {m.group()}")
    assert not bad, (
        f"citations of sections that docs/conventions.md (sections {sorted(numbers)}) or "
        f"docs/experiments.md (sections {sorted(letters)}) lacks:\n" + "\n".join(bad)
    )


def test_citation_pattern_matches_the_documented_forms():
    text = (
        "see docs/conventions.md §2 and §4; [conventions.md](conventions.md) §1–§3; "
        "docs/conventions.md §12; docs/experiments.md §A"
    )
    found = [n for m in CITE_NUM.finditer(text) for n in re.findall(r"\d+", m.group(1))]
    assert found == ["2", "4", "1", "3", "12"]
    assert [m.group(1) for m in CITE_LETTER.finditer(text)] == ["§A"]


def test_index_has_one_row_per_page():
    text = (DOCS / "index.md").read_text(encoding="utf-8")
    rows = [line for line in text.splitlines() if line.startswith("| ") and "](" in line]
    linked = [t for line in rows for t in re.findall(r"\]\(([a-z0-9_]+\.md)\)", line)]
    pages = sorted(p.name for p in DOCS.glob("*.md") if p.name != "index.md")
    assert sorted(linked) == pages, "docs/index.md needs exactly one row per page of docs/"
    assert "docs/index.md" in {t for _, t in _links(ROOT / "README.md")}


OLD_PATHS = re.compile(r"\blazyphase\.(config|train|jobs|cli)\b(?!\.md)")


def test_docs_use_the_layered_import_paths():
    hits = []
    for md in _markdown_files():
        text = md.read_text(encoding="utf-8")
        for m in OLD_PATHS.finditer(text):
            logger = text[max(0, m.start() - 1)] + text[m.end() : m.end() + 1] == "``"
            if m.group(1) == "train" and logger:
                continue  # the logger name `lazyphase.train`, not a module
            hits.append(f"{md.relative_to(ROOT)}:{_line(text, m.start())}: {m.group()}")
    assert not hits, "old top-level import paths in the docs:\n" + "\n".join(hits)
