"""The ``sql`` operation and the sandbox: read-only single SELECTs, no files, bounded time."""

from __future__ import annotations

import re
import time
from datetime import date, datetime, timedelta
from datetime import time as clock
from decimal import Decimal
from typing import Any
from uuid import UUID

import duckdb
import pytest

from functions.agents.data_processor.agent import DataRequest, run
from functions.agents.data_processor.limits import QueryLimits
from functions.agents.data_processor.sandbox import connect, json_safe, sized_query
from shared.agent import parse_input
from shared.errors import BadRequest, ConfigError
from tests.agents.support import function_client

ROWS = [{"city": "Oslo", "temp": 4}, {"city": "Rome", "temp": 18}, {"city": "Lima", "temp": 22}]


def sql(query: str, limits: QueryLimits | None = None, **extra: Any) -> dict[str, Any]:
    request = {"operation": "sql", "rows": ROWS, "query": query, **extra}
    outcome = run(parse_input(DataRequest, request), limits or QueryLimits())
    assert isinstance(outcome.result, dict)
    return outcome.result


def test_select_over_data() -> None:
    result = sql("SELECT city, temp * 2 AS doubled FROM data WHERE temp > 10 ORDER BY temp DESC;")
    assert result == {
        "columns": ["city", "doubled"],
        "rows": [{"city": "Lima", "doubled": 44}, {"city": "Rome", "doubled": 36}],
        "row_count": 2,
        "truncated": False,
    }


def test_with_query_and_leading_comment() -> None:
    result = sql("-- warmest\nWITH w AS (SELECT max(temp) AS t FROM data) SELECT t FROM w")
    assert result["rows"] == [{"t": 22}]


def test_limit_and_cap_apply_to_sql() -> None:
    assert sql("SELECT * FROM data", limit=1)["row_count"] == 1
    capped = sql("SELECT * FROM range(100)", QueryLimits(max_result_rows=5))
    assert (capped["row_count"], capped["truncated"]) == (5, True)


def test_duplicate_result_names_are_made_unique() -> None:
    assert sql("SELECT 1 AS a, 2 AS a")["rows"] == [{"a": 1, "a_2": 2}]


def test_values_are_json_safe() -> None:
    result = sql(
        "SELECT 1.50::DECIMAL(5,2) AS d, DATE '2024-05-31' AS day, 'nan'::DOUBLE AS bad, "
        "INTERVAL 1 DAY AS span, [1, 2] AS list, {'k': 1} AS obj"
    )
    assert result["rows"] == [
        {
            "d": 1.5,
            "day": "2024-05-31",
            "bad": None,
            "span": "1 day, 0:00:00",
            "list": [1, 2],
            "obj": {"k": 1},
        }
    ]


@pytest.mark.parametrize(
    ("query", "problem"),
    [
        ("SELECT * FROM read_csv('/etc/passwd')", "read a file, a URL or an extension"),
        ("SELECT * FROM read_parquet('data.parquet')", "read a file, a URL or an extension"),
        ("SELECT * FROM read_json_auto('/etc/hosts')", "read a file, a URL or an extension"),
        ("SELECT * FROM glob('/etc/*')", "read a file, a URL or an extension"),
        ("SELECT * FROM 'https://example.com/x.csv'", "read a file, a URL or an extension"),
        ("SELECT * FROM '/etc/passwd'", "does not exist"),
        ("COPY data TO '/tmp/out.csv'", "allowed, not COPY"),
        ("ATTACH 'other.db'", "allowed, not ATTACH"),
        ("INSTALL httpfs", "allowed, not INSTALL"),
        ("LOAD httpfs", "allowed, not LOAD"),
        ("PRAGMA threads=4", "allowed, not PRAGMA"),
        ("SET memory_limit='10GB'", "allowed, not SET"),
        ("CREATE TABLE t AS SELECT 1", "allowed, not CREATE"),
        ("INSERT INTO data VALUES ('x', 1)", "allowed, not INSERT"),
        ("DELETE FROM data", "allowed, not DELETE"),
        ("UPDATE data SET temp = 0", "allowed, not UPDATE"),
        ("DROP TABLE data", "allowed, not DROP"),
        ("WITH x AS (SELECT 1) INSERT INTO data SELECT 'x', 1 FROM x", "not WITH"),
        ("SELECT 1; SELECT 2", "exactly one SELECT statement; found 2"),
        ("SELECT 1; DROP TABLE data", "exactly one SELECT statement; found 2"),
        ("  ;  ", "found no statement"),
        ("FROM data", "must start with SELECT or WITH, not 'FROM'"),
        ("SUMMARIZE data", "must start with SELECT or WITH"),
        ("SELEC 1", "syntax error"),
        ("SELECT * FROM weather", "Table with name weather does not exist.*table 'data'"),
        ("SELECT nope FROM data", "the query failed: Binder Error"),
        ("SELECT * FROM query('DROP TABLE data')", "the query failed"),
    ],
)
def test_unsafe_or_invalid_queries_are_400_naming_the_problem(query: str, problem: str) -> None:
    with pytest.raises(BadRequest, match=problem) as caught:
        sql(query)
    assert caught.value.status_code == 400


