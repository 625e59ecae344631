"""The data_processor agent: questions over tabular data sent in the request, answered by DuckDB.

The input model below is the tool schema a model sees, so its descriptions say what each field
does and which operation uses it. The work happens in a sandboxed, per-request DuckDB
(``sandbox``) inside a query process the operating system bounds (``pool``): ``run`` is the work
itself, ``run_isolated`` what a request calls. SQL is built from checked names and parameters
(``query``, ``conditions``).
"""

from __future__ import annotations

import functools
import importlib.metadata
import time
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator
from pydantic_core import PydanticCustomError

from functions.agents.data_processor.limits import QueryLimits
from functions.agents.data_processor.pool import Budget, QueryPool, shared_pool
from shared.agent import AgentResult, AgentSpec

Operation = Literal["describe", "filter", "sort", "select", "group_by", "sql"]

# Which optional fields each operation reads; anything else sent is a mistake worth naming.
_ALLOWED: dict[str, set[str]] = {
    "describe": set(),
    "filter": {"conditions", "columns", "order_by", "limit"},
    "sort": {"order_by", "conditions", "columns", "limit"},
    "select": {"columns", "conditions", "order_by", "limit"},
    "group_by": {"group_by", "aggregates", "conditions", "order_by", "limit"},
    "sql": {"query", "limit"},
}
_REQUIRED: dict[str, tuple[str, ...]] = {
    "filter": ("conditions",),
    "sort": ("order_by",),
    "select": ("columns",),
    "group_by": ("group_by", "aggregates"),  # at least one of them
    "sql": ("query",),
}
_DATA_FIELDS = {"operation", "rows", "csv", "delimiter"}


class Condition(BaseModel):
    model_config = ConfigDict(extra="forbid")

    column: str = Field(min_length=1, max_length=255, description="Column to test.")
    op: Literal["==", "!=", "<", "<=", ">", ">=", "contains", "in"] = Field(
        description="'contains': case-insensitive substring of the value's text. 'in': value is "
        "a list. '!=' keeps rows where the column is null. '== null' tests for null."
    )
    value: Any = Field(
        default=None,
        description="A number, text, true/false, ISO date text, or null; a list for 'in'.",
    )


class SortKey(BaseModel):
    model_config = ConfigDict(extra="forbid")

    column: str = Field(min_length=1, max_length=255)
    descending: bool = Field(default=False, description="Largest first. Nulls always sort last.")


class Aggregate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    fn: Literal["count", "sum", "mean", "min", "max"]
    column: str | None = Field(
        default=None, max_length=255, description="Column to aggregate; omit for count of rows."
    )


class DataRequest(BaseModel):
    """Tabular data (``rows`` or ``csv``) and one operation over it."""

    model_config = ConfigDict(extra="forbid")

    operation: Operation = Field(
        description="describe: columns, types, counts, nulls, min/max/mean. filter: rows "
        "matching all conditions. sort: rows ordered by order_by. select: chosen columns. "
        "group_by: aggregates per group. sql: one read-only DuckDB SELECT over the table `data`."
    )
    rows: list[dict[str, Any]] | None = Field(
        default=None,
        description="The data as a JSON array of objects (up to 10,000). Send rows or csv.",
    )
    csv: str | None = Field(
        default=None,
        min_length=1,
        description="The data as CSV text with a header line (up to 10,000 rows); types are "
        "inferred (integer, decimal, true/false, ISO date/timestamp, text). Send rows or csv.",
    )
    delimiter: str = Field(default=",", min_length=1, max_length=1, description="CSV delimiter.")
    conditions: list[Condition] = Field(
        default_factory=list,
        max_length=50,
        description="filter (required), sort, select, group_by: keep rows matching all of them.",
    )
    columns: list[str] = Field(
        default_factory=list,
        max_length=200,
        description="select (required), filter, sort: columns to return (default all).",
    )
    order_by: list[str | SortKey] = Field(
        default_factory=list,
        max_length=20,
        description="sort (required), filter, select, group_by: a column name (ascending) or "
        "{column, descending}. For group_by, name output columns such as 'sum_price'.",
    )
    group_by: list[str] = Field(
        default_factory=list, max_length=20, description="group_by: columns to group on."
    )
    aggregates: list[Aggregate] = Field(
        default_factory=list,
        max_length=50,
        description="group_by: per group; outputs are named like 'count', 'sum_price', "
        "'mean_price'.",
    )
    query: str | None = Field(
        default=None,
        min_length=1,
        max_length=20_000,
        description="sql: one SELECT or WITH query over the table `data` (DuckDB dialect). "
        "No files, URLs, extensions or writes.",
    )
    limit: int | None = Field(
        default=None, ge=1, description="Return at most this many rows (answers hold 1,000 max)."
    )

    @model_validator(mode="after")
    def _one_source_and_fitting_fields(self) -> DataRequest:
        if (self.rows is None) == (self.csv is None):
            raise PydanticCustomError("data_source", "send exactly one of rows or csv")
        if self.csv is None and "delimiter" in self.model_fields_set:
            raise PydanticCustomError("data_source", "delimiter applies only to csv")
        sent = self.model_fields_set - _DATA_FIELDS
        stray = sorted(sent - _ALLOWED[self.operation])
        if stray:
            raise PydanticCustomError(
                "operation_fields",
                "{operation} does not use {fields}; it reads {allowed}",
                {
                    "operation": self.operation,
                    "fields": ", ".join(stray),
                    "allowed": ", ".join(sorted(_ALLOWED[self.operation])) or "only the data",
                },
            )
        required = _REQUIRED.get(self.operation, ())
        if required and not any(getattr(self, name) for name in required):
            raise PydanticCustomError(
                "operation_fields",
                "{operation} needs {fields}",
                {"operation": self.operation, "fields": " or ".join(required)},
            )
        return self


