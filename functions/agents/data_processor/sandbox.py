"""A throw-away DuckDB per request: no files, no network, no extensions, limited time and memory.

The guarantees come from DuckDB's own settings, fixed at connect time and then locked, rather than
from inspecting SQL text: ``enable_external_access=false`` makes ``read_csv('/etc/passwd')``,
``COPY``, ``ATTACH`` and ``INSTALL`` fail inside DuckDB whatever the query looks like. DuckDB
still allows its temp directory (``allowed_directories``) with external access off, and spills
there unencrypted, so there is none: ``temp_directory=''`` turns spilling off, and a query too big
for ``memory_limit`` fails instead of writing. ``home_directory`` is a fixed path that exists
nowhere, so the settings and error messages name no real directory or user; the query process
(``pool``) also runs from ``/``, the one directory the in-memory database's paths then name.

Time and memory: ``memory_limit`` and the timer's ``interrupt()`` act while DuckDB executes,
and ``fetch`` sizes each row inside DuckDB before Python copies a value. Some work escapes them:
a constant evaluated while binding, values ``memory_limit`` does not count (DuckDB computes 2,048
rows at a time, so ``SELECT range(100000) FROM range(1000)`` holds about 1 GB), execution steps
that do not look at the interrupt (a deeply nested ``from_json`` type). The operating system
bounds those: every request's query runs in a process of ``pool``, under ``RLIMIT_AS`` and
``RLIMIT_CPU``, killed at the wall-clock deadline.
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

from functions.agents.data_processor.limits import QueryLimits
from functions.agents.data_processor.pool import time_limit_message
from functions.agents.data_processor.table import Table
from shared.errors import BadRequest

TABLE = "data"
NO_HOME = "/nonexistent"
"""DuckDB's home directory: derived paths (secrets, extensions) then name no real place."""
MAX_NESTING = 32
"""Nesting levels of a list, struct or map value sent as JSON; deeper ones are sent as text."""
_NESTED_TYPES = {"list", "array", "struct", "map", "union"}
_PLAIN_TYPES = {"boolean", "tinyint", "smallint", "integer", "bigint", "hugeint", "double"}


def quote(name: str) -> str:
    """A SQL identifier for any column name: double quotes, with inner quotes doubled."""
    return '"' + name.replace('"', '""') + '"'


def connect(limits: QueryLimits) -> duckdb.DuckDBPyConnection:
    return duckdb.connect(
        ":memory:",
        config={
            "enable_external_access": False,
            "autoinstall_known_extensions": False,
            "autoload_known_extensions": False,
            "memory_limit": limits.memory_limit,
            "temp_directory": "",
            "home_directory": NO_HOME,
            "threads": 1,
            # Both evaluate constant expressions while planning, where memory_limit does not
            # apply and interrupt() is not seen; without them repeat('x', 400000000) is computed
            # while executing, and fails at the limit. The tables are small: plans barely change.
            "disabled_optimizers": "expression_rewriter,statistics_propagation",
            # Last, so that no statement (SET, PRAGMA, a query calling set functions) can undo it.
            "lock_configuration": True,
        },
    )


class QueryTimer:
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
def session(
    limits: QueryLimits, seconds: float | None = None
) -> Iterator[duckdb.DuckDBPyConnection]:
    """A fresh sandboxed connection, interrupted after ``seconds`` (default: the query time
    limit); DuckDB errors inside become ``BadRequest``s that say why."""
    conn = connect(limits)
    timer = QueryTimer(conn, limits.query_timeout_s if seconds is None else max(seconds, 0.0))
    try:
        yield conn
    except duckdb.Error as exc:
        problem = translate(exc, limits, timed_out=timer.expired)
        if problem is None:
            raise
        raise problem from exc
    finally:
        timer.disarm()
        conn.close()


