"""The gateway under functions-framework's production server: gunicorn, several workers."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator

import httpx
import pytest

from emulator.process import FunctionProcess, start_function
from shared.metrics import FLUSH_INTERVAL_S

pytestmark = pytest.mark.processes  # one worker for the module's processes

REQUESTS = 12


@pytest.fixture(scope="module")
def served() -> Iterator[FunctionProcess]:
    process = start_function("gateway", env={"WORKERS": "2", "THREADS": "2"})
    yield process
    process.stop()


def answered(metrics_text: str) -> float:
    pattern = (
        r'agentorch_http_requests_total\{function="gateway",route="/v1/messages",status="200"\}'
        r" (\S+)"
    )
    match = re.search(pattern, metrics_text)
    return float(match.group(1)) if match else 0.0


def test_metrics_count_every_worker(served: FunctionProcess) -> None:
    body = {"model": "local", "max_tokens": 32, "messages": [{"role": "user", "content": "hi"}]}
    with httpx.Client(base_url=served.url, timeout=10) as client:
        for _ in range(REQUESTS):
            # A fresh connection each time, so that both workers take some of them.
            assert client.post(
                "/v1/messages", json=body, headers={"connection": "close"}
            ).is_success
        # A worker writes its counts to the shared files once a second (shared/metrics.py), so
        # a scrape sees every worker's requests once that second has passed, never more.
        seen: list[float] = []
        deadline = time.monotonic() + 10
        while len(seen) < 6 and time.monotonic() < deadline:
            count = answered(client.get("/metrics", headers={"connection": "close"}).text)
            assert count <= REQUESTS
            if count == REQUESTS or seen:
                seen.append(count)
            else:
                time.sleep(FLUSH_INTERVAL_S / 4)

    assert seen == [REQUESTS] * 6  # whichever worker answers the scrape, once it has flushed
