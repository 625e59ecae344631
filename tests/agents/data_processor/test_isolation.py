"""Each query runs in a query process the operating system bounds: memory, CPU, wall time.

Regressions of an attack on the landed function, where DuckDB's own limits let
``SELECT range(100000000)[1]`` reach 1.4 GB and run 7.5 s past a 5 s deadline, and four such
queries took 6.5 GB of one server process.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from functions.agents.data_processor.limits import QueryLimits
from functions.agents.data_processor.pool import Budget, QueryPool
from shared.errors import BadRequest, UpstreamUnavailable
from tests.agents.data_processor import targets
from tests.agents.data_processor.support import alive, ask_sql, peak_rss_mb
from tests.agents.support import FunctionClient, function_client
from tests.waiting import wait_until

pytestmark = pytest.mark.processes

REPO = Path(__file__).resolve().parents[3]
GIB = 2**30


@pytest.fixture
def client() -> FunctionClient:
    """The data processor with its memory bounds and its wall-time limit far away (conftest.py),
    so what ends a hog is the memory bound it tests, however busy the machine is."""
    return function_client("data_processor")


@pytest.fixture
def small_pool() -> Iterator[QueryPool]:
    pool = QueryPool(targets.hold, size=1, address_space=GIB, memory_label="1GB")
    yield pool
    pool.close()


HOGS = [
    "SELECT range(100000000)[1] AS x",  # was 1.4 GB, 7.5 s past the deadline
    "SELECT strlen(repeat('x', 900000000)) AS x",  # was 1.9 GB
    "SELECT range(100000) AS r FROM range(1000)",  # mid-size values memory_limit misses
]


@pytest.mark.parametrize("query", HOGS)
def test_memory_hogs_are_a_400_and_never_grow_the_server(
    client: FunctionClient, query: str
) -> None:
    ask_sql(client, "SELECT 1")  # the query processes exist before measuring
    before = peak_rss_mb()
    answer = ask_sql(client, query)
    assert answer.status == 400, answer.body
    assert "exceeded the memory limit" in answer.message  # not the far wall-time limit
    assert peak_rss_mb() - before < 100  # the gigabytes were never in this process
    assert ask_sql(client, "SELECT 2 AS two").rows == [{"two": 2}]  # the pool recovered


def test_concurrent_hogs_stay_within_the_pool(client: FunctionClient) -> None:
    ask_sql(client, "SELECT 1")
    before = peak_rss_mb()
    answers = []

    def hog() -> None:
        answers.append(ask_sql(client, HOGS[0]))

    threads = [threading.Thread(target=hog) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert [a.status for a in answers] == [400] * 4
    assert all("exceeded the memory limit" in a.message for a in answers)
    assert peak_rss_mb() - before < 100
    assert ask_sql(client, "SELECT 3 AS three").rows == [{"three": 3}]


def test_a_query_that_ignores_its_interrupt_is_killed_at_the_deadline(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("DATA_PROCESSOR_QUERY_TIMEOUT_S", "0.5")
    client = function_client("data_processor")
    ask_sql(client, "SELECT 1")
    # DuckDB sees interrupt() only after sorting: about 9 s in this process, 0.5 s allowed.
    answer = ask_sql(client, "SELECT list_sort(range(20000000))[1] AS first")
    assert answer.status == 400, answer.body
    assert "exceeded the time limit of 0.5 s" in answer.message
    assert answer.seconds < 2.0
    assert ask_sql(client, "SELECT 4 AS four").rows == [{"four": 4}]


def test_the_kernel_stops_a_process_past_its_cpu_budget() -> None:
    pool = QueryPool(targets.burn_cpu, size=1, address_space=GIB, memory_label="1GB")
    try:
        # The wall-clock deadline is far away: only RLIMIT_CPU can stop this.
        with pytest.raises(BadRequest, match="exceeded the time limit"):
            pool.call((60.0,), Budget(wall_s=30.0, cpu_s=1.0), wait_s=5.0)
        assert pool.call((0.0,), Budget(wall_s=30.0, cpu_s=1.0), wait_s=5.0) > 0
    finally:
        pool.close()


def test_a_full_pool_answers_503_after_the_wait(small_pool: QueryPool) -> None:
    started = threading.Event()
    results: list[int] = []

    def slow() -> None:
        started.set()
        results.append(small_pool.call((1.5,), Budget(wall_s=10.0, cpu_s=10.0), wait_s=5.0))

    thread = threading.Thread(target=slow)
    thread.start()
    started.wait(5.0)
    assert wait_until(lambda: len(small_pool.pids()) == 1, 5.0)
    with pytest.raises(UpstreamUnavailable, match="all 1 query processes stayed busy") as caught:
        small_pool.call((0.0,), Budget(wall_s=10.0, cpu_s=10.0), wait_s=0.2)
    assert caught.value.status_code == 503
    thread.join(timeout=15)
    assert len(results) == 1
    # The same process served both calls once free: it is reused, not restarted.
    assert small_pool.call((0.0,), Budget(wall_s=10.0, cpu_s=10.0), wait_s=5.0) == results[0]


def test_a_killed_process_is_replaced(small_pool: QueryPool) -> None:
    first = small_pool.call((0.0,), Budget(wall_s=5.0, cpu_s=5.0), wait_s=5.0)
    with pytest.raises(BadRequest, match="exceeded the time limit of 0.2 s"):
        small_pool.call((30.0,), Budget(wall_s=0.2, cpu_s=5.0), wait_s=5.0)
    assert wait_until(lambda: not alive(first), 5.0)
    second = small_pool.call((0.0,), Budget(wall_s=5.0, cpu_s=5.0), wait_s=5.0)
    assert second != first


def test_the_pool_size_is_configurable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATA_PROCESSOR_WORKERS", "1")
    client = function_client("data_processor")
    assert client.get("/health").get_json()["query_processes"] == 1
    assert QueryLimits.load({}).workers == 2


SERVER = textwrap.dedent(
    """
    import sys
    from functions.agents.data_processor.agent import DataRequest, build_spec

    if __name__ == "__main__":
        spec = build_spec()
        request = DataRequest(operation="sql", rows=[{"a": 1}], query="SELECT 1 AS one")
        spec.run(request)
        spec.run(request)
        from functions.agents.data_processor import pool
        pids = [p for shared in pool._SHARED.values() for p in shared.pids()]
        print(" ".join(map(str, pids)), flush=True)
        if sys.argv[1] == "hang":
            sys.stdin.read()
    """
)


def _server(mode: str) -> tuple[subprocess.Popen[str], list[int]]:
    process = subprocess.Popen(
        [sys.executable, "-c", SERVER, mode],
        cwd=REPO,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    pids = [int(pid) for pid in process.stdout.readline().split()]
    assert pids
    return process, pids


def test_no_query_process_outlives_a_server_that_exits() -> None:
    process, pids = _server("exit")
    assert process.wait(timeout=30) == 0
    assert wait_until(lambda: not any(alive(pid) for pid in pids), 10.0)


def test_no_query_process_outlives_a_server_that_is_killed() -> None:
    process, pids = _server("hang")
    assert all(alive(pid) for pid in pids)
    os.kill(process.pid, signal.SIGKILL)
    process.wait(timeout=10)
    # Each reads end-of-file on its pipe and exits; nothing is left to reap them but init.
    assert wait_until(lambda: not any(alive(pid) for pid in pids), 10.0)
