"""``python -m bench.checkpoints``: what recording a run's steps costs (issue 21).

Each step a run finishes is one append to the store (``checkpoints.RunJournal.step``); a run
also writes its record when it starts and ends and takes and gives back its lease. Measured
here, one at a time from one asyncio loop, on each backend: Redis (a ``redis-server`` started
on a free port, no persistence), SQLite (a file in a temporary folder) and memory. The bar:
at most 1 ms p50 per step on Redis.

Then ``--burst`` (1,000) two-step tasks at once on one orchestrator instance (in process, its
``submit``): the model (in process, answering after ``--model-delay``) asks the real calculator
agent (its own process, ``python -m shared.serve``) once, then answers. A: no checkpoints (the
run's journal does nothing: today's bar); B: every step checkpointed on the Redis above, with
its lease. A and B alternate, ``--rounds`` each, in one run on one loop; the bar: B keeps at
least 0.7 of A's tasks/s.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import socket
import statistics
import subprocess
import tempfile
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from bench.chaos import ROOT, Process
from emulator.network import free_port
from functions.orchestrator.agents import AgentDirectory
from functions.orchestrator.checkpoints import Lease, RunJournal
from functions.orchestrator.config import AgentEntry, OrchestratorConfig
from functions.orchestrator.model import ModelReply
from functions.orchestrator.runs import RunRegistry
from functions.orchestrator.service import OrchestratorService
from functions.orchestrator.trace import RunResult, Step
from shared.aio import AsyncHttp
from shared.http import Call
from shared.store import open_store

STEPS = 2000


async def measure(url: str) -> tuple[float, float, float]:
    """p50, p99 and mean of one step's checkpoint, in milliseconds."""
    store = open_store(url)
    journal = RunJournal(store, ttl_s=600)
    step = Step(1, "agent", "calculator", {"expression": "6*7"}, outcome={"value": 42})
    resume = {"result": {"type": "tool_result", "tool_use_id": "t1", "content": "42"}}
    per_step = []
    try:
        for n in range(STEPS):
            began = time.perf_counter()
            await journal.step(f"run_{n % 50:024x}", step, resume)
            per_step.append((time.perf_counter() - began) * 1000)
        per_step.sort()
        return (
            statistics.median(per_step),
            per_step[int(len(per_step) * 0.99)],
            statistics.fmean(per_step),
        )
    finally:
        await store.aclose()


class TwoStepModel:
    """Asks the calculator, then (given its result) answers; each after ``delay_s``."""

    route = "default"

    def __init__(self, delay_s: float) -> None:
        self.delay_s = delay_s

    async def create(self, request: dict[str, Any], *, timeout_s: float) -> ModelReply:
        await asyncio.sleep(self.delay_s)
        last = request["messages"][-1]["content"]
        if isinstance(last, list):  # the calculator's result
            return ModelReply([{"type": "text", "text": "done"}], "end_turn", 10, 5, "bench")
        call = {
            "type": "tool_use",
            "id": "c1",
            "name": "calculator",
            "input": {"expression": "6*7"},
        }
        return ModelReply([call], "tool_use", 10, 5, "bench")


class NoJournal(RunJournal):
    """No checkpoints, no lease: what a run cost before issue 21 (the bar)."""

    @asynccontextmanager
    async def held(self, run_id: str) -> AsyncIterator[Lease]:
        yield Lease(run_id)

    async def begin(self, run_id: str, request: Any, **_: Any) -> bool:
        return True

    async def step(self, run_id: str, step: Step, resume: dict[str, Any] | None) -> None:
        return None

    async def finish(self, run_id: str, result: RunResult) -> None:
        return None


def _instance(
    store_url: str, agent_url: str, http: AsyncHttp, delay_s: float
) -> OrchestratorService:
    config = OrchestratorConfig.model_validate(
        {"gateway": {"url": "http://gateway.invalid"}, "log_level": "WARNING"}
    )
    agents = AgentDirectory(http, {"calculator": AgentEntry(url=agent_url)}, config.agent_calls)
    runs = RunRegistry(config.dedupe_ttl_s)
    store = open_store(store_url, timeout_s=10)
    model = TwoStepModel(delay_s)
    return OrchestratorService(config, model, agents, None, runs, store=store)


