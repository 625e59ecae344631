"""A throw-away DuckDB per request: no files, no network, no extensions, bounded time and memory.

The guarantees come from DuckDB's own settings, fixed at connect time and then locked, rather than
from inspecting SQL text: ``enable_external_access=false`` makes ``read_csv('/etc/passwd')``,
``COPY``, ``ATTACH`` and ``INSTALL`` fail inside DuckDB whatever the query looks like.
"""

from __future__ import annotations

import base64
import json
import math
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from typing import Any
from uuid import UUID

import duckdb

from functions.agents.data_processor.limits import Limits
from functions.agents.data_processor.table import Table
from shared.errors import BadRequest

TABLE = "data"


def quote(name: str) -> str:
    """A SQL identifier for any column name: double quotes, with inner quotes doubled."""
    return '"' + name.replace('"', '""') + '"'


def connect(limits: Limits) -> duckdb.DuckDBPyConnection:
    return duckdb.connect(
        ":memory:",
        config={
            "enable_external_access": False,
            "autoinstall_known_extensions": False,
            "autoload_known_extensions": False,
            "memory_limit": limits.memory_limit,
            "threads": 1,
            # Last, so that no statement (SET, PRAGMA, a query calling set functions) can undo it.
            "lock_configuration": True,
        },
    )


class Deadline:
    """Interrupts the connection's running query once ``seconds`` have passed."""

    def __init__(self, conn: duckdb.DuckDBPyConnection, seconds: float) -> None:
        self._conn = conn
        self._lock = threading.Lock()
        self._disarmed = False
        self.expired = False
        self._timer = threading.Timer(seconds, self._fire)
        self._timer.daemon = True
        self._timer.start()

    def _fire(self) -> None:
        # The lock keeps the interrupt from racing the connection's close in disarm().
        with self._lock:
            if not self._disarmed:
                self.expired = True
                self._conn.interrupt()

    def disarm(self) -> None:
        self._timer.cancel()
        with self._lock:
            self._disarmed = True


@contextmanager
def session(limits: Limits) -> Iterator[duckdb.DuckDBPyConnection]:
    """A fresh sandboxed connection; DuckDB errors inside become ``BadRequest``s that say why."""
    conn = connect(limits)
    deadline = Deadline(conn, limits.query_timeout_s)
    try:
        yield conn
    except duckdb.Error as exc:
        problem = translate(exc, limits, timed_out=deadline.expired)
        if problem is None:
            raise
        raise problem from exc
    finally:
        deadline.disarm()
        conn.close()


def translate(exc: duckdb.Error, limits: Limits, *, timed_out: bool) -> BadRequest | None:
    """The caller's view of a DuckDB failure; None for DuckDB's own bugs, which stay 500s."""
    if isinstance(exc, duckdb.InterruptException) or timed_out:
        # 400, not 504: the query itself is too expensive, so the same request would time out
        # again; a 504 would invite retries (the gateway retries 504s) instead of a smaller query.
        return BadRequest(
            f"the query exceeded the time limit of {limits.query_timeout_s:g} s; "
            "ask for less work (filter first, avoid cross joins)"
        )
    if isinstance(exc, duckdb.OutOfMemoryException):
        return BadRequest(
            f"the query exceeded the memory limit of {limits.memory_limit}; ask for less data"
        )
    if isinstance(exc, duckdb.PermissionException):
        return BadRequest(
            "the query tried to read a file, a URL or an extension, which this sandbox forbids; "
            f"query only the table {TABLE!r}"
        )
    if isinstance(exc, duckdb.InternalException | duckdb.FatalException):
        return None
    hint = f" (the data is the table {TABLE!r})" if isinstance(exc, duckdb.CatalogException) else ""
    return BadRequest(f"the query failed: {first_paragraph(str(exc))}{hint}")


def first_paragraph(message: str) -> str:
    """DuckDB's message without the ``LINE 1: ...`` excerpt and candidate lists that follow."""
    return message.strip().split("\n\n", 1)[0].replace("\n", " ")


def load(conn: duckdb.DuckDBPyConnection, table: Table) -> None:
    """Create ``data`` from the columns in one statement: each column is a typed list parameter,
    and ``unnest`` side by side zips them into rows (no per-row INSERTs, no pandas)."""
    selects = [
        f"unnest(CAST(${index} AS {column.sql_type}[])) AS {quote(column.name)}"
        for index, column in enumerate(table.columns, start=1)
    ]
    conn.execute(
        f"CREATE TABLE {TABLE} AS SELECT {', '.join(selects)}",
        [column.values for column in table.columns],
    )


@dataclass(frozen=True)
class ResultSet:
    columns: list[str]
    rows: list[dict[str, Any]]
    truncated: bool
    """More rows existed than the limits let through."""

    def as_json(self) -> dict[str, Any]:
        return {
            "columns": self.columns,
            "rows": self.rows,
            "row_count": len(self.rows),
            "truncated": self.truncated,
        }


def fetch(
    conn: duckdb.DuckDBPyConnection,
    sql: str,
    params: Sequence[Any] = (),
    *,
    limit: int | None = None,
    max_rows: int,
    max_bytes: int,
) -> ResultSet:
    """Run ``sql`` and keep ``limit`` rows, within ``max_rows`` rows and ``max_bytes`` of JSON.

    ``truncated`` reports only what the caps cut, not the caller's own ``limit``. DuckDB streams
    results, so ``fetchmany`` also stops the work early for a big answer."""
    keep = min(limit, max_rows) if limit is not None else max_rows
    cursor = conn.execute(sql, list(params))
    columns = unique_names([entry[0] for entry in cursor.description or []])
    fetched = cursor.fetchmany(keep + 1)
    rows: list[dict[str, Any]] = []
    size = 0
    for record in fetched[:keep]:
        row = {name: json_safe(value) for name, value in zip(columns, record, strict=True)}
        size += len(json.dumps(row, ensure_ascii=False))
        if size > max_bytes:
            return ResultSet(columns, rows, truncated=True)
        rows.append(row)
    capped = limit is None or limit > max_rows
    return ResultSet(columns, rows, truncated=capped and len(fetched) > keep)


def unique_names(names: list[str]) -> list[str]:
    """Result columns as distinct keys: ``SELECT 1 AS a, 2 AS a`` gives ``a`` and ``a_2``."""
    seen: set[str] = set()
    unique = []
    for name in names:
        candidate, suffix = name, 2
        while candidate in seen:
            candidate, suffix = f"{name}_{suffix}", suffix + 1
        seen.add(candidate)
        unique.append(candidate)
    return unique


def json_safe(value: Any) -> Any:
    """A DuckDB value as JSON can carry it: decimals as numbers, times as ISO text, NaN as null."""
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Decimal):
        return json_safe(float(value))
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    if isinstance(value, timedelta | UUID):
        return str(value)
    if isinstance(value, bytes):
        return base64.b64encode(value).decode("ascii")
    if isinstance(value, dict):
        return {str(key): json_safe(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(item) for item in value]
    return str(value)
