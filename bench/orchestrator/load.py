"""The measurements over a served orchestrator: overhead per step one task at a time, bursts
of tasks at once (cold and warm), and the model client against the wire and the SDK."""

from __future__ import annotations

import asyncio
import json
import statistics
import time
from typing import Any

from bench.orchestrator.processes import start_fakes, start_orchestrator
from bench.orchestrator.streams import Client, request
from bench.tools import cpu_seconds, process_tree, run, stop


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


TASK = {"task": "what is 6*7?"}
TASK_REQUEST = request("POST", "/", TASK)
HEALTH_REQUEST = request("GET", "/health")


async def timed_task(client: Client) -> tuple[float, dict[str, Any] | None]:
    began = time.perf_counter()
    status, raw = await client.send(TASK_REQUEST)
    elapsed = (time.perf_counter() - began) * 1000
    return elapsed, json.loads(raw) if status == 200 else None


async def overhead(url: str, tasks: int) -> dict[str, float]:
    edge: list[float] = []
    loop: list[float] = []
    client = await Client.connect(url)
    for _ in range(30):  # warm-up: connections, caches, the schema fetch
        await timed_task(client)
    for _ in range(tasks):
        elapsed, body = await timed_task(client)
        assert body is not None and body["status"] == "completed", body
        steps = body["steps"]
        inside = sum(step["latency_ms"] for step in steps)
        edge.append((elapsed - inside) / len(steps))
        loop.append((body["duration_ms"] - inside) / len(steps))
    client.close()
    return {
        "edge_p50": statistics.median(edge),
        "edge_p99": percentile(edge, 0.99),
        "loop_p50": statistics.median(loop),
        "loop_p99": percentile(loop, 0.99),
        "steps": len(steps),
        "tasks": tasks,
    }


async def connect_one_by_one(url: str, count: int) -> list[Client]:
    """``count`` connections, each opened once the previous one is, then all asked for
    /health: the workers take them as they come, as they would connections made over time."""
    clients = [await Client.connect(url) for _ in range(count)]
    answers = await asyncio.gather(*(client.send(HEALTH_REQUEST) for client in clients))
    assert all(status == 200 for status, _ in answers), "a connection was refused"
    return clients


async def burst(
    url: str, tasks: int, delay_s: float, pids: dict[str, int], warm: bool
) -> dict[str, float]:
    """``tasks`` tasks at once; cold: each opens its connection inside the burst."""
    clients = await connect_one_by_one(url, tasks) if warm else None

    async def one(index: int) -> tuple[float, dict[str, Any] | None]:
        began = time.perf_counter()
        client = clients[index] if clients else await Client.connect(url)
        try:
            async with asyncio.timeout(120):
                _, body = await timed_task(client)
        finally:
            client.close()
        return (time.perf_counter() - began) * 1000, body

    workers = [p for p in process_tree(pids["orchestrator"]) if p != pids["orchestrator"]]
    cpu_before = {name: cpu_seconds(pid) for name, pid in pids.items()}
    workers_before = [cpu_seconds(pid) for pid in workers]
    client_before = time.process_time()
    began = time.perf_counter()
    outcomes = await asyncio.gather(*(one(i) for i in range(tasks)), return_exceptions=True)
    wall = time.perf_counter() - began
    cpu = {f"cpu_{name}": cpu_seconds(pid) - cpu_before[name] for name, pid in pids.items()}
    cpu["cpu_client"] = time.process_time() - client_before
    per_worker = [cpu_seconds(p) - b for p, b in zip(workers, workers_before, strict=True)]
    cpu["busiest_share"] = max(per_worker) / (sum(per_worker) or 1)
    return summary(outcomes, tasks, wall, 2 * delay_s) | cpu


def summary(outcomes: list[Any], tasks: int, wall: float, ideal_s: float) -> dict[str, float]:
    done = [o for o in outcomes if isinstance(o, tuple)]
    bodies = [body for _, body in done if body is not None]
    latencies = [elapsed for elapsed, _ in done]
    steps = {
        f"step{i}_ms": statistics.median(b["steps"][i]["latency_ms"] for b in bodies)
        for i in range(3)
        if bodies and all(len(b["steps"]) > i for b in bodies)
    }
    edge = [elapsed - body["duration_ms"] for elapsed, body in done if body is not None]
    completed = sum(1 for body in bodies if body["status"] == "completed")
    return {
        "tasks": tasks,
        "errors": tasks - completed,
        "wall_s": wall,
        "throughput": tasks / wall,
        "ideal": tasks / ideal_s,
        "ratio": ideal_s / wall,
        "p50_ms": statistics.median(latencies) if latencies else 0.0,
        "p99_ms": percentile(latencies, 0.99) if latencies else 0.0,
        "edge_ms": statistics.median(edge) if edge else 0.0,
        **steps,
    }


async def model_clients(fakes_url: str, calls: int) -> dict[str, float]:
    import anthropic

    from functions.orchestrator.model import GatewayModel
    from shared.aio import AsyncHttp
    from shared.resilience import RetrySettings

    body = {"max_tokens": 64, "messages": [{"role": "user", "content": "6*7?"}]}
    http = AsyncHttp()
    wire = GatewayModel(http, fakes_url, "default", RetrySettings(max_attempts=1))
    sdk = anthropic.AsyncAnthropic(base_url=fakes_url, api_key="unused", max_retries=0)

    async def via_wire() -> None:
        await wire.create(body, timeout_s=10)

    async def via_sdk() -> None:
        raw = await sdk.messages.with_raw_response.create(model="default", **body)  # type: ignore[call-overload]
        raw.headers.get("x-gateway-provider")
        await raw.parse()

    timings: dict[str, float] = {}
    for name, call in (("wire", via_wire), ("sdk", via_sdk), ("wire2", via_wire)):
        for _ in range(50):
            await call()
        samples = []
        for _ in range(calls):
            began = time.perf_counter()
            await call()
            samples.append((time.perf_counter() - began) * 1000)
        timings[name] = statistics.median(samples)
    await http.close()
    await sdk.close()
    timings["wire"] = min(timings.pop("wire2"), timings["wire"])
    return timings


def held_at_once(tasks: int, delay_s: float) -> tuple[dict[str, float], dict[str, float]]:
    """The cold burst, then the warm one, on one instance."""
    fakes, fakes_url = start_fakes(delay_s)
    try:
        orchestrator, url = start_orchestrator(fakes_url)
        try:
            pids = {"orchestrator": orchestrator.pid, "fakes": fakes.pid}

            async def both() -> tuple[dict[str, float], dict[str, float]]:
                client = await Client.connect(url)
                await timed_task(client)  # the schema fetched, the first model call made
                client.close()
                cold = await burst(url, tasks, delay_s, pids, warm=False)
                return cold, await burst(url, tasks, delay_s, pids, warm=True)

            return run(both())
        finally:
            stop(orchestrator)
    finally:
        stop(fakes)
