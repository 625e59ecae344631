"""The SQL each operation runs over ``data``, built from checked column names and parameters.

Column names come from the table itself (a caller's name is only used to look one up), and
every value is a parameter, so no caller text is pasted into SQL except in the ``sql``
operation, which gets its own checks in ``check_read_only``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import duckdb

from functions.agents.data_processor.conditions import Condition, where_clause
from functions.agents.data_processor.sandbox import TABLE, first_paragraph, quote, unique_names
from functions.agents.data_processor.table import Column, Table, known
from shared.errors import BadRequest

AGGREGATES = {"count": "count", "sum": "sum", "mean": "avg", "min": "min", "max": "max"}
# Whitespace, comments and opening parentheses may come before the first keyword.
_LEADING_NOISE = re.compile(r"^(\s+|--[^\n]*(\n|$)|/\*.*?\*/|\()+", re.DOTALL)
_FIRST_WORD = re.compile(r"^[A-Za-z_]+")


@dataclass(frozen=True)
class Sql:
    text: str
    params: list[Any] = field(default_factory=list)


@dataclass(frozen=True)
class OrderKey:
    column: str
    descending: bool = False


@dataclass(frozen=True)
class Aggregate:
    fn: str
    """One of ``AGGREGATES``."""
    column: str | None = None
    """None only for ``count``: count rows."""


@dataclass(frozen=True)
class RowsPlan:
    """``filter``, ``sort`` and ``select``: which rows, which columns, in what order."""

    columns: list[str] = field(default_factory=list)
    """Empty means all columns."""
    conditions: list[Condition] = field(default_factory=list)
    order_by: list[OrderKey] = field(default_factory=list)


@dataclass(frozen=True)
class GroupPlan:
    group_by: list[str]
    aggregates: list[Aggregate]
    conditions: list[Condition] = field(default_factory=list)
    order_by: list[OrderKey] = field(default_factory=list)
    """Names of output columns; default: the group columns, ascending."""


def rows_sql(table: Table, plan: RowsPlan) -> Sql:
    params: list[Any] = []
    picked = [table.column(name, f"columns[{i}]") for i, name in enumerate(plan.columns)]
    projection = ", ".join(quote(column.name) for column in picked) or "*"
    where = where_clause(table, plan.conditions, params)
    order = [
        (table.column(key.column, f"order_by[{i}].column").name, key.descending)
        for i, key in enumerate(plan.order_by)
    ]
    return Sql(f"SELECT {projection} FROM {TABLE}{where}{_order_by(order)}", params)


def group_sql(table: Table, plan: GroupPlan) -> Sql:
    params: list[Any] = []
    groups = [table.column(name, f"group_by[{i}]").name for i, name in enumerate(plan.group_by)]
    measures = [_aggregate(table, agg, f"aggregates[{i}]") for i, agg in enumerate(plan.aggregates)]
    names = unique_names(groups + [name for _, name in measures])
    selects = [quote(name) for name in groups] + [
        f"{expression} AS {quote(name)}"
        for (expression, _), name in zip(measures, names[len(groups) :], strict=True)
    ]
    where = where_clause(table, plan.conditions, params)
    group = f" GROUP BY {', '.join(quote(name) for name in groups)}" if groups else ""
    order = [
        (_output_name(names, key.column, index), key.descending)
        for index, key in enumerate(plan.order_by)
    ]
    order = order or [(name, False) for name in groups]  # stable answers for the same question
    return Sql(f"SELECT {', '.join(selects)} FROM {TABLE}{where}{group}{_order_by(order)}", params)


def _aggregate(table: Table, aggregate: Aggregate, where: str) -> tuple[str, str]:
    """The SQL expression and its default output name, e.g. ``avg("price")`` as ``mean_price``."""
    if aggregate.column is None:
        if aggregate.fn != "count":
            raise BadRequest(f"{where}.column: {aggregate.fn!r} needs a column")
        return "count(*)", "count"
    column = table.column(aggregate.column, f"{where}.column")
    _check_aggregate(column, aggregate.fn, where)
    return f"{AGGREGATES[aggregate.fn]}({quote(column.name)})", f"{aggregate.fn}_{column.name}"


def _check_aggregate(column: Column, fn: str, where: str) -> None:
    if fn in ("sum", "mean") and column.kind != "number":
        raise BadRequest(
            f"{where}: {fn} needs a numeric column; {column.name!r} is {column.describe_type()}"
        )
    if fn in ("min", "max") and column.kind == "json":
        raise BadRequest(f"{where}: {fn} cannot order nested values in {column.name!r}")


def _output_name(names: list[str], wanted: str, index: int) -> str:
    if wanted in names:
        return wanted
    for name in names:
        if name.lower() == wanted.lower():
            return name
    raise BadRequest(
        f"order_by[{index}].column: {wanted!r} is not an output column; "
        f"group_by answers with {known(names)}"
    )


def _order_by(keys: list[tuple[str, bool]]) -> str:
    if not keys:
        return ""
    # NULLS LAST both ways: "the top 5" should not be five missing values.
    terms = [f"{quote(name)} {'DESC' if desc else 'ASC'} NULLS LAST" for name, desc in keys]
    return " ORDER BY " + ", ".join(terms)


def describe_sql(table: Table) -> Sql:
    """One pass over the table: count, min, max and mean for every column at once."""
    measures = ["count(*)"]
    for column in table.columns:
        ident = quote(column.name)
        ordered = column.kind in ("number", "temporal")
        measures += [
            f"count({ident})",
            f"min({ident})" if ordered else "NULL",
            f"max({ident})" if ordered else "NULL",
            f"avg({ident})" if column.kind == "number" else "NULL",
        ]
    return Sql(f"SELECT {', '.join(measures)} FROM {TABLE}")


def check_read_only(conn: duckdb.DuckDBPyConnection, query: str) -> str:
    """The query, if it is exactly one SELECT (or WITH ... SELECT) statement; else BadRequest.

    DuckDB's own parser decides (not a regex): it knows that ``PRAGMA`` is a SET and that
    ``WITH ... INSERT`` is an INSERT. The sandbox still stops a SELECT that reads files."""
    try:
        statements = conn.extract_statements(query)
    except duckdb.ParserException as exc:
        raise BadRequest(f"query: {first_paragraph(str(exc))}") from exc
    if len(statements) != 1:
        found = f"{len(statements)} statements" if statements else "no statement"
        raise BadRequest(f"query: send exactly one SELECT statement; found {found}")
    statement = statements[0]
    word = _FIRST_WORD.match(_LEADING_NOISE.sub("", query))
    first_word = word.group(0).upper() if word else query.strip()[:20]
    if statement.type != duckdb.StatementType.SELECT:
        kind = statement.type.name
        what = first_word if first_word == kind else f"{first_word} (a statement of type {kind})"
        raise BadRequest(f"query: only read-only SELECT or WITH queries are allowed, not {what}")
    if first_word not in ("SELECT", "WITH"):
        raise BadRequest(f"query: must start with SELECT or WITH, not {first_word!r}")
    return statement.query
