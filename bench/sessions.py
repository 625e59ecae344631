"""``python -m bench.sessions`` (``make bench-sessions``): what sessions on Redis cost a task.

Issue 20's two figures, measured in one run against a real ``redis-server`` on loopback:

1. the added latency: p50 of one task at a time through the orchestrator's service
   (``OrchestratorService.submit``, as the ASGI edge calls it), without a session and with
   one that already holds earlier turns (each session gets ``TURNS`` turns over the run, so the
   history read grows as a real conversation's does);
2. the throughput kept: 1,000 tasks at once, each on its own session, against 1,000 at once
   with none (tasks per second of wall time; the ratio is the figure).

The model is in process (at once for the latency; after ``--model-delay`` in the burst) and
the task uses no agent: what is left is the orchestrator's own work, so the difference is the
sessions' (the claim with the history read, then the turn appended with the release: two store
round trips, beside the five that every run's record makes either way). HTTP in front
costs the same either way, so it is left out; it would only bring the ratio nearer 1. One
process is one worker: the stack serves the orchestrator with two.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import statistics
import time
from dataclasses import dataclass
from typing import Any

from bench.results import write_under_heading
from bench.tools import run
from functions.orchestrator.agents import AgentDirectory
from functions.orchestrator.config import OrchestratorConfig
from functions.orchestrator.model import ModelReply
from functions.orchestrator.runs import RunRegistry
from functions.orchestrator.service import OrchestratorService
from shared.aio import AsyncHttp
from shared.http import Call
from shared.store import open_store
from tests.fakes.redis_server import RedisServer

HEADING = "## Sessions on Redis (`make bench-sessions`)"
GC_YOUNG_THRESHOLD = 50_000
"""functions/orchestrator/main.py's: the collector as the served orchestrator runs it (with
the default, full collections of the 1,000 tasks alive at once took much of a burst's CPU)."""
TURNS = 8
"""Turns each session of the latency run reaches."""


class DelayedModel:
    """Answers after ``delay_s`` (0: at once), in process."""

    route = "default"

    def __init__(self) -> None:
        self.delay_s = 0.0

    async def create(self, request: dict[str, Any], *, timeout_s: float) -> ModelReply:
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        text = f"answer {len(request['messages'])}"
        return ModelReply([{"type": "text", "text": text}], "end_turn", 10, 5, "bench")


def service(store_url: str, http: AsyncHttp) -> OrchestratorService:
    config = OrchestratorConfig.model_validate(
        {"gateway": {"url": "http://gateway.invalid"}, "log_level": "WARNING"}
    )
    agents = AgentDirectory(http, {}, config.agent_calls)
    store = open_store(store_url, timeout_s=5)
    runs = RunRegistry(config.dedupe_ttl_s)
    return OrchestratorService(config, DelayedModel(), agents, None, runs, store=store)


def call(session_id: str | None) -> Call:
    body: dict[str, Any] = {"task": "What is 6 * 7?"}
    if session_id is not None:
        body["session_id"] = session_id
    return Call("POST", "/", {"content-type": "application/json"}, json.dumps(body).encode(), "b")


async def timed(orchestrator: OrchestratorService, request: Call) -> float:
    began = time.perf_counter()
    reply = await orchestrator.submit(request)
    assert reply.status == 200, reply.body
    return (time.perf_counter() - began) * 1000


