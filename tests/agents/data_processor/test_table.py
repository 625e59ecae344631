"""Loading the request's data: type inference for JSON rows and CSV, names, limits."""

from __future__ import annotations

import time
from datetime import date, datetime
from typing import Any

import pytest

from functions.agents.data_processor.limits import QueryLimits
from functions.agents.data_processor.table import Table, table_from_csv, table_from_rows
from shared.errors import BadRequest
from tests.agents.support import function_client

LIMITS = QueryLimits()


def types(table: Table) -> dict[str, str]:
    return {column.name: column.sql_type for column in table.columns}


def test_json_rows_get_one_type_per_column_in_first_seen_order() -> None:
    table = table_from_rows(
        [
            {"id": 1, "price": 2, "name": "a", "ok": True, "tags": ["x"]},
            {"id": 2, "price": 2.5, "name": None, "ok": False, "extra": None},
        ],
        LIMITS,
    )
    assert types(table) == {
        "id": "BIGINT",
        "price": "DOUBLE",
        "name": "VARCHAR",
        "ok": "BOOLEAN",
        "tags": "JSON",
        "extra": "VARCHAR",
    }
    assert table.row_count == 2
    assert table.column("tags", "here").values == ['["x"]', None]  # missing key -> NULL


def test_mixed_json_column_is_text_marked_mixed() -> None:
    column = table_from_rows([{"v": 1}, {"v": "n/a"}, {"v": True}], LIMITS).columns[0]
    assert (column.sql_type, column.mixed) == ("VARCHAR", True)
    assert column.values == ["1", "n/a", "true"]
    assert "mix" in column.describe_type()


def test_integers_beyond_int64_become_double() -> None:
    column = table_from_rows([{"big": 2**70}, {"big": 1}], LIMITS).columns[0]
    assert column.sql_type == "DOUBLE"


@pytest.mark.parametrize("sign", [1, -1])
def test_json_integers_beyond_a_double_are_a_400_naming_the_column(sign: int) -> None:
    with pytest.raises(BadRequest, match=r"rows: column 'big' has an integer that is beyond"):
        table_from_rows([{"big": sign * 10**400}, {"big": 1.5}], LIMITS)


@pytest.mark.parametrize("digits", [400, 5000])
def test_csv_integers_beyond_a_double_are_a_400_naming_the_column(digits: int) -> None:
    with pytest.raises(BadRequest, match=r"csv: column 'big' has an integer that is beyond"):
        table_from_csv(f"big\n1\n{'9' * digits}\n", ",", LIMITS)


def test_csv_integers_with_leading_zeros_stay_int64() -> None:
    column = table_from_csv("n\n" + "0" * 30 + "42\n", ",", LIMITS).columns[0]
    assert (column.sql_type, column.values) == ("BIGINT", [42])


def test_csv_types_are_inferred_and_empty_cells_are_null() -> None:
    text = (
        "id, amount ,flag,day,at,label\n"
        "1,2.5,true,2024-01-31,2024-01-31T10:00:00,x\n"
        "2,,FALSE,2024-02-01,2024-02-01 11:30,\n"
    )
    table = table_from_csv(text, ",", LIMITS)
    assert types(table) == {
        "id": "BIGINT",
        "amount": "DOUBLE",
        "flag": "BOOLEAN",
        "day": "DATE",
        "at": "TIMESTAMP",
        "label": "VARCHAR",
    }
    assert table.column("amount", "here").values == [2.5, None]
    assert table.column("flag", "here").values == [True, False]
    assert table.column("day", "here").values == [date(2024, 1, 31), date(2024, 2, 1)]
    assert table.column("at", "here").values[1] == datetime(2024, 2, 1, 11, 30)
    assert table.column("label", "here").values == ["x", None]


def test_csv_column_with_numbers_and_text_is_mixed_text() -> None:
    column = table_from_csv("price\n10\nn/a\n", ",", LIMITS).columns[0]
    assert (column.sql_type, column.mixed) == ("VARCHAR", True)


def test_csv_invalid_date_stays_text() -> None:
    column = table_from_csv("d\n2024-02-30\n", ",", LIMITS).columns[0]
    assert column.sql_type == "VARCHAR"


def test_csv_other_delimiter_and_quoted_fields() -> None:
    table = table_from_csv('a;b\n"x;y";3\n', ";", LIMITS)
    assert table.column("a", "here").values == ["x;y"]
    assert table.column("b", "here").values == [3]


