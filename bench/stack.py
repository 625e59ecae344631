"""``make bench-stack``: the full offline stack answering tasks, at 1, 10 and 100 at once.

The emulator starts every service of ``docker-compose.yml`` as it does for ``make demo`` (the
real gateway with its ``local`` model, the real agents, the orchestrator), on free ports. A
fixed mix of tasks (calculator, search, data processor) is sent to the orchestrator by
``concurrency`` clients for ``--seconds``; tasks/s, p50 and p99 task latency and failures are
reported. Results replace the "Full offline stack" section of bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp

from bench.results import write_between

BEGIN, END = "<!-- stack:begin -->", "<!-- stack:end -->"
NOTE = """The stack is CPU-bound from 10 tasks at once: each task costs three requests through the
orchestrator, two through the gateway and one agent call, each through the same server stack,
on 2 cores shared with the client. The long tail at 10 and 100 is most likely the data
processor's tasks queueing for its query processes (2 per worker by default,
`DATA_PROCESSOR_WORKERS`); this run does not split latency by task kind."""
TASKS = [
    {"task": "What is 17 * 23 - 4?"},
    {"task": "How does the gateway fall back between providers?"},
    {"task": "Describe this table", "data": [{"city": "Paris", "sales": 10}, {"city": "Lyon"}]},
]


def agentorch(state: Path, *args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "emulator.cli", "--state-dir", str(state), *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)


def orchestrator_url(state: Path) -> str:
    recorded = json.loads((state / "state.json").read_text())
    url: str = recorded["services"]["orchestrator"]["url"]
    return url


async def client(
    session: aiohttp.ClientSession, url: str, until: float, n: int, out: list[float]
) -> int:
    failures = 0
    while time.monotonic() < until:
        task = TASKS[n % len(TASKS)]
        n += 1
        started = time.monotonic()
        async with session.post(url, json=task) as response:
            body = await response.json()
        if response.status == 200 and body.get("status") == "completed":
            out.append(time.monotonic() - started)
        else:
            failures += 1
    return failures


async def load(url: str, concurrency: int, seconds: float) -> tuple[float, float, float, int]:
    latencies: list[float] = []
    timeout = aiohttp.ClientTimeout(total=120)
    async with aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=0), timeout=timeout
    ) as session:
        started = time.monotonic()
        until = started + seconds
        failures = await asyncio.gather(
            *(client(session, url, until, n, latencies) for n in range(concurrency))
        )
        elapsed = time.monotonic() - started
    latencies.sort()
    p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))]
    return len(latencies) / elapsed, statistics.median(latencies), p99, sum(failures)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=10)
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-stack-") as folder:
        state = Path(folder)
        started = agentorch(state, "up", "-d", "--any-port")
        if started.returncode != 0:
            raise SystemExit(started.stdout + started.stderr)
        try:
            url = orchestrator_url(state)
            asyncio.run(load(url, 4, 2))  # warm-up: schemas fetched, pools made
            for concurrency in (1, 10, 100):
                rate, p50, p99, failed = asyncio.run(load(url, concurrency, args.seconds))
                rows.append(
                    f"| {concurrency} | {rate:,.1f} | {p50 * 1000:,.0f} | {p99 * 1000:,.0f} "
                    f"| {failed} |"
                )
        finally:
            agentorch(state, "down")
    section = "\n".join(
        [
            BEGIN,
            "## Full offline stack (`make bench-stack`)",
            "",
            f"Measured {time.strftime('%Y-%m-%d')} on this machine, `python -m bench.stack`: the "
            "emulator's whole stack (real gateway with the `local` model, real agents, the "
            "orchestrator; 2 workers each), a repeating mix of three tasks (calculator, search, "
            f"data processor; two model calls and one agent call each), {args.seconds:g} s per "
            "level after a warm-up. Clients and stack share the machine's 2 cores.",
            "",
            "| concurrent tasks | tasks/s | p50 ms | p99 ms | failed |",
            "|---|---|---|---|---|",
            *rows,
            "",
            NOTE,
            END,
        ]
    )
    write_between(section, BEGIN, END)
    print(section)


if __name__ == "__main__":
    main()
