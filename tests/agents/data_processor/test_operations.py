"""The operations end to end through ``run``: describe, filter, sort, select, group_by."""

from __future__ import annotations

from typing import Any

import pytest

from functions.agents.data_processor.agent import DataRequest, run
from functions.agents.data_processor.limits import QueryLimits
from shared.agent import parse_input
from shared.errors import BadRequest

SALES = [
    {"region": "north", "product": "apples", "units": 120, "price": 1.5, "day": "2024-01-02"},
    {"region": "south", "product": "apples", "units": 80, "price": 1.25, "day": "2024-01-03"},
    {"region": "north", "product": "pears", "units": 45, "price": 2.0, "day": "2024-01-03"},
    {"region": "east", "product": "Plums 100%", "units": None, "price": 3.0, "day": None},
]


def ask(limits: QueryLimits | None = None, **request: Any) -> dict[str, Any]:
    if "csv" not in request:
        request.setdefault("rows", SALES)
    outcome = run(parse_input(DataRequest, request), limits or QueryLimits())
    assert isinstance(outcome.result, dict)
    return outcome.result


def column_of(result: dict[str, Any], name: str) -> list[Any]:
    return [row[name] for row in result["rows"]]


def test_describe_reports_types_counts_nulls_and_stats() -> None:
    result = ask(operation="describe")
    assert result["row_count"] == 4
    by_name = {column["name"]: column for column in result["columns"]}
    assert list(by_name) == ["region", "product", "units", "price", "day"]
    assert by_name["units"] == {
        "name": "units",
        "type": "BIGINT",
        "count": 3,
        "nulls": 1,
        "min": 45,
        "max": 120,
        "mean": pytest.approx(81.6667, abs=1e-3),
    }
    assert by_name["region"]["type"] == "VARCHAR"
    assert by_name["region"]["mean"] is None


def test_describe_csv_dates_give_iso_min_and_max() -> None:
    result = ask(operation="describe", csv="day\n2024-03-01\n2024-01-15\n\n")
    assert result["columns"][0]["type"] == "DATE"
    assert (result["columns"][0]["min"], result["columns"][0]["max"]) == (
        "2024-01-15",
        "2024-03-01",
    )


def test_filter_combines_conditions_with_and() -> None:
    result = ask(
        operation="filter",
        conditions=[
            {"column": "product", "op": "==", "value": "apples"},
            {"column": "units", "op": ">=", "value": 100},
        ],
    )
    assert result["row_count"] == 1
    assert result["rows"][0]["region"] == "north"
    assert result["truncated"] is False
    assert result["columns"] == ["region", "product", "units", "price", "day"]


@pytest.mark.parametrize(
    ("condition", "regions"),
    [
        ({"column": "units", "op": "<", "value": 100}, ["south", "north"]),
        ({"column": "units", "op": "<=", "value": "80"}, ["south", "north"]),  # quoted
        ({"column": "price", "op": ">", "value": 1.5}, ["north", "east"]),
        ({"column": "region", "op": "!=", "value": "north"}, ["south", "east"]),
        ({"column": "units", "op": "!=", "value": 45}, ["north", "south", "east"]),  # null kept
        ({"column": "units", "op": "==", "value": None}, ["east"]),
        ({"column": "units", "op": "!=", "value": None}, ["north", "south", "north"]),
        ({"column": "region", "op": "in", "value": ["south", "east"]}, ["south", "east"]),
        ({"column": "units", "op": "in", "value": [80, 45.0]}, ["south", "north"]),
        ({"column": "product", "op": "contains", "value": "PEAR"}, ["north"]),
        ({"column": "product", "op": "contains", "value": "0%"}, ["east"]),  # % is not a wildcard
        ({"column": "product", "op": "contains", "value": "_"}, []),
        ({"column": "units", "op": "contains", "value": 12}, ["north"]),
    ],
)
def test_filter_ops(condition: dict[str, Any], regions: list[str]) -> None:
    result = ask(operation="filter", conditions=[condition])
    assert column_of(result, "region") == regions


def test_filter_on_csv_dates_and_booleans() -> None:
    csv = "day,done\n2024-01-01,true\n2024-02-01,false\n2024-03-01,true\n"
    later = ask(
        operation="filter",
        csv=csv,
        conditions=[{"column": "day", "op": ">", "value": "2024-01-15"}],
    )
    assert column_of(later, "day") == ["2024-02-01", "2024-03-01"]
    done = ask(
        operation="filter", csv=csv, conditions=[{"column": "done", "op": "==", "value": "true"}]
    )
    assert column_of(done, "day") == ["2024-01-01", "2024-03-01"]


