"""The book speaks of its subject only: no page, chapter, exercise set or benchmark tells how the book was made
(numbered issues of a tracker, sessions, who lent a machine to whom). It says what was measured, with which command,
on which hardware."""

import re
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
FILES = sorted([*ROOT.glob("book/*.md"), *ROOT.glob("notebooks/*.ipynb"), *ROOT.glob("solutions/*.ipynb"),
                *ROOT.glob("exercises/*.ipynb"), *ROOT.glob("benchmarks/*.py"), *ROOT.glob("benchmarks/*.sh"),
                *ROOT.glob("benchmarks/results/*.md")])

MAKING = re.compile("|".join([
    r"\bissues?\s+(?:#\s*)?\d+",  # issue 17, issues 4 and 9, issue #3
    r"(?<![\w&\"'/])#\d+\b(?![0-9a-fA-F])",  # #17 (not a colour such as "#1f77b4", not an html entity)
    r"\bthe issue\b", r"\b(?:issue|bug) tracker\b", r"\bthe tracker\b", r"\bpull requests?\b",
    r"\bsessions?\b", r"\blent\b", r"\blending\b", r"\bhelper (?:sessions?|agents?)\b",
    r"\bfiled\b",
]), re.IGNORECASE)


def texts(path: Path) -> list[tuple[str, str]]:
    """(where, text) of a file: each cell's source for a notebook (markdown and code), the whole text otherwise."""
    if path.suffix == ".ipynb":
        cells = nbformat.read(path, as_version=4).cells
        return [(f"cell {i} ({c.cell_type})", c.source) for i, c in enumerate(cells)]
    return [("", path.read_text(encoding="utf-8"))]


def making_words(path: Path) -> list[str]:
    """Every phrase of `path` that speaks of how the book was made, with where it is."""
    found = []
    for where, text in texts(path):
        for m in MAKING.finditer(text):
            context = " ".join(text[max(0, m.start() - 40):m.end() + 40].split())
            found.append(f"{where}: {m.group(0)!r} in ...{context}...")
    return found


@pytest.mark.parametrize("path", FILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_the_book_speaks_of_its_subject_only(path):
    assert making_words(path) == []


@pytest.mark.parametrize("text", ["as issue 17 asked", "see #17", "(issues 4 and 9)", "the issue's calibration",
                                  "a GPU lent to the session", "an H200 lent to this chapter for 15 minutes",
                                  "filed by a helper session", "the tracker says"])
def test_the_patterns_find_words_about_the_making(text):
    assert MAKING.search(text), text


@pytest.mark.parametrize("text", ["two helpers that later chapters reuse", "colour '#1f77b4'", "## 2. Reptile",
                                  "an issue of support order", "the lens of inference", "&#8212;", "step 17"])
def test_the_patterns_leave_ordinary_prose_alone(text):
    assert not MAKING.search(text), text