def run_isolated(request: DataRequest, limits: QueryLimits, pool: QueryPool) -> AgentResult:
    """``run`` in a query process: killed at the time limit, its memory bounded by the OS."""
    started = time.perf_counter()
    # CPU time can only lag wall time (one DuckDB thread); the CPU limit is the kernel's
    # backstop should the kill at the deadline not come.
    budget = Budget(wall_s=limits.query_timeout_s, cpu_s=limits.query_timeout_s + 1.0)
    outcome: AgentResult = pool.call((request, limits), budget, wait_s=limits.query_timeout_s)
    outcome.meta["elapsed_ms"] = round((time.perf_counter() - started) * 1000, 1)
    return outcome


def run(request: DataRequest, limits: QueryLimits) -> AgentResult:
    """Load the data and answer the request in this process, within the time limit. The work is
    in ``operations``, imported here: in a query process, never in the server's own."""
    from functions.agents.data_processor import operations

    return operations.run(request, limits)


DESCRIPTION = (
    "Answers questions over tabular data that you send in the request (JSON rows or CSV text, "
    "up to 10,000 rows), exactly, with DuckDB: describe the columns (types, counts, nulls, "
    "min/max/mean), filter rows by conditions, sort, select columns, group and aggregate "
    "(count/sum/mean/min/max), or run one read-only SQL SELECT over the table `data`. Use it "
    "when the data is already in hand and you need exact counts, totals, averages, rankings or "
    "matching rows. Do NOT use it to fetch data: it cannot read files, URLs or databases; "
    "not for arithmetic on a few numbers (use calculator) and not to search documents or the "
    "web (use search or tavily). Answers hold at most 1,000 rows (then truncated is true)."
)

EXAMPLE = {
    "operation": "group_by",
    "csv": "region,product,sales\nnorth,apples,120\nsouth,apples,80\nnorth,pears,45\n",
    "group_by": ["region"],
    "aggregates": [{"fn": "sum", "column": "sales"}, {"fn": "count"}],
    "order_by": [{"column": "sum_sales", "descending": True}],
}


@functools.cache
def duckdb_version() -> str:
    """DuckDB's version, from its package's metadata: this process does not import DuckDB."""
    return importlib.metadata.version("duckdb")


def build_spec(
    limits: QueryLimits | None = None, pool: QueryPool | None = None
) -> AgentSpec[DataRequest]:
    """The agent; its queries run in ``pool`` (by default this process's shared one, whose
    processes start at the first query)."""
    chosen = limits or QueryLimits()
    queries = pool or shared_pool(
        run,
        preload=[__name__, "functions.agents.data_processor.operations"],
        size=chosen.workers,
        address_space=chosen.process_memory_bytes,
        memory_label=chosen.process_memory,
    )
    return AgentSpec(
        name="data_processor",
        description=DESCRIPTION,
        input_model=DataRequest,
        run=lambda request: run_isolated(request, chosen, queries),
        example=EXAMPLE,
        health=lambda: {
            "duckdb": duckdb_version(),
            "max_rows": chosen.max_rows,
            "query_processes": queries.size,
        },
    )