def translate(exc: duckdb.Error, limits: QueryLimits, *, timed_out: bool) -> BadRequest | None:
    """The caller's view of a DuckDB failure; None for DuckDB's own bugs, which stay 500s."""
    if isinstance(exc, duckdb.InterruptException) or timed_out:
        return BadRequest(time_limit_message(limits.query_timeout_s))
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

    ``truncated`` reports only what the caps cut, not the caller's own ``limit``; a first row
    over ``max_bytes`` on its own is a ``BadRequest``. DuckDB sizes each row first
    (``sized_query``) and sends no values for a row over ``max_bytes``: turning a huge value
    into Python objects is outside DuckDB's memory limit, and ``interrupt()`` cannot stop it."""
    keep = min(limit, max_rows) if limit is not None else max_rows
    capped = limit is None or limit > max_rows
    body = statement_body(sql)
    # DESCRIBE binds the query without running it: names and types at no cost.
    described = conn.execute(f"DESCRIBE {body}", list(params)).fetchall()
    columns = unique_names([entry[0] for entry in described])
    types = [conn.sqltype(entry[1]) for entry in described]
    deep = [nesting(sql_type) > MAX_NESTING for sql_type in types]
    # A value Python cannot hold (an interval past timedelta's 999,999,999 days, also inside a
    # list or struct) ends the cursor: then run again with such columns as text, and should
    # another kind fail, every column that is not a plain number or truth value.
    attempts = [
        deep,
        [d or "interval" in _type_ids(t) for d, t in zip(deep, types, strict=True)],
        [d or t.id not in _PLAIN_TYPES for d, t in zip(deep, types, strict=True)],
    ]
    for attempt, as_text in enumerate(attempts):
        query = sized_query(body, columns, types, max_bytes, as_text)
        try:
            return _read(conn.execute(query, list(params)), columns, keep, capped, max_bytes)
        except (OverflowError, ValueError):
            if attempt == len(attempts) - 1:
                raise
    raise AssertionError("unreachable")


def _read(
    cursor: duckdb.DuckDBPyConnection, columns: list[str], keep: int, capped: bool, max_bytes: int
) -> ResultSet:
    rows: list[dict[str, Any]] = []
    total = 0
    # One row at a time: each row fits in max_bytes, but a thousand of them need not.
    while (record := cursor.fetchone()) is not None:
        if len(rows) == keep:
            return ResultSet(columns, rows, truncated=capped)
        row, size = decode(columns, record, max_bytes)
        total += size
        if total > max_bytes and not rows:
            raise BadRequest(
                f"the answer's first row alone is {size} bytes of JSON, over the limit of "
                f"{max_bytes} bytes; select fewer columns or shorter values"
            )
        if total > max_bytes:
            return ResultSet(columns, rows, truncated=True)
        rows.append(row)
    return ResultSet(columns, rows, truncated=False)


def decode(
    columns: list[str], record: tuple[Any, ...], max_bytes: int
) -> tuple[dict[str, Any], int]:
    """A ``sized_query`` record as a JSON-safe row and its JSON size in bytes; no row, and
    DuckDB's estimate of the size, when that estimate is over ``max_bytes``."""
    if record[0] > max_bytes:
        return {}, record[0]
    row = {name: json_safe(value) for name, value in zip(columns, record[1:], strict=True)}
    return row, len(json.dumps(row, ensure_ascii=False).encode())


def statement_body(sql: str) -> str:
    """``sql`` without the semicolons and comments that end it, so it can be a subquery."""
    end = len(sql)
    for start, kind in reversed(duckdb.tokenize(sql)):
        if kind != duckdb.token_type.comment and not sql.startswith(";", start):
            break
        end = start
    return sql[:end]


