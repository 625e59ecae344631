"""``python -m bench.data_processor``: what running each query in a query process costs.

The same requests, one at a time and interleaved, through ``agent.run`` in this process and through
``agent.run_isolated`` (the pool a served request uses): a tiny one (``SELECT 1`` over one
row), a typical one (group_by over a 1,000-row CSV) and a large one (describe over 10,000 JSON
rows, ~0.5 MB to send). Also the pool's start (first query) and the replacement of a process
killed at the deadline. Prints a Markdown table for bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from contextlib import suppress

from functions.agents.data_processor.agent import DataRequest, build_spec, run
from functions.agents.data_processor.limits import QueryLimits
from functions.agents.data_processor.pool import QueryPool
from shared.agent import parse_input
from shared.errors import BadRequest

CSV = "region,product,units\n" + "".join(
    f"{('north', 'south', 'east')[i % 3]},p{i % 17},{i % 101}\n" for i in range(1000)
)
REQUESTS = {
    "tiny: SELECT 1, 1 row": {"operation": "sql", "rows": [{"a": 1}], "query": "SELECT 1 AS one"},
    "typical: group_by, 1,000-row CSV": {
        "operation": "group_by",
        "csv": CSV,
        "group_by": ["region"],
        "aggregates": [{"fn": "sum", "column": "units"}, {"fn": "count"}],
    },
    "large: describe, 10,000 JSON rows": {
        "operation": "describe",
        "rows": [{"id": i, "name": f"n{i}", "score": i * 0.5} for i in range(10_000)],
    },
}


def timed(call: Callable[[], object], repeat: int) -> list[float]:
    samples = []
    for _ in range(repeat):
        started = time.perf_counter()
        call()
        samples.append((time.perf_counter() - started) * 1000)
    return samples


def p95(samples: list[float]) -> float:
    return sorted(samples)[int(len(samples) * 0.95) - 1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=200)
    args = parser.parse_args()
    limits = QueryLimits()
    pool = QueryPool(run, size=1, address_space=limits.process_memory_bytes, memory_label="1GB")
    spec = build_spec(limits, pool)
    tiny = parse_input(DataRequest, REQUESTS["tiny: SELECT 1, 1 row"])
    cold = timed(lambda: spec.run(tiny), 1)[0]

    print("| request | in-process p50 | p95 | pool p50 | p95 | overhead p50 |")
    print("|---|---|---|---|---|---|")
    for name, body in REQUESTS.items():
        request = parse_input(DataRequest, body)
        repeat = max(20, args.repeat // 10) if "large" in name else args.repeat

        def local_call(r: DataRequest = request) -> object:
            return run(r, limits)

        def pooled_call(r: DataRequest = request) -> object:
            return spec.run(r)

        timed(local_call, 5)  # warm both paths
        timed(pooled_call, 5)
        local, pooled = [], []
        for _ in range(repeat):  # interleaved, so that other load on the machine hits both
            local += timed(local_call, 1)
            pooled += timed(pooled_call, 1)
        a, b = statistics.median(local), statistics.median(pooled)
        print(
            f"| {name} | {a:.2f} | {p95(local):.2f} | {b:.2f} | {p95(pooled):.2f} | {b - a:+.2f} |"
        )

    killer = parse_input(
        DataRequest,
        {"operation": "sql", "rows": [{"a": 1}], "query": "SELECT list_sort(range(20000000))[1]"},
    )
    quick = QueryLimits(query_timeout_s=0.3)
    quick_spec = build_spec(quick, pool)
    with suppress(BadRequest):
        quick_spec.run(killer)
    replaced = timed(lambda: spec.run(tiny), 1)[0]
    print(
        f"\nfirst query (forkserver + first process): {cold:.0f} ms; "
        f"first query after a kill (a new process): {replaced:.1f} ms"
    )
    pool.close()


if __name__ == "__main__":
    main()
