"""Helpers for the data processor's isolation tests: SQL over HTTP, timing, process checks."""

from __future__ import annotations

import os
import resource
import time
from dataclasses import dataclass
from typing import Any

from tests.agents.support import FunctionClient


@dataclass
class Answer:
    status: int
    body: dict[str, Any]
    seconds: float

    @property
    def message(self) -> str:
        return str(self.body.get("error", {}).get("message", ""))

    @property
    def rows(self) -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = self.body["result"]["rows"]
        return rows


def ask_sql(client: FunctionClient, query: str, **extra: Any) -> Answer:
    """POST one ``sql`` request over a one-row table and time the answer."""
    started = time.monotonic()
    response = client.post(
        "/", json={"operation": "sql", "rows": [{"a": 1}], "query": query, **extra}
    )
    return Answer(response.status_code, response.get_json(), time.monotonic() - started)


def peak_rss_mb() -> float:
    """This (the server's) process's peak resident memory so far."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie is gone for every purpose but its parent's bookkeeping.
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False