def test_csv_header_only_gives_empty_table() -> None:
    table = table_from_csv("a,b\n", ",", LIMITS)
    assert (table.row_count, table.names()) == (0, ["a", "b"])


def test_column_lookup_ignores_case_and_names_known_columns() -> None:
    table = table_from_rows([{"Price": 1}], LIMITS)
    assert table.column("price", "here").name == "Price"
    with pytest.raises(BadRequest, match=r"where: unknown column 'cost'; the columns are 'Price'"):
        table.column("cost", "where")


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("", "no header line"),
        (" \n", "no header line"),
        ("a,b\n1,2,3\n", "csv line 2: 3 fields, but the header has 2"),
        ("a,,c\n1,2,3\n", "column 2 needs a name"),
        ("a,A\n1,2\n", "columns 'a' and 'A' have the same name"),
        ('a\n"unclosed\n', "csv line"),
    ],
)
def test_bad_csv_is_rejected_naming_the_problem(text: str, problem: str) -> None:
    with pytest.raises(BadRequest, match=problem):
        table_from_csv(text, ",", LIMITS)


@pytest.mark.parametrize(
    ("rows", "problem"),
    [
        ([], "rows: send at least one row"),
        ([{}, {}], "rows: the data has no columns"),
        ([{"": 1}], "column 1 needs a name"),
        ([{"a": 1}, {"A": 2}], "columns 'a' and 'A' have the same name"),
        ([{"x" * 256: 1}], "1 to 255 characters"),
    ],
)
def test_bad_rows_are_rejected_naming_the_problem(rows: list[dict[str, Any]], problem: str) -> None:
    with pytest.raises(BadRequest, match=problem):
        table_from_rows(rows, LIMITS)


def test_row_and_column_limits() -> None:
    small = QueryLimits(max_rows=2, max_columns=2)
    with pytest.raises(BadRequest, match="rows: 3 rows is over the limit of 2"):
        table_from_rows([{"a": 1}] * 3, small)
    with pytest.raises(BadRequest, match="more than 2 rows"):
        table_from_csv("a\n1\n2\n3\n", ",", small)
    with pytest.raises(BadRequest, match="3 columns is over the limit of 2"):
        table_from_rows([{"a": 1, "b": 2, "c": 3}], small)


# Regression: the decimal pattern backtracked over every split of a run of digits followed by
# something else; one such 40 KB cell took 44 s and froze the worker (and its /health).
NUMBERISH = "1" * 40_000 + "x"


@pytest.mark.parametrize(
    "cells",
    [
        [NUMBERISH],
        [NUMBERISH] * 100,  # 4 MB
        ["1." + "1" * 40_000 + "e"] * 50,
        ["+" + "9" * 40_000 + "e+"] * 50,
    ],
)
def test_long_numberish_cells_parse_in_linear_time(cells: list[str]) -> None:
    # Through the agent, so a regression is a time-limit answer (the query process is killed
    # at the deadline) rather than a test that hangs for minutes.
    client = function_client("data_processor")
    assert client.post("/", json={"operation": "describe", "csv": "v\n1\n"}).status_code == 200
    # CPU time of this process, where the CSV is parsed (the query runs in a query process):
    # what other work on the machine does not inflate, unlike the wall clock.
    started = time.process_time()  # the query processes have started
    response = client.post("/", json={"operation": "describe", "csv": "v\n" + "\n".join(cells)})
    spent = time.process_time() - started
    assert response.status_code == 200, response.get_json()
    column = response.get_json()["result"]["columns"][0]
    assert (column["type"], column["count"]) == ("VARCHAR", len(cells))
    assert spent < 2.0  # backtracking spent 44 s on the first case alone


@pytest.mark.parametrize(
    ("cell", "sql_type"),
    [
        ("1.5", "DOUBLE"),
        ("1.", "DOUBLE"),
        (".5", "DOUBLE"),
        ("-2.5E-3", "DOUBLE"),
        ("+7", "BIGINT"),
        ("e5", "VARCHAR"),
        (".", "VARCHAR"),
        ("1.5.", "VARCHAR"),
        ("+-1", "VARCHAR"),
        ("1e", "VARCHAR"),
    ],
)
def test_number_syntax_is_unchanged(cell: str, sql_type: str) -> None:
    assert table_from_csv(f"v\n{cell}\n", ",", LIMITS).columns[0].sql_type == sql_type
