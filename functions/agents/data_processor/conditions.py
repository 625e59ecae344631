"""Filter conditions as SQL: values always travel as parameters, cast to a type chosen here.

The value is checked against the column's kind before DuckDB sees it, so a mistake reads as
``conditions[0].value: column 'price' holds numbers; 'cheap' is not a number`` rather than as a
DuckDB conversion error.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from functions.agents.data_processor.sandbox import quote
from functions.agents.data_processor.table import BEYOND_DOUBLE, Column, Table, text_of
from shared.errors import BadRequest

COMPARISONS = {"==": "=", "!=": "IS DISTINCT FROM", "<": "<", "<=": "<=", ">": ">", ">=": ">="}
ORDERING = {"<", "<=", ">", ">="}
MAX_IN_VALUES = 1_000


@dataclass(frozen=True)
class Condition:
    column: str
    op: str
    """One of ``COMPARISONS``, ``contains`` or ``in``."""
    value: Any


def where_clause(table: Table, conditions: list[Condition], params: list[Any]) -> str:
    """``WHERE a AND b ...`` (or nothing), appending each value to ``params``."""
    parts = []
    for index, condition in enumerate(conditions):
        where = f"conditions[{index}]"
        column = table.column(condition.column, f"{where}.column")
        parts.append(condition_sql(column, condition, where, params))
    return f" WHERE {' AND '.join(parts)}" if parts else ""


def condition_sql(column: Column, condition: Condition, where: str, params: list[Any]) -> str:
    ident = quote(column.name)
    op, value = condition.op, condition.value
    if op == "contains":
        if value is None or isinstance(value, dict | list):
            raise BadRequest(f"{where}.value: 'contains' needs text to look for, got {value!r}")
        params.append(text_of(value).lower())
        # strpos, not LIKE: the value is plain text, so '%' and '_' in it must not be wildcards.
        return f"strpos(lower(CAST({ident} AS VARCHAR)), CAST(? AS VARCHAR)) > 0"
    if op == "in":
        sql_type, values = _in_values(column, value, where)
        params.append(values)
        return f"{ident} IN (SELECT unnest(CAST(? AS {sql_type}[])))"
    if value is None:
        if op in ("==", "!="):
            return f"{ident} IS {'NOT ' if op == '!=' else ''}NULL"
        raise BadRequest(f"{where}.value: {op!r} cannot compare with null")
    sql_type, coerced = coerce(column, op, value, where)
    params.append(coerced)
    return f"{ident} {COMPARISONS[op]} CAST(? AS {sql_type})"


def _in_values(column: Column, value: Any, where: str) -> tuple[str, list[Any]]:
    if not isinstance(value, list) or not value:
        raise BadRequest(f"{where}.value: 'in' needs a non-empty list of values, got {value!r}")
    if len(value) > MAX_IN_VALUES:
        raise BadRequest(f"{where}.value: 'in' takes at most {MAX_IN_VALUES} values")
    if any(item is None for item in value):
        raise BadRequest(f"{where}.value: 'in' cannot match null; use op '==' with null")
    coerced = [coerce(column, "in", item, f"{where}.value[{i}]") for i, item in enumerate(value)]
    types = {sql_type for sql_type, _ in coerced}
    # Integers and decimals in one list compare as DOUBLE; other kinds give one type per column.
    sql_type = "DOUBLE" if len(types) > 1 else types.pop()
    return sql_type, [item for _, item in coerced]


def coerce(column: Column, op: str, value: Any, where: str) -> tuple[str, Any]:
    """The SQL type to cast ``value`` to, and the value as that type wants it."""
    if isinstance(value, dict | list):
        raise BadRequest(f"{where}: {op!r} compares with one value, got {type(value).__name__}")
    kind = column.kind
    if kind == "number":
        return _number(column, value, where)
    if kind == "boolean":
        return "BOOLEAN", _boolean(column, value, where)
    if kind == "temporal":
        return column.sql_type, _temporal(column, value, where)
    if kind == "json":
        raise BadRequest(
            f"{where}: column {column.name!r} holds nested objects or arrays; use op 'contains' "
            "or the sql operation with DuckDB's JSON functions"
        )
    if op in ORDERING and not isinstance(value, str):
        raise BadRequest(
            f"{where}: column {column.name!r} is {column.describe_type()}, so {op!r} would "
            f"compare text, not numbers; compare with text or clean the column"
        )
    return "VARCHAR", text_of(value)


def _number(column: Column, value: Any, where: str) -> tuple[str, Any]:
    number = _as_number(value)
    if number is None:
        raise BadRequest(
            f"{where}: column {column.name!r} holds numbers; {value!r} is not a number"
        )
    if isinstance(number, int) and -(2**63) <= number < 2**63:
        return "BIGINT", number
    try:
        return "DOUBLE", float(number)
    except OverflowError:
        raise BadRequest(
            f"{where}: the integer compared with {column.name!r} {BEYOND_DOUBLE}"
        ) from None


def _as_number(value: Any) -> int | float | None:
    """A JSON number, or text that spells one (models often quote numbers); None otherwise."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return value
    if isinstance(value, str):
        text = value.strip()
        try:
            return int(text) if text.lstrip("+-").isdigit() else float(text)
        except ValueError:
            return None
    return None


def _boolean(column: Column, value: Any, where: str) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    raise BadRequest(f"{where}: column {column.name!r} holds true/false; {value!r} is not one")


def _temporal(column: Column, value: Any, where: str) -> date | datetime:
    parse = date.fromisoformat if column.sql_type == "DATE" else datetime.fromisoformat
    example = "2024-05-31" if column.sql_type == "DATE" else "2024-05-31T13:45:00"
    if isinstance(value, str):
        try:
            return parse(value.strip())
        except ValueError:
            pass
    raise BadRequest(
        f"{where}: column {column.name!r} holds {column.sql_type} values; "
        f"{value!r} is not one (write it like {example!r})"
    )