def test_a_slow_query_is_interrupted_at_the_time_limit() -> None:
    started = time.monotonic()
    with pytest.raises(BadRequest, match=r"exceeded the time limit of 0.2 s") as caught:
        sql(
            "SELECT sum(a.range * b.range) FROM range(100000) a, range(100000) b",
            QueryLimits(query_timeout_s=0.2),
        )
    assert caught.value.status_code == 400
    assert time.monotonic() - started < 3.0  # the query alone would take minutes


def test_a_query_over_the_memory_limit_is_a_400() -> None:
    with pytest.raises(BadRequest, match="exceeded the memory limit of 64MB"):
        sql("SELECT list(range) FROM range(50000000)", QueryLimits(memory_limit="64MB"))


@pytest.mark.parametrize(
    "query",
    [
        # Were 3.5 GB and 1.6 GB, then a time-out: DuckDB computed them while planning, outside
        # its limit, and Python copied the text. Now they are computed within the limit.
        "SELECT list(range(50000000))",
        "SELECT repeat('x', 400000000)",
    ],
)
def test_huge_values_stop_at_the_memory_limit(query: str) -> None:
    with pytest.raises(BadRequest, match="exceeded the memory limit of 256MB"):
        sql(query)


@pytest.mark.parametrize(
    "query", ["SELECT repeat('x', 2000000) AS text", "SELECT range(300000) AS numbers"]
)
def test_a_first_row_over_the_byte_limit_is_a_400_naming_it(query: str) -> None:
    with pytest.raises(BadRequest) as caught:
        sql(query)
    assert caught.value.status_code == 400
    assert re.fullmatch(
        r"the answer's first row alone is \d{7} bytes of JSON, over the limit of 1000000 "
        r"bytes; select fewer columns or shorter values",
        caught.value.message,
    )


def test_big_rows_after_the_first_truncate_the_answer() -> None:
    result = sql("SELECT repeat('x', 600000) AS text FROM range(3)")
    assert (result["row_count"], result["truncated"]) == (1, True)


def test_rows_over_the_byte_limit_reach_python_without_their_values() -> None:
    query = sized_query(
        "SELECT repeat('x', 5000) AS a, [1, 2] AS b", ["a", "b"], ["varchar", "list"], 1000
    )
    conn = connect(QueryLimits())
    try:
        # 14: the keys and punctuation of {"a": ..., "b": ...}; 5: [1,2]; 5002: "xxx...".
        assert conn.execute(query).fetchall() == [(5002 + 5 + 14, None, None)]
        assert conn.execute(query.replace("5000", "5")).fetchall() == [
            (7 + 5 + 14, "xxxxx", [1, 2])
        ]
    finally:
        conn.close()


@pytest.mark.parametrize(
    "query", ["SELECT 1 AS one;", "SELECT 1 AS one -- done", "SELECT 1 AS one; -- done"]
)
def test_a_closing_semicolon_or_comment_is_fine(query: str) -> None:
    assert sql(query)["rows"] == [{"one": 1}]


def test_sandbox_settings_are_locked() -> None:
    conn = connect(QueryLimits())
    try:
        with pytest.raises(duckdb.Error, match="locked"):
            conn.execute("SET enable_external_access = true")
        assert conn.execute("SELECT current_setting('threads')").fetchone() == (1,)
    finally:
        conn.close()


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (Decimal("2.50"), 2.5),
        (float("inf"), None),
        (date(2024, 1, 2), "2024-01-02"),
        (datetime(2024, 1, 2, 3, 4), "2024-01-02T03:04:00"),
        (clock(5, 6), "05:06:00"),
        (timedelta(hours=1), "1:00:00"),
        (UUID(int=1), "00000000-0000-0000-0000-000000000001"),
        (b"hi", "aGk="),
        ((1, Decimal("1")), [1, 1.0]),
    ],
)
def test_json_safe(value: object, expected: object) -> None:
    assert json_safe(value) == expected