async def _rate(service: OrchestratorService, tasks: int) -> float:
    body = json.dumps({"task": "What is 6 * 7?"}).encode()
    calls = [Call("POST", "/", {"content-type": "application/json"}, body, "b")] * tasks
    began = time.perf_counter()
    replies = await asyncio.gather(*(service.submit(c) for c in calls))
    spent = time.perf_counter() - began
    done = [r for r in replies if r.status == 200 and r.body.get("status") == "completed"]
    assert len(done) == tasks, [r.body for r in replies if r not in done][:1]
    assert all(len(r.body["steps"]) == 3 for r in done)  # model, calculator, model
    return tasks / spent


async def burst(redis_url: str, agent_url: str, args: argparse.Namespace) -> dict[str, Any]:
    http = AsyncHttp()
    bare = _instance(redis_url, agent_url, http, args.model_delay)
    bare.journal = NoJournal(bare.journal.store, ttl_s=600)
    kept = _instance(redis_url, agent_url, http, args.model_delay)
    rates: dict[str, list[float]] = {"none": [], "redis": []}
    try:
        await _rate(bare, 100)  # warm: connections opened, schema fetched
        await _rate(kept, 100)
        for _ in range(args.rounds):
            rates["none"].append(await _rate(bare, args.burst))
            rates["redis"].append(await _rate(kept, args.burst))
    finally:
        await bare.aclose()
        await kept.aclose()
        await http.close()
    none, redis = statistics.median(rates["none"]), statistics.median(rates["redis"])
    pairs = [b / a for a, b in zip(rates["none"], rates["redis"], strict=True)]
    return {"none": none, "redis": redis, "ratio": statistics.median(pairs), "rates": rates}


def _wait_for_port(port: int, timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.02)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.checkpoints", description=__doc__)
    parser.add_argument("--burst", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--model-delay", type=float, default=0.2)
    args = parser.parse_args()
    rows = []
    server = shutil.which("redis-server")
    burst_figures = None
    with tempfile.TemporaryDirectory() as folder:
        if server:
            port = free_port()
            redis = subprocess.Popen(
                [server, "--port", str(port), "--save", "", "--appendonly", "no"],
                stdout=subprocess.DEVNULL,
            )
            calculator = Process(
                ROOT / "functions/agents/calculator/main.py",
                "calculator",
                {},
                Path(folder) / "calculator.log",
            )
            try:
                _wait_for_port(port)
                url = f"redis://127.0.0.1:{port}/0"
                rows.append(("redis", asyncio.run(measure(url))))
                calculator.start()
                calculator.wait_healthy()
                burst_figures = asyncio.run(burst(url, calculator.url, args))
            finally:
                calculator.kill()
                redis.terminate()
                redis.wait(5)
        rows.append(("sqlite", asyncio.run(measure(f"sqlite:///{Path(folder) / 'state.db'}"))))
        rows.append(("memory", asyncio.run(measure("memory://"))))
    print(f"{STEPS} step checkpoints, one at a time")
    print("| store | p50 ms | p99 ms | mean ms |")
    print("|---|---|---|---|")
    for name, (p50, p99, mean) in rows:
        print(f"| {name} | {p50:.3f} | {p99:.3f} | {mean:.3f} |")
    if burst_figures is not None:
        print(f"\n{args.burst} two-step tasks at once, one instance, {args.rounds} rounds each")
        print(f"(model answering after {args.model_delay} s; medians of the rounds)")
        print("| checkpoints | tasks/s | rounds |")
        print("|---|---|---|")
        for name in ("none", "redis"):
            each = ", ".join(f"{r:.0f}" for r in burst_figures["rates"][name])
            print(f"| {name} | {burst_figures[name]:.0f} | {each} |")
        print(
            f"ratio redis / none, median of the rounds': {burst_figures['ratio']:.2f} (bar >= 0.7)"
        )


if __name__ == "__main__":
    main()
