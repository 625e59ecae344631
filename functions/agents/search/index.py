"""An in-memory SQLite FTS5 index over the corpus sections, ranked with bm25.

The index is built on the first query, in memory (a function's file system may be read-only),
and kept for the life of the process. A failed build (say, the corpus folder is not mounted
yet) is not cached: the next query tries again.
"""

from __future__ import annotations

import re
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from functions.agents.search.corpus import Section, load_sections
from shared.errors import BadRequest, NotConfigured
from shared.logs import get_logger

MARK = "**"
"""Put around matched words in snippets (Markdown bold, which readers and models both know)."""
MAX_TERMS = 32
_STOPWORD_TEXT = (
    "a an and are as at be by can do does for from how i in is it of on or that the this to "
    "what when where which who why with"
)
STOPWORDS = frozenset(_STOPWORD_TEXT.split())
_WORD = re.compile(r"\w+")
# Title matches count double: a section named after the query is usually the answer.
_TITLE_WEIGHT, _BODY_WEIGHT = 2.0, 1.0

log = get_logger("search.index")


@dataclass(frozen=True)
class Hit:
    title: str
    source: str
    snippet: str
    score: float
    """Relevance, higher is better: bm25 negated (SQLite's bm25 is lower-is-better)."""


def query_terms(query: str) -> list[str]:
    """The words of ``query``, lower-cased, de-duplicated, in order; FTS syntax is not honoured.

    Underscores split words in the index (unicode61) but are kept here, so ANTHROPIC_API_KEY
    becomes one quoted phrase that matches those three words in a row.
    """
    terms: list[str] = []
    for word in _WORD.findall(query.lower()):
        if any(char.isalnum() for char in word) and word not in terms:
            terms.append(word)
    # Words like "how" and "the" match nearly every section and crowd the snippets; drop them
    # unless nothing else is left ("the who" still searches).
    content = [term for term in terms if term not in STOPWORDS]
    return (content or terms)[:MAX_TERMS]


def match_expression(terms: list[str]) -> str:
    """Each term quoted (so AND, NEAR, *, :, ^ are just words) and joined with OR, so that
    a section with some of the words still ranks, below those with more of them."""
    if not terms:
        raise BadRequest("the query has no words to search for: send some words, e.g. 'gateway'")
    return " OR ".join(f'"{term}"' for term in terms)


class SearchIndex:
    """Full-text search over the sections of every document in ``corpus_dir``."""

    def __init__(self, corpus_dir: Path, *, snippet_tokens: int, max_file_bytes: int) -> None:
        self.corpus_dir = corpus_dir
        self._snippet_tokens = snippet_tokens
        self._max_file_bytes = max_file_bytes
        # One connection holds the in-memory database; sqlite3 connections must not be used by
        # two threads at once, and queries take well under a millisecond, so one lock serves.
        self._lock = threading.Lock()
        self._db: sqlite3.Connection | None = None
        self.sections = 0
        self.documents = 0
        self.builds = 0
        """How many times the index was built: once per process, whatever the concurrency."""

    def search(self, terms: list[str], top_k: int) -> list[Hit]:
        match = match_expression(terms)
        with self._lock:
            db = self._ensure_built()
            rows = db.execute(
                "SELECT title, source, snippet(sections, 1, ?, ?, '…', ?),"
                " bm25(sections, ?, ?) AS rank"
                " FROM sections WHERE sections MATCH ? ORDER BY rank LIMIT ?",
                (MARK, MARK, self._snippet_tokens, _TITLE_WEIGHT, _BODY_WEIGHT, match, top_k),
            ).fetchall()
        return [
            # Line breaks from the document are folded: a snippet reads as one line of text.
            Hit(
                title=title,
                source=source,
                snippet=" ".join(snippet.split()),
                score=float(f"{-rank:.6g}"),
            )
            for title, source, snippet, rank in rows
        ]

    def health(self) -> dict[str, Any]:
        """For ``GET /health``: cheap, never builds the index."""
        return {
            "corpus_dir": str(self.corpus_dir),
            "indexed": self._db is not None,
            "documents": self.documents,
            "sections": self.sections,
        }

    def _ensure_built(self) -> sqlite3.Connection:
        if self._db is None:
            sections = load_sections(self.corpus_dir, self._max_file_bytes)
            if not sections:
                raise NotConfigured(
                    f"the search corpus folder {self.corpus_dir} has no *.md or *.txt documents"
                )
            self._db = _build(sections)
            self.sections = len(sections)
            self.documents = len({section.source for section in sections})
            self.builds += 1
        return self._db


def _build(sections: list[Section]) -> sqlite3.Connection:
    started = time.perf_counter()
    db = sqlite3.connect(":memory:", check_same_thread=False)
    try:
        # porter over unicode61: "running" finds "run", accents and case are folded.
        db.execute(
            "CREATE VIRTUAL TABLE sections USING fts5("
            "title, body, source UNINDEXED, tokenize='porter unicode61 remove_diacritics 2')"
        )
    except sqlite3.OperationalError as exc:
        db.close()
        raise NotConfigured(f"this Python's SQLite cannot do full-text search: {exc}") from exc
    db.executemany(
        "INSERT INTO sections (title, body, source) VALUES (?, ?, ?)",
        [(section.title, section.body, section.source) for section in sections],
    )
    db.commit()
    elapsed_ms = round((time.perf_counter() - started) * 1000, 1)
    log.info("search index built", extra={"sections": len(sections), "ms": elapsed_ms})
    return db