def test_limits_from_env() -> None:
    limits = QueryLimits.load(
        {
            "DATA_PROCESSOR_QUERY_TIMEOUT_S": "2.5",
            "DATA_PROCESSOR_MAX_ROWS": "50",
            "DATA_PROCESSOR_MEMORY_LIMIT": "1GB",
        }
    )
    assert (limits.query_timeout_s, limits.max_rows, limits.memory_limit) == (2.5, 50, "1GB")
    assert QueryLimits.load({}) == QueryLimits()


@pytest.mark.parametrize(
    ("variable", "raw"),
    [
        ("DATA_PROCESSOR_QUERY_TIMEOUT_S", "soon"),
        ("DATA_PROCESSOR_MAX_ROWS", "0"),
        ("DATA_PROCESSOR_MAX_ROWS", "1.5"),
        ("DATA_PROCESSOR_MEMORY_LIMIT", "lots"),
    ],
)
def test_bad_limit_variables_stop_start_up_naming_them(variable: str, raw: str) -> None:
    with pytest.raises(ConfigError, match=variable):
        QueryLimits.load({variable: raw})


# Regressions: these answered 500 (OverflowError converting to timedelta, RecursionError in
# json_safe); a value Python or JSON cannot carry is sent as DuckDB's text instead.
@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("SELECT to_days(1000000000) AS v", "1000000000 days"),
        ("SELECT to_days(-1000000000) AS v", "-1000000000 days"),
        ("SELECT INTERVAL '2147483647 months' AS v", "178956970 years 7 months"),
        ("SELECT [INTERVAL '2147483647 months'] AS v", "[178956970 years 7 months]"),
        ("SELECT {'k': to_days(1000000000)} AS v", "{'k': 1000000000 days}"),
        ("SELECT MAP {'k': INTERVAL '2147483647 months'} AS v", "{k=178956970 years 7 months}"),
    ],
)
def test_intervals_beyond_python_are_text(query: str, expected: str) -> None:
    assert sql(query)["rows"] == [{"v": expected}]


def test_other_columns_keep_their_json_types_beside_an_unrenderable_one() -> None:
    result = sql("SELECT to_days(1000000000) AS big, 5 AS n, [1, 2] AS l, INTERVAL 1 DAY AS day")
    # Every interval column of that answer is DuckDB's text; the rest are as always.
    assert result["rows"] == [{"big": "1000000000 days", "n": 5, "l": [1, 2], "day": "1 day"}]


def _deep(levels: int) -> str:
    value, json_type = "[" * levels + "]" * levels, "[" * levels + '"JSON"' + "]" * levels
    return f"SELECT from_json('{value}', '{json_type}') AS v"


@pytest.mark.parametrize("levels", [33, 100, 900])
def test_deeply_nested_values_are_text(levels: int) -> None:
    assert sql(_deep(levels))["rows"] == [{"v": "[" * levels + "]" * levels}]


def test_nesting_up_to_the_limit_stays_json() -> None:
    assert sql(_deep(32))["rows"] == [{"v": _nested(32)}]


def _nested(levels: int) -> list[object]:
    value: list[object] = []
    for _ in range(levels - 1):
        value = [value]
    return value


def test_json_safe_refuses_nesting_it_cannot_render() -> None:
    with pytest.raises(BadRequest, match="nests deeper than 32 levels"):
        json_safe(_nested(2000))


def test_deep_values_over_http_are_never_a_500() -> None:
    client = function_client("data_processor")
    for query in (_deep(900), "SELECT to_days(1000000000) AS v"):
        response = client.post("/", json={"operation": "sql", "rows": ROWS, "query": query})
        assert response.status_code == 200, response.get_json()


def test_the_query_process_makes_room_for_a_larger_duckdb_limit() -> None:
    assert QueryLimits.load({}).process_memory == "1GB"
    roomy = QueryLimits.load({"DATA_PROCESSOR_MEMORY_LIMIT": "2GB"})
    assert roomy.process_memory_bytes >= 2 * 10**9 + 256 * 2**20  # DuckDB and the process
    with pytest.raises(ConfigError, match=r"PROCESS_MEMORY: 1GB is too small .* at least"):
        QueryLimits.load(
            {"DATA_PROCESSOR_MEMORY_LIMIT": "2GB", "DATA_PROCESSOR_PROCESS_MEMORY": "1GB"}
        )
