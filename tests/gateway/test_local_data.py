"""The local model over a table: the operation each ordinary question gets, the sentence each
answer becomes, and bounded work whatever the question or the table."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from functions.agents.data_processor.agent import DataRequest
from functions.gateway.providers import local_data
from functions.gateway.providers.local import MARK, LocalProvider
from functions.gateway.providers.local_answers import state_result
from functions.gateway.providers.local_rules import TEXT_WINDOW
from tests.gateway.support import user

ROWS = [
    {"region": "North", "product": "tea", "units": 70, "unit_price": 2.5},
    {"region": "South", "product": "tea", "units": 80, "unit_price": 2.0},
    {"region": "North", "product": "coffee", "units": 50, "unit_price": 4.0},
]
TABLE = local_data.table_of({"rows": ROWS})
# The data processor's own schema, as the orchestrator offers it (with the task's data by name).
DATA_PROCESSOR = {
    "name": "data_processor",
    "description": "Answers questions over tabular data.",
    "input_schema": DataRequest.model_json_schema(),
}
SECONDS = 2.0


def group(fn: str, column: str | None, by: str, **more: Any) -> dict[str, Any]:
    aggregate = {"fn": fn} if column is None else {"fn": fn, "column": column}
    output = "count" if column is None else f"{fn}_{column}"
    return {
        "operation": "group_by",
        "aggregates": [aggregate],
        "group_by": [by],
        "order_by": [{"column": output, "descending": True}, by],
        **more,
    }


@pytest.mark.parametrize(
    ("question", "arguments"),
    [
        ("What are the total units per region?", group("sum", "units", "region")),
        ("sum of units by product", group("sum", "units", "product")),
        ("average unit price for each region", group("mean", "unit_price", "region")),
        ("How many rows per region?", group("count", None, "region")),
        ("count by product", group("count", None, "product")),
        ("highest units per region", group("max", "units", "region")),
        ("Which region has the most units?", group("sum", "units", "region", limit=1)),
        ("top 2 regions by total units", group("sum", "units", "region", limit=2)),
        ("How many rows are there?", {"operation": "group_by", "aggregates": [{"fn": "count"}]}),
        (
            "What is the average units?",
            {"operation": "group_by", "aggregates": [{"fn": "mean", "column": "units"}]},
        ),
        (
            "top 3 by units",
            {
                "operation": "sort",
                "order_by": [{"column": "units", "descending": True}],
                "limit": 3,
            },
        ),
        (
            "bottom 2 by unit price",
            {
                "operation": "sort",
                "order_by": [{"column": "unit_price", "descending": False}],
                "limit": 2,
            },
        ),
        (
            "rows where region is north",
            {
                "operation": "filter",
                "conditions": [{"column": "region", "op": "==", "value": "North"}],
            },
        ),
        (
            "rows where units are over 60 and product is not coffee",
            {
                "operation": "filter",
                "conditions": [
                    {"column": "units", "op": ">", "value": 60},
                    {"column": "product", "op": "!=", "value": "coffee"},
                ],
            },
        ),
        (
            "rows where unit price at most 2.5",
            {
                "operation": "filter",
                "conditions": [{"column": "unit_price", "op": "<=", "value": 2.5}],
            },
        ),
        ("describe this table", {"operation": "describe"}),
        ("what is in it?", {"operation": "describe"}),
        ("rows where colour is red", {"operation": "describe"}),  # no such column: not guessed
    ],
)
def test_a_question_gets_the_operation_that_answers_it(
    question: str, arguments: dict[str, Any]
) -> None:
    assert local_data.operation_for(question, TABLE) == arguments


REGIONS = local_data.table_of(
    {"csv": "region,product,units\nNorth,a,70\nNorth,b,50\nSouth,a,80\nEast,c,30\n"}
)
NORTH = {"column": "region", "op": "==", "value": "North"}
UNITS = {"fn": "sum", "column": "units"}


@pytest.mark.parametrize(
    ("question", "arguments"),
    [
        # A cell named outside a "where" is a condition, spelled as the data spells it.
        ("total units for North", {"aggregates": [UNITS], "conditions": [NORTH]}),
        ("How many units in the north?", {"aggregates": [UNITS], "conditions": [NORTH]}),
        (
            "How many rows have region North?",
            {"aggregates": [{"fn": "count"}], "conditions": [NORTH]},
        ),
        # "how many" of a number column sums it; of a text column, counts the rows of each.
        ("How many units were sold in total?", {"aggregates": [UNITS]}),
        ("what is the number of units", {"aggregates": [UNITS]}),
        ("How many regions are there?", group("count", None, "region")),
        # "a" is a product only right after "product": "a total" is not product a.
        (
            "What is a total of units for product a?",
            {
                "aggregates": [UNITS],
                "conditions": [{"column": "product", "op": "==", "value": "a"}],
            },
        ),
        # Two regions: each region's total, not one sum the question did not ask for.
        (
            "total units for North and South",
            group(
                "sum",
                "units",
                "region",
                conditions=[{"column": "region", "op": "in", "value": ["North", "South"]}],
            ),
        ),
        ("show the north rows", {"operation": "filter", "conditions": [NORTH]}),
    ],
)
def test_a_cell_the_question_names_narrows_the_rows(
    question: str, arguments: dict[str, Any]
) -> None:
    assert local_data.operation_for(question, REGIONS) == {"operation": "group_by", **arguments}


def test_a_name_that_is_a_cell_of_two_columns_is_not_guessed() -> None:
    table = local_data.table_of(
        {"rows": [{"home": "Oslo", "away": "Rome", "goals": 2}, {"home": "Rome", "away": "Oslo"}]}
    )

    assert local_data.operation_for("total goals for Oslo", table) == {"operation": "describe"}
    assert local_data.operation_for("total goals for home Oslo", table)["conditions"] == [
        {"column": "home", "op": "==", "value": "Oslo"}
    ]


def test_a_large_tables_summary_gives_its_columns_and_kinds() -> None:
    summary = 'Columns: city | people\nFirst row: city = "Oslo"; people = 700'

    table = local_data.table_from_summary(summary)

    assert table is not None and table.columns == ["city", "people"]
    assert table.numeric == {"people"} and table.rows is None
    assert local_data.operation_for("total people per city", table) == group(
        "sum", "people", "city"
    )


# -- stating the answer ------------------------------------------------------------------------


def rows_answer(rows: list[dict[str, Any]], truncated: bool = False) -> dict[str, Any]:
    columns = list(rows[0]) if rows else []
    return {"columns": columns, "rows": rows, "row_count": len(rows), "truncated": truncated}


def test_groups_are_stated_in_order() -> None:
    rows = [{"region": "North", "sum_units": 120}, {"region": "South", "sum_units": 80}]

    text = state_result(group("sum", "units", "region"), rows_answer(rows))

    assert text == "Total units per region: North 120, South 80."


def test_many_groups_are_counted_after_the_first_twenty() -> None:
    rows = [{"city": f"c{i}", "count": i} for i in range(25)]

    text = state_result(group("count", None, "city"), rows_answer(rows)) or ""

    assert text.startswith("Number of rows per city: c0 0, c1 1,")
    assert text.endswith("c19 19, and 5 more.")


@pytest.mark.parametrize(
    ("arguments", "answer", "sentence"),
    [
        (
            {"operation": "group_by", "aggregates": [{"fn": "mean", "column": "units"}]},
            rows_answer([{"mean_units": 66.666666}]),
            "Average units: 66.67.",
        ),
        (
            {"operation": "group_by", "aggregates": [{"fn": "count"}]},
            rows_answer([{"count": 3}]),
            "There are 3 rows.",
        ),
        (
            {
                "operation": "filter",
                "conditions": [{"column": "region", "op": "==", "value": "West"}],
            },
            rows_answer([]),
            "No rows where region is West.",
        ),
        (
            {
                "operation": "sort",
                "order_by": [{"column": "units", "descending": True}],
                "limit": 1,
            },
            rows_answer([{"region": "South", "units": 80}], truncated=True),
            "Top 1 by units: 1. region South, units 80. (the answer was cut short)",
        ),
        (
            {"operation": "describe"},
            {
                "row_count": 3,
                "columns": [
                    {
                        "name": "region",
                        "type": "VARCHAR",
                        "min": "North",
                        "max": "South",
                        "mean": None,
                    },
                    {"name": "units", "type": "BIGINT", "min": 50, "max": 80, "mean": 66.666},
                ],
            },
            "The data has 3 rows and 2 columns: region (VARCHAR); "
            "units (BIGINT: min 50, max 80, mean 66.67).",
        ),
        (
            {
                "operation": "filter",
                "conditions": [{"column": "region", "op": "in", "value": ["North", "East"]}],
            },
            rows_answer([{"region": "East", "units": 30}]),
            "1 rows where region is one of North, East: region East, units 30.",
        ),
    ],
    ids=["overall mean", "row count", "no rows", "top cut short", "describe", "one of"],
)
def test_each_answer_becomes_a_sentence(
    arguments: dict[str, Any], answer: dict[str, Any], sentence: str
) -> None:
    assert state_result(arguments, answer) == sentence


# -- through the model, as the orchestrator asks -----------------------------------------------


def orchestrated(question: str, data: str) -> str:
    return f"Task: {question}\n\nData (dataset 'task_data', 3 rows, CSV):\n{data}"


def tool_uses(text: str, tools: list[dict[str, Any]]) -> list[tuple[str, dict[str, Any]]]:
    body = {"model": "local", "max_tokens": 256, "messages": user(text), "tools": tools}
    message = LocalProvider().answer(body, "local-rules")
    assert message["content"][0]["text"].startswith(MARK)
    return [(b["name"], b["input"]) for b in message["content"] if b["type"] == "tool_use"]


def test_inline_csv_under_a_question_is_grouped() -> None:
    text = "What are the total units per region?\nregion,product,units\nN,tea,1\nS,tea,2\nN,x,3"

    [(name, arguments)] = tool_uses(text, [DATA_PROCESSOR])

    assert name == "data_processor" and arguments["group_by"] == ["region"]
    assert arguments["csv"].startswith("region,product,units\n")


def test_the_data_heading_is_not_read_as_the_csv_header() -> None:
    # The heading line has two commas, as the three-column CSV under it does.
    text = orchestrated("total units per region", "region,product,units\nN,tea,1\nS,tea,2")
    schema = json.loads(json.dumps(DATA_PROCESSOR))
    schema["input_schema"]["properties"]["dataset"] = {"type": "string", "enum": ["task_data"]}

    [(_, arguments)] = tool_uses(text, [schema])

    assert arguments["dataset"] == "task_data" and arguments["group_by"] == ["region"]


# -- bounded work ------------------------------------------------------------------------------

WIDE = local_data.Table([f"c{i} x" for i in range(200)], frozenset(), None)
# 25,000 rows of distinct names (about the data window's 256 KB), every one a cell a question
# can name.
NAMES = local_data.table_of({"rows": [{"name": f"n{i}", "n": i} for i in range(25_000)]})


@pytest.mark.parametrize(
    ("question", "table"),
    [
        ("each " * (TEXT_WINDOW // 5), TABLE),
        ("per the " * (TEXT_WINDOW // 8), TABLE),
        ("total units where " + "region is north and " * (TEXT_WINDOW // 20), TABLE),
        ("x " * (TEXT_WINDOW // 2), WIDE),
        ("c1 x " * (TEXT_WINDOW // 5), WIDE),
        ("where " + "a and " * (TEXT_WINDOW // 6), TABLE),
        ("rows where region is " + " " * TEXT_WINDOW + "x", TABLE),
        ("total n for " + " ".join(f"n{i}" for i in range(TEXT_WINDOW // 4)), NAMES),
        ("north " * (TEXT_WINDOW // 6), TABLE),
    ],
    ids=[
        "each",
        "per the",
        "many conditions",
        "wide table",
        "named often",
        "ands",
        "spaces",
        "many cells",
        "one cell often",
    ],
)
def test_a_hostile_question_is_read_in_bounded_time(question: str, table: local_data.Table) -> None:
    started = time.perf_counter()

    local_data.operation_for(question[:TEXT_WINDOW], table)

    assert time.perf_counter() - started < SECONDS


def test_a_long_question_over_data_is_read_only_at_its_end() -> None:
    question = "ignore this. " * 20_000 + "What are the total units per region?"
    text = orchestrated(question, "region,product,units\nN,tea,1\nS,tea,2")
    started = time.perf_counter()

    [(_, arguments)] = tool_uses(text, [DATA_PROCESSOR])

    assert time.perf_counter() - started < SECONDS
    assert arguments["operation"] == "group_by" and arguments["group_by"] == ["region"]