def test_filter_with_columns_order_and_limit() -> None:
    result = ask(
        operation="filter",
        conditions=[{"column": "units", "op": ">", "value": 0}],
        columns=["REGION", "units"],
        order_by=["units"],
        limit=2,
    )
    assert result["columns"] == ["region", "units"]
    assert result["rows"] == [{"region": "north", "units": 45}, {"region": "south", "units": 80}]
    assert result["truncated"] is False  # the caller's own limit is not a truncation


@pytest.mark.parametrize(
    ("condition", "problem"),
    [
        (
            {"column": "cost", "op": "==", "value": 1},
            r"conditions\[0\].column: unknown column 'cost'",
        ),
        ({"column": "units", "op": ">", "value": "many"}, "holds numbers; 'many' is not a number"),
        ({"column": "units", "op": "==", "value": True}, "is not a number"),
        ({"column": "units", "op": ">", "value": None}, "cannot compare with null"),
        ({"column": "units", "op": "==", "value": [1]}, "compares with one value"),
        ({"column": "units", "op": "in", "value": 5}, "'in' needs a non-empty list"),
        ({"column": "units", "op": "in", "value": []}, "'in' needs a non-empty list"),
        ({"column": "units", "op": "in", "value": [1, None]}, "'in' cannot match null"),
        ({"column": "units", "op": "in", "value": [1, "x"]}, r"value\[1\]: column 'units'"),
        ({"column": "region", "op": "contains", "value": None}, "'contains' needs text"),
        ({"column": "region", "op": ">", "value": 5}, "would compare text, not numbers"),
    ],
)
def test_bad_conditions_name_the_problem(condition: dict[str, Any], problem: str) -> None:
    with pytest.raises(BadRequest, match=problem):
        ask(operation="filter", conditions=[condition])


@pytest.mark.parametrize(
    "condition",
    [
        {"column": "units", "op": ">", "value": 10**400},
        {"column": "units", "op": "<", "value": "-1" + "0" * 400},
        {"column": "units", "op": "in", "value": [1, 10**400]},
    ],
)
def test_a_condition_integer_beyond_a_double_is_a_400(condition: dict[str, Any]) -> None:
    with pytest.raises(BadRequest, match=r"compared with 'units' is beyond ±1.8e308"):
        ask(operation="filter", conditions=[condition])


def test_mixed_column_breaks_numeric_comparison_with_a_clear_reason() -> None:
    rows = [{"v": 1}, {"v": "n/a"}, {"v": 3}]
    with pytest.raises(BadRequest, match="'v' is VARCHAR .*mix"):
        ask(operation="filter", rows=rows, conditions=[{"column": "v", "op": ">", "value": 2}])
    # Equality still works: the number is compared as the text it was stored as.
    same = ask(operation="filter", rows=rows, conditions=[{"column": "v", "op": "==", "value": 3}])
    assert same["rows"] == [{"v": "3"}]


def test_date_condition_with_a_bad_date_names_the_format() -> None:
    with pytest.raises(BadRequest, match="holds DATE values; 'soon' is not one"):
        ask(
            operation="filter",
            csv="d\n2024-01-01\n",
            conditions=[{"column": "d", "op": "<", "value": "soon"}],
        )


def test_nested_values_can_only_be_searched_as_text() -> None:
    rows = [{"tags": ["a", "b"]}, {"tags": ["c"]}]
    hit = ask(
        operation="filter",
        rows=rows,
        conditions=[{"column": "tags", "op": "contains", "value": "c"}],
    )
    assert hit["rows"] == [{"tags": '["c"]'}]
    with pytest.raises(BadRequest, match="nested objects or arrays"):
        ask(
            operation="filter", rows=rows, conditions=[{"column": "tags", "op": "==", "value": "c"}]
        )


def test_sort_by_several_keys_with_nulls_last() -> None:
    result = ask(
        operation="sort",
        order_by=[
            {"column": "region", "descending": False},
            {"column": "units", "descending": True},
        ],
    )
    assert [(r["region"], r["units"]) for r in result["rows"]] == [
        ("east", None),
        ("north", 120),
        ("north", 45),
        ("south", 80),
    ]
    descending = ask(operation="sort", order_by=[{"column": "units", "descending": True}])
    assert column_of(descending, "units") == [120, 80, 45, None]


def test_sort_by_unknown_column_is_rejected() -> None:
    with pytest.raises(BadRequest, match=r"order_by\[0\].column: unknown column 'size'"):
        ask(operation="sort", order_by=["size"])


def test_select_columns_in_the_order_asked() -> None:
    result = ask(operation="select", columns=["price", "region"])
    assert result["columns"] == ["price", "region"]
    assert result["rows"][0] == {"price": 1.5, "region": "north"}
    with pytest.raises(BadRequest, match=r"columns\[1\]: unknown column 'colour'"):
        ask(operation="select", columns=["price", "colour"])


