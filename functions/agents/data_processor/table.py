"""The request's data as typed columns, ready to load into DuckDB as the table ``data``.

Types are inferred here, in Python, instead of by DuckDB's ``read_csv``/``read_json``: those
readers open files, and the sandbox forbids file access. A column whose values mix kinds (numbers
and text, say) becomes text and is marked ``mixed``, so errors can say why ``sum`` refused it.
"""

from __future__ import annotations

import csv
import io
import json
import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from functions.agents.data_processor.limits import QueryLimits
from shared.errors import BadRequest

_INT64 = (-(2**63), 2**63 - 1)
# Used with fullmatch. Possessive quantifiers (``++``, ``*+``) never give back what they took,
# so a long run of digits followed by something else fails in one pass: the former
# ``\d+\.?\d*`` tried every split of the run, and one 40 KB cell took 44 s.
_INTEGER = re.compile(r"[+-]?+\d++")
_DECIMAL = re.compile(r"[+-]?+(?:\d++(?:\.\d*+)?+|\.\d++)(?:[eE][+-]?+\d++)?+")
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
_TIMESTAMP = re.compile(r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d{1,6})?)?")
_BOOLEANS = {"true": True, "false": False}
# What a number too big for a numeric column is told: DOUBLE tops out near 1.8e308.
BEYOND_DOUBLE = "is beyond ±1.8e308, the largest a numeric column holds"

KIND_BY_TYPE = {
    "BIGINT": "number",
    "DOUBLE": "number",
    "BOOLEAN": "boolean",
    "DATE": "temporal",
    "TIMESTAMP": "temporal",
    "VARCHAR": "text",
    "JSON": "json",
}


@dataclass(frozen=True)
class Column:
    name: str
    sql_type: str
    """One of ``KIND_BY_TYPE``'s keys."""
    values: list[Any]
    """Python values DuckDB converts to ``sql_type`` (None is NULL)."""
    mixed: bool = False
    """The source mixed kinds of values (e.g. numbers and text), so they were kept as text."""

    @property
    def kind(self) -> str:
        """``number``, ``boolean``, ``temporal``, ``text`` or ``json``: what operations fit."""
        return KIND_BY_TYPE[self.sql_type]

    def describe_type(self) -> str:
        """The type as an error message should tell it, with the reason when it surprises."""
        note = " (its values mix numbers, text or other kinds)" if self.mixed else ""
        return f"{self.sql_type}{note}"


@dataclass(frozen=True)
class Table:
    columns: list[Column]
    row_count: int

    def names(self) -> list[str]:
        return [column.name for column in self.columns]

    def column(self, name: str, where: str) -> Column:
        """The column called ``name`` (DuckDB names are case-insensitive, so match that way too)."""
        for column in self.columns:
            if column.name == name:
                return column
        for column in self.columns:
            if column.name.lower() == name.lower():
                return column
        raise BadRequest(f"{where}: unknown column {name!r}; the columns are {known(self.names())}")


def known(names: list[str], shown: int = 30) -> str:
    listed = ", ".join(repr(name) for name in names[:shown])
    more = f" and {len(names) - shown} more" if len(names) > shown else ""
    return listed + more if names else "(none)"


def table_from_rows(rows: list[dict[str, Any]], limits: QueryLimits) -> Table:
    if not rows:
        raise BadRequest("rows: send at least one row")
    if len(rows) > limits.max_rows:
        raise BadRequest(f"rows: {len(rows)} rows is over the limit of {limits.max_rows}")
    names: dict[str, None] = {}  # insertion-ordered set: columns in order of first appearance
    for row in rows:
        for name in row:
            names.setdefault(name, None)
    check_names(list(names), "rows", limits)
    columns = [_json_column(name, [row.get(name) for row in rows]) for name in names]
    return Table(columns=columns, row_count=len(rows))


def table_from_csv(text: str, delimiter: str, limits: QueryLimits) -> Table:
    reader = csv.reader(io.StringIO(text), delimiter=delimiter, strict=True)
    try:
        header = next(reader, None)
        if header is None or not any(cell.strip() for cell in header):
            raise BadRequest("csv: no header line; the first line must name the columns")
        names = [cell.strip() for cell in header]
        check_names(names, "csv", limits)
        records = _csv_records(reader, len(names), limits)
    except csv.Error as exc:
        raise BadRequest(f"csv line {reader.line_num}: {exc}") from exc
    cells_by_column = [[record[index] for record in records] for index in range(len(names))]
    columns = [
        _text_column(name, cells) for name, cells in zip(names, cells_by_column, strict=True)
    ]
    return Table(columns=columns, row_count=len(records))


def _csv_records(reader: Any, width: int, limits: QueryLimits) -> list[list[str]]:
    records: list[list[str]] = []
    for record in reader:
        if not record:
            continue  # a blank line
        if len(record) != width:
            raise BadRequest(
                f"csv line {reader.line_num}: {len(record)} fields, but the header has {width}"
            )
        records.append(record)
        if len(records) > limits.max_rows:
            raise BadRequest(f"csv: more than {limits.max_rows} rows; that is the limit")
    return records


