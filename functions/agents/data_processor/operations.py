"""The data_processor's work, in a query process: load the data into a sandboxed DuckDB and
answer the request. Only the query processes import this module (and DuckDB with it): the
server's own process never runs a query, and loading DuckDB was a third of its start
(bench/RESULTS.md, "Cold start"). ``agent.run`` is its entry point.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import duckdb

from functions.agents.data_processor import conditions as filters
from functions.agents.data_processor import query as q
from functions.agents.data_processor.limits import QueryLimits
from functions.agents.data_processor.pool import time_limit_message
from functions.agents.data_processor.sandbox import ResultSet, fetch, json_safe, load, session
from functions.agents.data_processor.table import Table, table_from_csv, table_from_rows
from shared.agent import AgentResult
from shared.errors import BadRequest

if TYPE_CHECKING:
    from functions.agents.data_processor.agent import DataRequest


def run(request: DataRequest, limits: QueryLimits) -> AgentResult:
    """Load the data and answer the request in this process, within the time limit."""
    started = time.perf_counter()
    table = (
        table_from_rows(request.rows, limits)
        if request.rows is not None
        else table_from_csv(request.csv or "", request.delimiter, limits)
    )
    left = limits.query_timeout_s - (time.perf_counter() - started)
    if left <= 0:
        raise BadRequest(time_limit_message(limits.query_timeout_s))
    with session(limits, left) as conn:
        load(conn, table)
        result, sql = _OPERATIONS[request.operation](conn, table, request, limits)
    meta: dict[str, Any] = {
        "operation": request.operation,
        "input_rows": table.row_count,
        "input_columns": len(table.columns),
        "elapsed_ms": round((time.perf_counter() - started) * 1000, 1),
    }
    if request.operation != "sql":
        meta["sql"] = sql
    return AgentResult(result=result, meta=meta)


OperationFn = Callable[
    [duckdb.DuckDBPyConnection, Table, "DataRequest", QueryLimits], tuple[dict[str, Any], str]
]


def _describe(
    conn: duckdb.DuckDBPyConnection, table: Table, request: DataRequest, limits: QueryLimits
) -> tuple[dict[str, Any], str]:
    sql = q.describe_sql(table)
    measures = conn.execute(sql.text).fetchone() or ()
    total, per_column = measures[0], measures[1:]
    columns = []
    for index, column in enumerate(table.columns):
        count, low, high, mean = per_column[index * 4 : index * 4 + 4]
        columns.append(
            {
                "name": column.name,
                "type": column.sql_type,
                "count": count,
                "nulls": total - count,
                "min": json_safe(low),
                "max": json_safe(high),
                "mean": json_safe(mean),
            }
        )
    return {"columns": columns, "row_count": total}, sql.text


def _rows(
    conn: duckdb.DuckDBPyConnection, table: Table, request: DataRequest, limits: QueryLimits
) -> tuple[dict[str, Any], str]:
    plan = q.RowsPlan(
        columns=request.columns,
        conditions=_conditions(request),
        order_by=_order_keys(request),
    )
    sql = q.rows_sql(table, plan)
    return _fetch(conn, sql, request, limits).as_json(), sql.text


def _group(
    conn: duckdb.DuckDBPyConnection, table: Table, request: DataRequest, limits: QueryLimits
) -> tuple[dict[str, Any], str]:
    plan = q.GroupPlan(
        group_by=request.group_by,
        aggregates=[q.Aggregate(fn=a.fn, column=a.column) for a in request.aggregates],
        conditions=_conditions(request),
        order_by=_order_keys(request),
    )
    sql = q.group_sql(table, plan)
    return _fetch(conn, sql, request, limits).as_json(), sql.text


def _sql(
    conn: duckdb.DuckDBPyConnection, table: Table, request: DataRequest, limits: QueryLimits
) -> tuple[dict[str, Any], str]:
    text = q.check_read_only(conn, request.query or "")
    return _fetch(conn, q.Sql(text), request, limits).as_json(), text


def _fetch(
    conn: duckdb.DuckDBPyConnection, sql: q.Sql, request: DataRequest, limits: QueryLimits
) -> ResultSet:
    return fetch(
        conn,
        sql.text,
        sql.params,
        limit=request.limit,
        max_rows=limits.max_result_rows,
        max_bytes=limits.max_result_bytes,
    )


def _conditions(request: DataRequest) -> list[filters.Condition]:
    return [filters.Condition(c.column, c.op, c.value) for c in request.conditions]


def _order_keys(request: DataRequest) -> list[q.OrderKey]:
    return [
        q.OrderKey(key) if isinstance(key, str) else q.OrderKey(key.column, key.descending)
        for key in request.order_by
    ]


_OPERATIONS: dict[str, OperationFn] = {
    "describe": _describe,
    "filter": _rows,
    "sort": _rows,
    "select": _rows,
    "group_by": _group,
    "sql": _sql,
}
