"""How much work one request may ask of the data processor, read once at start-up.

Every limit has an environment override so an operator can tune it without a code change; a bad
value stops the function at start with a message naming the variable.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TypeVar

from shared.errors import ConfigError

NumberT = TypeVar("NumberT", int, float)
_MEMORY = re.compile(r"^(\d+(\.\d+)?)\s*(B|KB|MB|GB|TB|KIB|MIB|GIB|TIB)$", re.IGNORECASE)
_UNITS = {
    **{unit: 1000**power for power, unit in enumerate(["B", "KB", "MB", "GB", "TB"])},
    **{unit: 1024**power for power, unit in enumerate(["B", "KIB", "MIB", "GIB", "TIB"])},
}
# What a query process needs before any data: the interpreter, DuckDB's library, its threads.
_PROCESS_BASE_BYTES = 256 * 1024 * 1024


@dataclass(frozen=True)
class QueryLimits:
    max_rows: int = 10_000
    """Input rows (JSON rows or CSV records) a request may carry."""
    max_columns: int = 200
    """Distinct columns a request's data may have."""
    max_result_rows: int = 1_000
    """Rows an answer may hold; more set ``truncated``."""
    max_result_bytes: int = 1_000_000
    """JSON size of an answer's rows in bytes; more set ``truncated`` (a few wide rows can be
    huge), and a first row over it alone is a 400. DuckDB checks it before Python copies a row."""
    query_timeout_s: float = 5.0
    """Wall time for loading the data and running the query, then DuckDB is interrupted (it
    notices between steps of execution; ``sandbox`` says what it cannot stop)."""
    memory_limit: str = "256MB"
    """DuckDB's ``memory_limit`` for the per-request database: what a query holds while it
    executes, not constants evaluated while binding it (``sandbox`` says what else escapes)."""
    max_body_bytes: int = 8 * 1024 * 1024
    """HTTP body limit: CSV text or JSON rows for 10,000 rows do not fit in the 1 MiB default."""
    workers: int = 2
    """Query processes per server process (``pool``): how many requests compute at once; the
    rest wait up to ``query_timeout_s`` for one, then get a 503."""
    process_memory: str = "1GB"
    """The operating system's bound on one query process's address space (``RLIMIT_AS``): it
    holds whatever ``memory_limit`` does not count. The process itself takes about 200 MB."""

    @property
    def process_memory_bytes(self) -> int:
        return size_in_bytes(self.process_memory)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> QueryLimits:
        env = os.environ if environ is None else environ
        defaults = cls()
        return cls(
            max_rows=_positive(env, "DATA_PROCESSOR_MAX_ROWS", defaults.max_rows, int),
            max_columns=_positive(env, "DATA_PROCESSOR_MAX_COLUMNS", defaults.max_columns, int),
            max_result_rows=_positive(
                env, "DATA_PROCESSOR_MAX_RESULT_ROWS", defaults.max_result_rows, int
            ),
            max_result_bytes=_positive(
                env, "DATA_PROCESSOR_MAX_RESULT_BYTES", defaults.max_result_bytes, int
            ),
            query_timeout_s=_positive(
                env, "DATA_PROCESSOR_QUERY_TIMEOUT_S", defaults.query_timeout_s, float
            ),
            memory_limit=_memory(env, "DATA_PROCESSOR_MEMORY_LIMIT", defaults.memory_limit),
            max_body_bytes=_positive(
                env, "DATA_PROCESSOR_MAX_BODY_BYTES", defaults.max_body_bytes, int
            ),
            workers=_positive(env, "DATA_PROCESSOR_WORKERS", defaults.workers, int),
            process_memory=_process_memory(env, defaults.process_memory),
        )


def size_in_bytes(text: str) -> int:
    """``256MB`` or ``1 GiB`` as bytes (DuckDB's meaning: KB = 1000, KiB = 1024)."""
    match = _MEMORY.match(text.strip())
    if match is None:
        raise ValueError(f"not a size: {text!r}")
    number, unit = float(match.group(1)), match.group(3).upper()
    return int(number * _UNITS[unit])


def _positive(
    env: Mapping[str, str], name: str, default: NumberT, cast: Callable[[str], NumberT]
) -> NumberT:
    raw = env.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = cast(raw.strip())
    except ValueError:
        raise ConfigError(f"${name}: expected a positive number, got {raw!r}") from None
    if value <= 0:
        raise ConfigError(f"${name}: expected a positive number, got {raw!r}")
    return value


def _memory(env: Mapping[str, str], name: str, default: str) -> str:
    # Checked here because DuckDB would only complain on the first request.
    raw = (env.get(name) or "").strip()
    if not raw:
        return default
    if not _MEMORY.match(raw):
        raise ConfigError(f"${name}: expected a size such as 256MB or 1GB, got {raw!r}")
    return raw


def _process_memory(env: Mapping[str, str], default: str) -> str:
    """The query process's memory: by default 1GB, or room for a larger DuckDB memory_limit."""
    name = "DATA_PROCESSOR_PROCESS_MEMORY"
    duckdb_limit = _memory(env, "DATA_PROCESSOR_MEMORY_LIMIT", QueryLimits.memory_limit)
    needed = size_in_bytes(duckdb_limit) + _PROCESS_BASE_BYTES
    chosen = _memory(env, name, "")
    if not chosen:
        roomy = max(size_in_bytes(default), needed + _PROCESS_BASE_BYTES)
        return default if roomy == size_in_bytes(default) else f"{roomy // 2**20}MiB"
    if size_in_bytes(chosen) < needed:
        raise ConfigError(
            f"${name}: {chosen} is too small for a query process with a DuckDB memory_limit of "
            f"{duckdb_limit}; give it at least {needed // 2**20} MiB"
        )
    return chosen
