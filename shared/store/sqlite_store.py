"""``sqlite:///path``: the embedded store, one file that every process on the machine shares
(the emulator's ``.agentorch/state.db``; a container's volume path). Python's own ``sqlite3``:
nothing to install.

SQLite calls block, so they run on one thread of their own (one connection, used only there);
the event loop only awaits them. WAL lets readers go on beside the one writer, and a write
waits for another process's at most ``timeout_s`` (``busy_timeout``) before it fails.
Expiry is by wall-clock time (processes share the file, not a clock): an expired key reads
as absent at once, and expired rows are purged every ``PURGE_EVERY`` writes.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar
from urllib.parse import unquote, urlsplit

from shared.errors import ConfigError
from shared.store import Entry

T = TypeVar("T")
PURGE_EVERY = 1000

SCHEMA = """
CREATE TABLE IF NOT EXISTS kv (
    key TEXT PRIMARY KEY, value BLOB NOT NULL, version INTEGER NOT NULL,
    expires_at REAL, is_list INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS list_items (
    key TEXT NOT NULL, seq INTEGER NOT NULL, item BLOB NOT NULL, PRIMARY KEY (key, seq)
);
"""


def sqlite_path(url: str) -> Path:
    """``sqlite:///abs/path`` (or ``sqlite:////abs/path``) or ``sqlite:///./relative``; the
    path must be given."""
    parts = urlsplit(url)
    path = unquote(parts.netloc + parts.path)
    if not path or path == "/":
        raise ConfigError(f"$STORE_URL={url[:80]!r}: name the file, as sqlite:///path/state.db")
    # sqlite:///./state.db: relative to the working folder; sqlite:////abs/state.db
    # (SQLAlchemy's spelling of an absolute path) as sqlite:///abs/state.db.
    if path.startswith(("/./", "//")):
        path = path[1:]
    return Path(path)


class SqliteStore:
    backend = "sqlite"

    def __init__(self, path: Path, timeout_s: float, *, clock: Callable[[], float] = time.time):
        self.path = path
        self._timeout_s = timeout_s
        self._clock = clock
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="store-sqlite")
        self._db: sqlite3.Connection | None = None
        self._writes = 0

    async def get(self, key: str) -> Entry | None:
        return await self._run(self._get, key)

    async def put(
        self, key: str, value: bytes, *, ttl_s: float | None = None, version: int | None = None
    ) -> int | None:
        return await self._run(self._put, key, bytes(value), ttl_s, version)

    async def append(self, key: str, item: bytes, *, ttl_s: float | None = None) -> int:
        return await self._run(self._append, key, bytes(item), ttl_s)

    async def items(self, key: str) -> list[bytes]:
        return await self._run(self._items, key)

    async def delete(self, key: str) -> bool:
        return await self._run(self._delete, key)

    async def create_and_read(
        self, key: str, value: bytes, *, ttl_s: float | None, list_key: str
    ) -> list[bytes] | None:
        return await self._run(self._create_and_read, key, bytes(value), ttl_s, list_key)

    async def append_and_delete(
        self, key: str, item: bytes, *, ttl_s: float | None, delete_key: str
    ) -> int:
        return await self._run(self._append_and_delete, key, bytes(item), ttl_s, delete_key)

    async def aclose(self) -> None:
        await self._run(self._close)
        self._thread.shutdown(wait=False)

    async def _run(self, work: Callable[..., T], *args: object) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._thread, work, *args)

    # ---- on the store's thread -------------------------------------------------------------

    def _connection(self) -> sqlite3.Connection:
        if self._db is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            db = sqlite3.connect(self.path, timeout=self._timeout_s, isolation_level=None)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            db.executescript(SCHEMA)
            self._db = db
        return self._db

    def _row(self, db: sqlite3.Connection, key: str) -> tuple[bytes, int, int] | None:
        row = db.execute(
            "SELECT value, version, is_list FROM kv WHERE key = ? "
            "AND (expires_at IS NULL OR expires_at > ?)",
            (key, self._clock()),
        ).fetchone()
        return None if row is None else (row[0], row[1], row[2])

    def _get(self, key: str) -> Entry | None:
        row = self._row(self._connection(), key)
        return None if row is None or row[2] else Entry(row[0], row[1])

    def _put(self, key: str, value: bytes, ttl_s: float | None, version: int | None) -> int | None:
        with self._writing() as db:
            row = self._row(db, key)
            current = 0 if row is None or row[2] else row[1]
            if version is not None and version != current:
                return None
            db.execute("DELETE FROM list_items WHERE key = ?", (key,))
            db.execute(
                "INSERT OR REPLACE INTO kv VALUES (?, ?, ?, ?, 0)",
                (key, value, current + 1, self._expiry(ttl_s)),
            )
            return current + 1

    def _append(self, key: str, item: bytes, ttl_s: float | None) -> int:
        with self._writing() as db:
            row = self._row(db, key)
            length = row[1] if row is not None and row[2] else 0
            if length == 0:  # absent, expired, or a value: the list starts again
                db.execute("DELETE FROM list_items WHERE key = ?", (key,))
            db.execute("INSERT INTO list_items VALUES (?, ?, ?)", (key, length, item))
            db.execute(
                "INSERT OR REPLACE INTO kv VALUES (?, x'', ?, ?, 1)",
                (key, length + 1, self._expiry(ttl_s)),
            )
            return length + 1

    def _items(self, key: str) -> list[bytes]:
        db = self._connection()
        row = self._row(db, key)
        if row is None or not row[2]:
            return []
        rows = db.execute(
            "SELECT item FROM list_items WHERE key = ? AND seq < ? ORDER BY seq", (key, row[1])
        ).fetchall()
        return [item for (item,) in rows]

    def _delete(self, key: str) -> bool:
        with self._writing() as db:
            present = self._row(db, key) is not None
            db.execute("DELETE FROM kv WHERE key = ?", (key,))
            db.execute("DELETE FROM list_items WHERE key = ?", (key,))
            return present

    def _create_and_read(
        self, key: str, value: bytes, ttl_s: float | None, list_key: str
    ) -> list[bytes] | None:
        if self._put(key, value, ttl_s, 0) is None:
            return None
        return self._items(list_key)

    def _append_and_delete(
        self, key: str, item: bytes, ttl_s: float | None, delete_key: str
    ) -> int:
        length = self._append(key, item, ttl_s)
        self._delete(delete_key)
        return length

    def _close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None

    def _expiry(self, ttl_s: float | None) -> float | None:
        return None if ttl_s is None else self._clock() + ttl_s

    def _writing(self) -> _Transaction:
        self._writes += 1
        return _Transaction(self._connection(), purge_at=self._clock() if self._purge() else None)

    def _purge(self) -> bool:
        return self._writes % PURGE_EVERY == 0


class _Transaction:
    """``BEGIN IMMEDIATE`` (the write lock at once: no upgrade deadlock between processes),
    ``COMMIT`` or ``ROLLBACK``; purges expired rows first when asked."""

    def __init__(self, db: sqlite3.Connection, *, purge_at: float | None) -> None:
        self.db = db
        self.purge_at = purge_at

    def __enter__(self) -> sqlite3.Connection:
        self.db.execute("BEGIN IMMEDIATE")
        if self.purge_at is not None:
            self.db.execute(
                "DELETE FROM list_items WHERE key IN (SELECT key FROM kv WHERE expires_at <= ?)",
                (self.purge_at,),
            )
            self.db.execute("DELETE FROM kv WHERE expires_at <= ?", (self.purge_at,))
        return self.db

    def __exit__(self, kind: object, error: object, trace: object) -> None:
        self.db.execute("COMMIT" if kind is None else "ROLLBACK")
