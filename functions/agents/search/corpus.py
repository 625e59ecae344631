"""Read the corpus folder and split each document into sections, so that a hit is specific.

A Markdown file is split at its headings (outside fenced code blocks): the document's title is
its first ``#`` heading (else the file name) and each section is titled ``Document › Heading``.
A plain-text file is one section titled with its file name.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from shared.errors import NotConfigured
from shared.logs import get_logger

EXTENSIONS = (".md", ".txt")
_HEADING = re.compile(r"^(#{1,6})\s+(.+?)\s*#*\s*$")
_FENCE = re.compile(r"^\s*(```|~~~)")

log = get_logger("search.corpus")


@dataclass(frozen=True)
class Section:
    source: str
    """The file's path relative to the corpus folder, with ``/`` separators."""
    title: str
    """``Document title › Section heading`` (just the document title for its opening text)."""
    body: str


def load_sections(root: Path, max_file_bytes: int) -> list[Section]:
    """Every section of every ``*.md``/``*.txt`` file under ``root``, in a stable order."""
    if not root.is_dir():
        raise NotConfigured(
            f"the search corpus folder {root} does not exist: set corpus_dir in "
            "config/search.yaml or the SEARCH_CORPUS_DIR environment variable"
        )
    sections: list[Section] = []
    for path in _documents(root):
        text = _read(path, max_file_bytes)
        if text is None:
            continue
        source = path.relative_to(root).as_posix()
        if path.suffix.lower() == ".md":
            sections.extend(split_markdown(text, source, fallback_title=path.name))
        elif text.strip():
            sections.append(Section(source=source, title=path.name, body=text.strip()))
    return sections


def _read(path: Path, max_file_bytes: int) -> str | None:
    """The file's text, or None (logged) when it is too large or unreadable: one bad file
    should not take search down for the rest of the corpus."""
    try:
        size = path.stat().st_size
        if size > max_file_bytes:
            log.warning("skipping large file", extra={"path": str(path), "bytes": size})
            return None
        return path.read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        log.warning("skipping unreadable file", extra={"path": str(path), "error": str(exc)})
        return None


def _documents(root: Path) -> Iterator[Path]:
    for path in sorted(root.rglob("*")):
        hidden = any(part.startswith(".") for part in path.relative_to(root).parts)
        if path.suffix.lower() in EXTENSIONS and path.is_file() and not hidden:
            yield path


def split_markdown(text: str, source: str, fallback_title: str) -> list[Section]:
    """Split at headings; the first level-1 heading names the document."""
    parts = list(_heading_blocks(text))
    title = next((heading for level, heading, _ in parts if level == 1), fallback_title)
    sections = []
    for level, heading, lines in parts:
        body = clean("\n".join(lines))
        if not body:
            continue  # a heading straight followed by a sub-heading has nothing to find
        section_title = title if level in (0, 1) else f"{title} › {heading}"
        sections.append(Section(source=source, title=section_title, body=body))
    return sections


def _heading_blocks(text: str) -> Iterator[tuple[int, str, list[str]]]:
    """``(level, heading, lines)`` per block; level 0 is text before the first heading."""
    level, heading, lines = 0, "", []
    in_fence = False
    for line in text.splitlines():
        if _FENCE.match(line):
            in_fence = not in_fence  # a "# comment" inside a code block is not a heading
        match = None if in_fence else _HEADING.match(line)
        if match is None:
            lines.append(line)
            continue
        yield level, heading, lines
        level, heading, lines = len(match.group(1)), match.group(2), []
    yield level, heading, lines


def clean(text: str) -> str:
    # Bold markers are dropped so that the only ** in a snippet are the ones marking matches.
    return text.replace("**", "").strip()