def sized_query(
    body: str,
    names: Sequence[str],
    types: Sequence[Any],
    max_bytes: int,
    as_text: Sequence[bool] = (),
) -> str:
    """``body``'s rows as ``size, value...``: an estimate of the row's JSON size in bytes, then
    its values, all NULL when the estimate is over ``max_bytes``. ``types`` are DuckDB types
    (``DuckDBPyType``) or their ids; a column marked in ``as_text`` is sent as DuckDB's text.

    The estimate is compact JSON with text unescaped; ``decode`` measures the rows it lets
    through exactly, and those may come out larger (escapes, spaces after commas)."""
    aliases = [f"c{index}" for index in range(len(names))]
    type_ids = [t if isinstance(t, str) else t.id for t in types]
    texts = list(as_text) or [False] * len(names)
    type_ids = ["varchar" if text else t for t, text in zip(type_ids, texts, strict=True)]
    picks = [
        f"CAST({alias} AS VARCHAR) AS {alias}" if text else alias
        for alias, text in zip(aliases, texts, strict=True)
    ]
    # The row object's keys, braces and separators; the values' sizes are added in SQL.
    frame = len(json.dumps(dict.fromkeys(names), ensure_ascii=False).encode()) - 4 * len(names)
    sizes = [
        _json_size(alias, type_id, max_bytes)
        for alias, type_id in zip(aliases, type_ids, strict=True)
    ]
    values = [f"CASE WHEN _size <= {max_bytes} THEN {alias} END" for alias in aliases]
    source = f"(\n{body}\n) AS _result({', '.join(aliases)})"
    if any(texts):
        source = f"(SELECT {', '.join(picks)} FROM {source})"
    return (
        f"SELECT _size, {', '.join(values)} FROM (SELECT *, {' + '.join([str(frame), *sizes])} "
        f"AS _size FROM {source})"
    )


def nesting(sql_type: Any) -> int:
    """How many levels of lists, arrays, structs, maps or unions a type has (0 for a scalar).

    ``sql_type`` is a ``DuckDBPyType`` (``conn.sqltype``), whose module moved between DuckDB
    versions."""
    return max(depth for _, depth in _walk(sql_type))


def _type_ids(sql_type: Any) -> set[str]:
    return {inner.id for inner, _ in _walk(sql_type)}


def _walk(sql_type: Any) -> Iterator[tuple[Any, int]]:
    """The type and every type inside it, each with how many nested types hold it."""
    pending = [(sql_type, 0)]
    while pending:
        current, depth = pending.pop()
        yield current, depth
        if current.id in _NESTED_TYPES:
            pending += [
                (child, depth + 1)
                for _, child in current.children
                if hasattr(child, "id")  # not the size of an array, an enum's values
            ]


# Element counts DuckDB stores with a value: a size bound that costs nothing, so a collection
# too big by its count alone is not serialised by to_json just to be measured.
_COUNT = {"list": "len", "array": "len", "map": "cardinality"}


def _json_size(alias: str, type_id: str, max_bytes: int) -> str:
    """SQL for the JSON size of the value ``alias``, without copying text to measure it."""
    if type_id == "varchar":
        size = f"strlen({alias}) + 2"
    elif type_id == "blob":
        size = f"(octet_length({alias}) + 2) // 3 * 4 + 2"  # json_safe sends base64
    else:
        size = f"strlen(CAST(to_json({alias}) AS VARCHAR))"
    count = _COUNT.get(type_id)
    if count is not None:
        # CASE evaluates a branch only for the rows that take it.
        size = f"CASE WHEN {count}({alias}) > {max_bytes} THEN {count}({alias}) ELSE {size} END"
    return f"coalesce({size}, 4)"  # NULL, which the answer writes as null


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


def json_safe(value: Any, depth: int = 0) -> Any:
    """A DuckDB value as JSON can carry it: decimals as numbers, times as ISO text, NaN as null.

    ``fetch`` sends values nested deeper than ``MAX_NESTING`` as text; a deeper one here is a
    400 rather than a ``RecursionError``."""
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
    if isinstance(value, dict | list | tuple) and depth >= MAX_NESTING:
        raise BadRequest(
            f"a value in the answer nests deeper than {MAX_NESTING} levels; "
            "send it as text (CAST(... AS VARCHAR)) or flatten it"
        )
    if isinstance(value, dict):
        return {str(key): json_safe(item, depth + 1) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(item, depth + 1) for item in value]
    return str(value)