async def latencies(orchestrator: OrchestratorService, tasks: int) -> tuple[list[float], ...]:
    """One task at a time, without and with a session in turn (so that the machine's load
    weighs on both alike)."""
    spread = max(1, tasks // TURNS)
    plain, kept = [], []
    for index in range(tasks):
        plain.append(await timed(orchestrator, call(None)))
        kept.append(await timed(orchestrator, call(f"bench-{index % spread}")))
    return plain, kept


@dataclass(frozen=True)
class Burst:
    rate: float
    """Tasks per second of wall time."""
    cpu_ms: float
    """This process's CPU per task (redis-server's not counted): what the neighbours' load
    on a shared machine moves far less than the rate."""


async def throughput(orchestrator: OrchestratorService, tasks: int, sessions: bool) -> Burst:
    requests = [call(f"burst-{i}" if sessions else None) for i in range(tasks)]
    began, cpu = time.perf_counter(), time.process_time()
    replies = await asyncio.gather(*(orchestrator.submit(r) for r in requests))
    spent, cpu = time.perf_counter() - began, time.process_time() - cpu
    assert all(reply.status == 200 for reply in replies)
    return Burst(tasks / spent, cpu * 1000 / tasks)


async def measure(
    redis_url: str, tasks: int, burst: int, delay_s: float, rounds: int
) -> dict[str, Any]:
    http = AsyncHttp()
    orchestrator = service(redis_url, http)
    model = orchestrator.model
    assert isinstance(model, DelayedModel)
    bare_bursts: list[Burst] = []
    session_bursts: list[Burst] = []
    try:
        await latencies(orchestrator, 50)  # warm: the connection, the scripts loaded
        plain, kept = await latencies(orchestrator, tasks)
        model.delay_s = delay_s
        await throughput(orchestrator, burst, True)  # warm
        for _ in range(rounds):  # in turn, so that the machine's load weighs on both alike
            bare_bursts.append(await throughput(orchestrator, burst, False))
            session_bursts.append(await throughput(orchestrator, burst, True))
    finally:
        await orchestrator.aclose()
        await http.close()
    return {
        "tasks": tasks,
        "burst": burst,
        "rounds": rounds,
        "p50_ms": statistics.median(plain),
        "p50_session_ms": statistics.median(kept),
        "rate": statistics.median(b.rate for b in bare_bursts),
        "rate_sessions": statistics.median(b.rate for b in session_bursts),
        "ratios": [k.rate / b.rate for k, b in zip(session_bursts, bare_bursts, strict=True)],
        "cpu_ms": statistics.median(b.cpu_ms for b in bare_bursts),
        "cpu_ms_sessions": statistics.median(b.cpu_ms for b in session_bursts),
        "delay_s": delay_s,
        "load": os.getloadavg()[0],
    }


def render(m: dict[str, Any]) -> str:
    added = m["p50_session_ms"] - m["p50_ms"]
    ratio = m["rate_sessions"] / m["rate"]
    ratios = ", ".join(f"{r:.2f}" for r in m["ratios"])
    return f"""{HEADING}

Method: `bench/sessions.py`'s docstring. A real `redis-server` on loopback (`--save ''`), the
orchestrator's service in one process (one worker) with an in-process model and no agent;
{m["tasks"]} tasks one at a time each way, in turn, with the model answering at once (sessions
of up to {TURNS} turns), then {m["burst"]} at once each way with the model answering after
{m["delay_s"]:g} s (as `make bench-orchestrator`'s burst), {m["rounds"]} rounds in turn, the
median shown (each round's ratio: {ratios}); the machine's load average at the end:
{m["load"]:.1f} on its cores (other work shares them). Targets (issue 20): at most 2 ms added
p50, at least 0.7 of the throughput.

| | no session | session on Redis | |
| --- | --- | --- | --- |
| p50 per task, one at a time | {m["p50_ms"]:.2f} ms | {m["p50_session_ms"]:.2f} ms \
| +{added:.2f} ms |
| {m["burst"]} at once, tasks/s | {m["rate"]:,.0f} | {m["rate_sessions"]:,.0f} | {ratio:.2f} of it |
| {m["burst"]} at once, CPU per task | {m["cpu_ms"]:.2f} ms | {m["cpu_ms_sessions"]:.2f} ms \
| +{m["cpu_ms_sessions"] - m["cpu_ms"]:.2f} ms |
"""


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.sessions")
    parser.add_argument("--tasks", type=int, default=1000)
    parser.add_argument("--burst", type=int, default=1000)
    parser.add_argument("--model-delay", type=float, default=1.0, help="in the burst, s")
    parser.add_argument("--rounds", type=int, default=5, help="of the bursts, in turn")
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    import shutil

    binary = shutil.which("redis-server")
    if binary is None:
        raise SystemExit("redis-server is not installed (apt-get install -y redis-server)")
    gc.freeze()  # what was loaded, out of reach, as shared.runtime.freeze_heap_for_workers
    gc.set_threshold(GC_YOUNG_THRESHOLD, *gc.get_threshold()[1:])
    redis = RedisServer(binary)
    redis.start()
    try:
        measured = run(measure(redis.url, args.tasks, args.burst, args.model_delay, args.rounds))
    finally:
        redis.stop()
    section = render(measured)
    print(section)
    if not args.no_write:
        write_under_heading(section, HEADING)


if __name__ == "__main__":
    main()
