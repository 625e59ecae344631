"""bench/RESULTS.md: every benchmark replaces its own section in place, leaving the others."""

from __future__ import annotations

from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "RESULTS.md"
EMPTY = "# Benchmarks\n"


def splice(text: str, section: str, begin: str, end: str) -> str:
    """``text`` with the part between ``begin`` and ``end`` replaced by ``section`` (which
    carries both markers), or ``section`` appended when the markers are not there yet."""
    if begin in text and end in text:
        before, rest = text.split(begin, 1)
        return before + section + rest.split(end, 1)[1]
    return text.rstrip() + "\n\n" + section + "\n"


def write_between(section: str, begin: str, end: str, path: Path = RESULTS) -> None:
    """Replace the part of ``path`` between the markers ``begin`` and ``end`` by ``section``."""
    text = path.read_text() if path.exists() else EMPTY
    path.write_text(splice(text, section, begin, end))


def write_under_heading(section: str, heading: str, path: Path = RESULTS) -> None:
    """Replace the section of ``path`` that starts at the line ``heading`` (up to the next
    ``## `` heading) by ``section``, or append it."""
    text = path.read_text() if path.exists() else ""
    start = text.find(f"\n{heading}\n")
    if start < 0:
        path.write_text(text.rstrip("\n") + "\n\n" + section)
        return
    end = text.find("\n## ", start + len(heading) + 2)
    rest = text[end:] if end >= 0 else "\n"
    path.write_text(text[: start + 1] + section.rstrip("\n") + "\n" + rest)