def check_names(names: list[str], where: str, limits: QueryLimits) -> None:
    if not names:
        raise BadRequest(f"{where}: the data has no columns")
    if len(names) > limits.max_columns:
        raise BadRequest(f"{where}: {len(names)} columns is over the limit of {limits.max_columns}")
    seen: dict[str, str] = {}
    for position, name in enumerate(names, start=1):
        if not name or len(name) > 255 or "\x00" in name:
            raise BadRequest(
                f"{where}: column {position} needs a name of 1 to 255 characters, got {name!r}"
            )
        clash = seen.get(name.lower())
        if clash is not None:
            raise BadRequest(
                f"{where}: columns {clash!r} and {name!r} have the same name "
                "(column names are case-insensitive)"
            )
        seen[name.lower()] = name


def text_of(value: Any) -> str:
    """How a non-text value reads in a text column: its JSON form (``true``, ``1.5``, ``[1]``)."""
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def _json_kind(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer" if _INT64[0] <= value <= _INT64[1] else "float"
    if isinstance(value, float):
        return "float"
    if isinstance(value, str):
        return "text"
    return "json"


def _json_column(name: str, values: list[Any]) -> Column:
    kinds = {_json_kind(value) for value in values if value is not None}
    if kinds <= {"integer"}:
        sql_type = "BIGINT" if kinds else "VARCHAR"
        return Column(name, sql_type, values)
    if kinds <= {"integer", "float"}:
        return Column(name, "DOUBLE", [None if v is None else _double(name, v) for v in values])
    if len(kinds) == 1:
        sql_type = {"boolean": "BOOLEAN", "text": "VARCHAR", "json": "JSON"}[kinds.pop()]
        converted = [text_of(v) if sql_type == "JSON" and v is not None else v for v in values]
        return Column(name, sql_type, converted)
    texts = [None if value is None else text_of(value) for value in values]
    return Column(name, "VARCHAR", texts, mixed=True)


def _double(name: str, value: int | float) -> float:
    try:
        return float(value)
    except OverflowError:
        raise BadRequest(f"rows: column {name!r} has an integer that {BEYOND_DOUBLE}") from None


def _text_column(name: str, cells: list[str]) -> Column:
    """Type a CSV column by what all its non-empty cells parse as; empty cells are NULL."""
    stripped = [cell.strip() for cell in cells]
    present = [cell for cell in stripped if cell]
    if not present:
        return Column(name, "VARCHAR", [None] * len(cells))
    for sql_type, matches, convert in _CSV_TYPES:
        if all(matches(cell) for cell in present):
            if sql_type == "DOUBLE":
                _check_integers_fit(name, present)
            return Column(name, sql_type, [convert(cell) if cell else None for cell in stripped])
    looks_numeric = any(_DECIMAL.fullmatch(cell) for cell in present)
    return Column(name, "VARCHAR", [cell or None for cell in stripped], mixed=looks_numeric)


def _check_integers_fit(name: str, cells: list[str]) -> None:
    """Refuse integer cells that ``float`` would quietly turn into infinity."""
    for cell in cells:
        if _INTEGER.fullmatch(cell) and math.isinf(float(cell)):
            raise BadRequest(f"csv: column {name!r} has an integer that {BEYOND_DOUBLE}")


def _is_int64(cell: str) -> bool:
    # An int64 has at most 19 digits; counted first because int() refuses over 4300 digits.
    return (
        bool(_INTEGER.fullmatch(cell))
        and len(cell.lstrip("+-").lstrip("0")) <= 19
        and _INT64[0] <= int(cell) <= _INT64[1]
    )


def _is_date(cell: str) -> bool:
    return bool(_DATE.fullmatch(cell)) and _parses(date.fromisoformat, cell)


def _is_timestamp(cell: str) -> bool:
    return bool(_TIMESTAMP.fullmatch(cell)) and _parses(datetime.fromisoformat, cell)


def _parses(parse: Callable[[str], object], cell: str) -> bool:
    try:
        parse(cell)
    except ValueError:
        return False
    return True


# Tried in order: the first type every non-empty cell of a column parses as wins.
_CSV_TYPES: list[tuple[str, Callable[[str], bool], Callable[[str], Any]]] = [
    ("BIGINT", _is_int64, int),
    ("DOUBLE", lambda cell: bool(_DECIMAL.fullmatch(cell)), float),
    ("BOOLEAN", lambda cell: cell.lower() in _BOOLEANS, lambda cell: _BOOLEANS[cell.lower()]),
    ("DATE", _is_date, date.fromisoformat),
    ("TIMESTAMP", _is_timestamp, datetime.fromisoformat),
]
