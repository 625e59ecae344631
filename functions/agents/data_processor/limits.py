"""How much work one request may ask of the data processor, read once at start-up.

Every limit has an environment override (``DATA_PROCESSOR_<NAME>``, e.g.
``DATA_PROCESSOR_MAX_ROWS``) so an operator can tune it without a code change; a bad value
stops the function at start with a message naming the variable.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Self

from pydantic import AfterValidator, Field, model_validator

from shared.settings import FunctionSettings

_MEMORY = re.compile(r"^(\d+(\.\d+)?)\s*(B|KB|MB|GB|TB|KIB|MIB|GIB|TIB)$", re.IGNORECASE)
_UNITS = {
    **{unit: 1000**power for power, unit in enumerate(["B", "KB", "MB", "GB", "TB"])},
    **{unit: 1024**power for power, unit in enumerate(["B", "KIB", "MIB", "GIB", "TIB"])},
}
# What a query process needs before any data: the interpreter, DuckDB's library, its threads.
_PROCESS_BASE_BYTES = 256 * 1024 * 1024
DEFAULT_MEMORY_LIMIT = "256MB"
DEFAULT_PROCESS_MEMORY = "1GB"


def _a_size(text: str) -> str:
    # Checked here because DuckDB would only complain on the first request.
    if not _MEMORY.match(text.strip()):
        raise ValueError(f"expected a size such as 256MB or 1GB, got {text[:40]!r}")
    return text.strip()


Size = Annotated[str, AfterValidator(_a_size)]


class QueryLimits(FunctionSettings):
    """The data processor's settings, from its environment (it has no file)."""

    env = {
        "DATA_PROCESSOR_MAX_ROWS": "max_rows",
        "DATA_PROCESSOR_MAX_COLUMNS": "max_columns",
        "DATA_PROCESSOR_MAX_RESULT_ROWS": "max_result_rows",
        "DATA_PROCESSOR_MAX_RESULT_BYTES": "max_result_bytes",
        "DATA_PROCESSOR_QUERY_TIMEOUT_S": "query_timeout_s",
        "DATA_PROCESSOR_MEMORY_LIMIT": "memory_limit",
        "DATA_PROCESSOR_MAX_BODY_BYTES": "max_body_bytes",
        "DATA_PROCESSOR_WORKERS": "workers",
        "DATA_PROCESSOR_PROCESS_MEMORY": "process_memory",
    }

    max_rows: int = Field(default=10_000, gt=0)
    """Input rows (JSON rows or CSV records) a request may carry."""
    max_columns: int = Field(default=200, gt=0)
    """Distinct columns a request's data may have."""
    max_result_rows: int = Field(default=1_000, gt=0)
    """Rows an answer may hold; more set ``truncated``."""
    max_result_bytes: int = Field(default=1_000_000, gt=0)
    """JSON size of an answer's rows in bytes; more set ``truncated`` (a few wide rows can be
    huge), and a first row over it alone is a 400. DuckDB checks it before Python copies a row."""
    query_timeout_s: float = Field(default=5.0, gt=0)
    """Wall time for loading the data and running the query, then DuckDB is interrupted (it
    notices between steps of execution; ``sandbox`` says what it cannot stop)."""
    memory_limit: Size = DEFAULT_MEMORY_LIMIT
    """DuckDB's ``memory_limit`` for the per-request database: what a query holds while it
    executes, not constants evaluated while binding it (``sandbox`` says what else escapes)."""
    max_body_bytes: int = Field(default=8 * 1024 * 1024, gt=0)
    """HTTP body limit: CSV text or JSON rows for 10,000 rows do not fit in the 1 MiB default."""
    workers: int = Field(default=2, gt=0)
    """Query processes per server process (``pool``): how many requests compute at once; the
    rest wait up to ``query_timeout_s`` for one, then get a 503."""
    process_memory: Size = DEFAULT_PROCESS_MEMORY
    """The operating system's bound on one query process's address space (``RLIMIT_AS``): it
    holds whatever ``memory_limit`` does not count. The process itself takes about 200 MB."""

    @property
    def process_memory_bytes(self) -> int:
        return size_in_bytes(self.process_memory)

    @model_validator(mode="before")
    @classmethod
    def _room_for_duckdb(cls, data: Any) -> Any:
        """Left out, ``process_memory`` is 1GB, or room for a larger ``memory_limit``."""
        if not isinstance(data, dict) or data.get("process_memory"):
            return data
        limit = data.get("memory_limit", DEFAULT_MEMORY_LIMIT)
        if not isinstance(limit, str) or not _MEMORY.match(limit.strip()):
            return data  # the field's own check names the problem
        roomy = max(
            size_in_bytes(DEFAULT_PROCESS_MEMORY), size_in_bytes(limit) + 2 * _PROCESS_BASE_BYTES
        )
        if roomy == size_in_bytes(DEFAULT_PROCESS_MEMORY):
            return data
        return {**data, "process_memory": f"{roomy // 2**20}MiB"}

    @model_validator(mode="after")
    def _process_holds_duckdb(self) -> Self:
        needed = size_in_bytes(self.memory_limit) + _PROCESS_BASE_BYTES
        if self.process_memory_bytes < needed:
            raise ValueError(
                f"$DATA_PROCESSOR_PROCESS_MEMORY: {self.process_memory} is too small for a "
                f"query process with a DuckDB memory_limit of {self.memory_limit}; give it at "
                f"least {needed // 2**20} MiB"
            )
        return self


def size_in_bytes(text: str) -> int:
    """``256MB`` or ``1 GiB`` as bytes (DuckDB's meaning: KB = 1000, KiB = 1024)."""
    match = _MEMORY.match(text.strip())
    if match is None:
        raise ValueError(f"not a size: {text!r}")
    number, unit = float(match.group(1)), match.group(3).upper()
    return int(number * _UNITS[unit])