def test_group_by_aggregates_and_default_order() -> None:
    result = ask(
        operation="group_by",
        group_by=["region"],
        aggregates=[
            {"fn": "count"},
            {"fn": "sum", "column": "units"},
            {"fn": "mean", "column": "price"},
            {"fn": "min", "column": "day"},
            {"fn": "max", "column": "units"},
        ],
    )
    assert result["columns"] == [
        "region",
        "count",
        "sum_units",
        "mean_price",
        "min_day",
        "max_units",
    ]
    assert result["rows"] == [
        {
            "region": "east",
            "count": 1,
            "sum_units": None,
            "mean_price": 3.0,
            "min_day": None,
            "max_units": None,
        },
        {
            "region": "north",
            "count": 2,
            "sum_units": 165,
            "mean_price": 1.75,
            "min_day": "2024-01-02",
            "max_units": 120,
        },
        {
            "region": "south",
            "count": 1,
            "sum_units": 80,
            "mean_price": 1.25,
            "min_day": "2024-01-03",
            "max_units": 80,
        },
    ]


def test_group_by_with_conditions_order_and_limit() -> None:
    result = ask(
        operation="group_by",
        group_by=["product"],
        aggregates=[{"fn": "sum", "column": "units"}],
        conditions=[{"column": "units", "op": "!=", "value": None}],
        order_by=[{"column": "SUM_UNITS", "descending": True}],
        limit=1,
    )
    assert result["rows"] == [{"product": "apples", "sum_units": 200}]


def test_aggregates_without_groups_summarise_the_whole_table() -> None:
    result = ask(
        operation="group_by", aggregates=[{"fn": "count"}, {"fn": "count", "column": "units"}]
    )
    assert result["rows"] == [{"count": 4, "count_units": 3}]


def test_aggregate_name_clashing_with_a_group_column_is_made_unique() -> None:
    rows = [{"count": "a"}, {"count": "a"}]
    result = ask(operation="group_by", rows=rows, group_by=["count"], aggregates=[{"fn": "count"}])
    assert result["rows"] == [{"count": "a", "count_2": 2}]


@pytest.mark.parametrize(
    ("request_fields", "problem"),
    [
        (
            {"aggregates": [{"fn": "sum", "column": "region"}]},
            "sum needs a numeric column; 'region' is VARCHAR",
        ),
        ({"aggregates": [{"fn": "mean"}]}, r"aggregates\[0\].column: 'mean' needs a column"),
        ({"group_by": ["zone"]}, r"group_by\[0\]: unknown column 'zone'"),
        ({"group_by": ["region"], "order_by": ["units"]}, "'units' is not an output column"),
    ],
)
def test_bad_group_by_names_the_problem(request_fields: dict[str, Any], problem: str) -> None:
    with pytest.raises(BadRequest, match=problem):
        ask(operation="group_by", **request_fields)


def test_results_are_capped_with_truncated_flag() -> None:
    rows = [{"n": n} for n in range(50)]
    capped = ask(QueryLimits(max_result_rows=10), operation="sort", rows=rows, order_by=["n"])
    assert capped["row_count"] == 10
    assert capped["truncated"] is True
    assert column_of(capped, "n") == list(range(10))
    wide = [{"text": "x" * 1000} for _ in range(10)]
    by_size = ask(
        QueryLimits(max_result_bytes=3000), operation="select", rows=wide, columns=["text"]
    )
    assert (by_size["row_count"], by_size["truncated"]) == (2, True)
    big_limit = ask(
        QueryLimits(max_result_rows=10), operation="select", rows=rows, columns=["n"], limit=20
    )
    assert big_limit["truncated"] is True  # asked for 20, the cap gave 10


def test_meta_shows_the_generated_sql_with_values_as_parameters() -> None:
    outcome = run(
        parse_input(
            DataRequest,
            {
                "operation": "filter",
                "rows": SALES,
                "conditions": [{"column": "region", "op": "==", "value": "x' OR 1=1 --"}],
            },
        ),
        QueryLimits(),
    )
    assert outcome.result["rows"] == []
    assert outcome.meta["sql"] == 'SELECT * FROM data WHERE "region" = CAST(? AS VARCHAR)'
    assert outcome.meta["input_rows"] == 4


def test_column_names_with_quotes_are_safe_identifiers() -> None:
    rows = [{'we"ird name': 1, "select": 2}]
    result = ask(operation="select", rows=rows, columns=['we"ird name', "select"])
    assert result["rows"] == [{'we"ird name': 1, "select": 2}]
