"""``make bench-orchestrator``: the orchestrator's own cost per step, and how many tasks one
instance holds at once. Results go to the orchestrator section of bench/RESULTS.md.

One orchestrator instance (functions-framework's ASGI server, 2 uvicorn workers as every
function is served here) in front of a fake gateway and a fake calculator agent (one process).
Every task is two model turns and one agent call: the model asks for the calculator, then
answers.

- Overhead per step: instant fakes, one task at a time; per task, the client's time minus the
  model and agent steps' own latencies (as the orchestrator measured them around each call),
  over the number of steps.
- Concurrency: the fake gateway answers each call after 1 s; 1,000 tasks sent at once, each on
  its own connection, and all must complete. Ideal time is 2 s (two model turns), so ideal
  throughput is 500 tasks/s. Measured twice on one instance: cold (every connection, to it and
  from it, opened inside the burst), then warm (the instance's pool to the gateway kept from
  the cold burst, the client's connections opened one after another just before).
- In process (``--profile``): the orchestrator's ASGI app driven with ASGI scopes, no server,
  CPU per task in bursts of 500 (one worker's share of 1,000): the steadiest figure here.
- Model client: the anthropic SDK (AsyncAnthropic with base_url) against the wire
  (``shared.aio``, what the orchestrator uses), per call against the instant fake, and import
  time.

The fakes and the load client stand for other machines but share this machine's cores with the
orchestrator, so both are plain asyncio streams with answers and requests encoded once; their
CPU is reported beside the orchestrator's.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.metadata
import json
import os
import statistics
import subprocess
import sys
import time
import urllib.request
from collections.abc import Coroutine
from pathlib import Path
from typing import Any, TypeVar

import yaml

from bench.tools import WORK, cpu_seconds, process_tree, wait_until

T = TypeVar("T")
REPO_ROOT = Path(__file__).resolve().parent.parent
RESULTS = Path(__file__).resolve().parent / "RESULTS.md"
HEADING = "## Orchestrator"
TASK = {"task": "what is 6*7?"}
CALCULATOR_SCHEMA = {
    "name": "calculator",
    "description": "Arithmetic.",
    "input_schema": {
        "type": "object",
        "properties": {"expression": {"type": "string", "minLength": 1}},
        "required": ["expression"],
        "additionalProperties": False,
    },
}


# -- HTTP/1.1 on asyncio streams, for the fakes and the load client ---------------------------


def content_length(head: bytes) -> int:
    at = head.lower().find(b"\r\ncontent-length:")
    if at < 0:
        return 0
    return int(head[at + 17 : head.find(b"\r\n", at + 2)])


def response(payload: Any, status: bytes = b"200 OK") -> bytes:
    body = json.dumps(payload).encode()
    return (
        b"HTTP/1.1 %s\r\ncontent-type: application/json\r\nx-gateway-provider: fake\r\n"
        b"content-length: %d\r\n\r\n%s" % (status, len(body), body)
    )


def request(method: str, path: str, payload: Any = None) -> bytes:
    body = b"" if payload is None else json.dumps(payload).encode()
    head = f"{method} {path} HTTP/1.1\r\nhost: bench\r\ncontent-type: application/json\r\n"
    return f"{head}content-length: {len(body)}\r\n\r\n".encode() + body


class Client:
    """One keep-alive connection to the orchestrator. Only the status and ``content-length`` of
    an answer are read before its body: the load client must not be what is measured."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader, self._writer = reader, writer

    @classmethod
    async def connect(cls, url: str) -> Client:
        host, port = url.removeprefix("http://").split(":")
        reader, writer = await asyncio.open_connection(host, int(port), limit=1 << 22)
        return cls(reader, writer)

    async def send(self, raw: bytes) -> tuple[int, bytes]:
        self._writer.write(raw)
        head = await self._reader.readuntil(b"\r\n\r\n")
        return int(head[9:12]), await self._reader.readexactly(content_length(head))

    def close(self) -> None:
        self._writer.close()


# -- the fakes (run as ``python -m bench.orchestrator fakes PORT DELAY``) ------------------


def _message(content: list[dict[str, Any]], stop: str) -> dict[str, Any]:
    return {
        "id": "msg_bench",
        "type": "message",
        "role": "assistant",
        "model": "bench",
        "content": content,
        "stop_reason": stop,
        "stop_sequence": None,
        "usage": {"input_tokens": 20, "output_tokens": 10},
    }


TOOL_TURN = _message(
    [{"type": "tool_use", "id": "toolu_1", "name": "calculator", "input": {"expression": "6*7"}}],
    "tool_use",
)
ANSWER_TURN = _message([{"type": "text", "text": "6*7 = 42"}], "end_turn")


class Fakes:
    """The gateway (``POST /v1/messages`` after ``delay_s``: a calculator call, or the answer
    once a tool result is in the conversation) and the calculator (``GET /calculator/schema``,
    ``POST /calculator/``) on one port. Requests are scanned, not parsed."""

    ROUTES = {
        (b"GET", b"/calculator/schema"): response(CALCULATOR_SCHEMA),
        (b"POST", b"/calculator/"): response({"result": {"expression": "6*7", "value": 42}}),
    }
    NOT_FOUND = response({"error": {"type": "not_found", "message": "no route"}}, b"404 X")
    TOOL_TURN, ANSWER_TURN = response(TOOL_TURN), response(ANSWER_TURN)

    def __init__(self, delay_s: float) -> None:
        self.delay_s = delay_s

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                body = await reader.readexactly(content_length(head))
                method, path, _ = head.split(b" ", 2)
                if (method, path) == (b"POST", b"/v1/messages"):
                    if self.delay_s:
                        await asyncio.sleep(self.delay_s)
                    writer.write(self.ANSWER_TURN if b'"tool_result"' in body else self.TOOL_TURN)
                else:
                    writer.write(self.ROUTES.get((method, path), self.NOT_FOUND))
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.LimitOverrunError):
            pass
        finally:
            writer.close()


async def serve_fakes(port: int, delay_s: float) -> None:
    fakes = Fakes(delay_s)
    server = await asyncio.start_server(fakes.serve, "127.0.0.1", port, backlog=4096, limit=1 << 22)
    async with server:
        await server.serve_forever()


# -- processes ------------------------------------------------------------------------------


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1) as answer:
            return bool(answer.status < 500)
    except OSError:
        return False


def start_fakes(delay_s: float) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    command = [sys.executable, "-m", "bench.orchestrator", "fakes", str(port), str(delay_s)]
    process = subprocess.Popen(command, cwd=REPO_ROOT)
    url = f"http://127.0.0.1:{port}"
    wait_until(lambda: _healthy(f"{url}/calculator/schema"), 20, "fakes")
    return process, url


def bench_config(fakes_url: str) -> dict[str, Any]:
    return {
        "gateway": {"url": fakes_url, "timeout_s": 30},
        "agents": {"calculator": {"url": f"{fakes_url}/calculator"}},
        "agent_calls": {"max_parallel": 4},
        "log_level": "WARNING",
    }


def start_orchestrator(fakes_url: str, workers: int = 2) -> tuple[subprocess.Popen[bytes], str]:
    WORK.mkdir(parents=True, exist_ok=True)
    path = WORK / "orchestrator.bench.yaml"
    path.write_text(yaml.safe_dump(bench_config(fakes_url)))
    port = free_port()
    env = {
        **os.environ,
        "ORCHESTRATOR_CONFIG": str(path),
        "PORT": str(port),
        "WORKERS": str(workers),
        "LOG_LEVEL": "WARNING",
        "PYTHONPATH": str(REPO_ROOT),
    }
    for variable in ("GATEWAY_URL", "CALCULATOR_URL", "K_SINK"):
        env.pop(variable, None)
    binary = Path(sys.executable).parent / "functions-framework"
    command = [
        str(binary),
        "--source",
        str(REPO_ROOT / "functions/orchestrator/main.py"),
        "--target",
        "orchestrator",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
    ]
    process = subprocess.Popen(command, cwd=REPO_ROOT, env=env)
    url = f"http://127.0.0.1:{port}"
    wait_until(lambda: _healthy(f"{url}/health"), 30, "orchestrator")
    # /health answers once one worker is up; the others must be too before anything is measured.
    wait_until(lambda: len(process_tree(process.pid)) > workers, 30, "orchestrator's workers")
    return process, url


def stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


# -- measurements ---------------------------------------------------------------------------


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


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


def import_seconds(module: str, runs: int = 5) -> float:
    code = f"import time; t = time.perf_counter(); import {module}; print(time.perf_counter() - t)"
    samples = [
        float(
            subprocess.run(
                [sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, check=True
            ).stdout
        )
        for _ in range(runs)
    ]
    return statistics.median(samples)


def cold_start_s(fakes_url: str) -> float:
    began = time.monotonic()
    process, _ = start_orchestrator(fakes_url)
    elapsed = time.monotonic() - began
    stop(process)
    return elapsed


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


def run(coroutine: Coroutine[Any, Any, T]) -> T:
    """``coroutine`` on uvloop when it is installed, as the servers run."""
    try:
        import uvloop

        return uvloop.run(coroutine)
    except ImportError:
        return asyncio.run(coroutine)


# -- in process: the orchestrator's CPU per task, without a server or sockets to it ----------


def scope() -> dict[str, Any]:
    body_size = str(len(TASK_REQUEST.partition(b"\r\n\r\n")[2])).encode()
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/",
        "raw_path": b"/",
        "query_string": b"",
        "root_path": "",
        "headers": [(b"content-type", b"application/json"), (b"content-length", body_size)],
        "client": ("127.0.0.1", 1),
        "server": ("127.0.0.1", 8080),
    }


async def asgi_task(app: Any) -> None:
    """One task through the app as the server hands it over: a scope, the body, the answer."""
    body = TASK_REQUEST.partition(b"\r\n\r\n")[2]
    received = asyncio.Event()
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        if received.is_set():
            await asyncio.Event().wait()  # no disconnect while the task runs
        received.set()
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await app(scope(), receive, send)
    answer = json.loads(b"".join(m.get("body", b"") for m in sent[1:]))
    assert sent[0]["status"] == 200 and answer["status"] == "completed", answer


async def in_process(fakes_url: str, tasks: int, size: int) -> dict[str, float]:
    """CPU per task of the orchestrator's ASGI app (functions-framework's, from its main.py)
    in bursts of ``size`` (what one worker gets of 1,000), against instant fakes in another
    process, and the garbage collector's share of it."""
    import gc

    import functions_framework.aio

    WORK.mkdir(parents=True, exist_ok=True)
    config = WORK / "orchestrator.in-process.yaml"
    config.write_text(yaml.safe_dump(bench_config(fakes_url)))
    os.environ.update({"ORCHESTRATOR_CONFIG": str(config), "LOG_LEVEL": "WARNING"})
    source = str(REPO_ROOT / "functions/orchestrator/main.py")
    app = functions_framework.aio.create_asgi_app("orchestrator", source)
    collected = {"s": 0.0, "began": 0.0}

    def timed(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            collected["began"] = time.process_time()
        else:
            collected["s"] += time.process_time() - collected["began"]

    for _ in range(2):  # warm-up: caches, and the pool to the fakes as large as a burst
        await asyncio.gather(*(asgi_task(app) for _ in range(size)))
    gc.callbacks.append(timed)
    began = time.process_time()
    for _ in range(tasks // size):
        await asyncio.gather(*(asgi_task(app) for _ in range(size)))
    cpu = time.process_time() - began
    gc.callbacks.remove(timed)
    done = tasks // size * size
    return {"cpu_ms": 1000 * cpu / done, "gc_ms": 1000 * collected["s"] / done, "size": size}


def in_process_cpu(fakes_url: str, tasks: int = 4000, size: int = 500) -> dict[str, float]:
    """``in_process`` in a process of its own, so that the orchestrator's collector settings
    (its main.py sets them) do not reach the load client's."""
    command = [sys.executable, "-m", "bench.orchestrator", "in-process", fakes_url]
    command += [str(tasks), str(size)]
    done = subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True, check=True)
    measured: dict[str, float] = json.loads(done.stdout.strip().splitlines()[-1])
    return measured


# -- report ---------------------------------------------------------------------------------


def middle(runs: list[dict[str, float]]) -> dict[str, float]:
    """The run with the median throughput."""
    return sorted(runs, key=lambda r: r["ratio"])[len(runs) // 2]


def load_rows(runs: list[dict[str, float]], what: str, verdict: bool) -> list[tuple[str, ...]]:
    """The rows of one kind of burst (cold or warm), over its runs."""

    def judged(ok: bool) -> str:
        return ("met" if ok else "**not met**") if verdict else ""

    load = middle(runs)
    ratios = sorted(r["ratio"] for r in runs)
    errors = sum(r["errors"] for r in runs)
    per_task = 1000 * load["cpu_orchestrator"] / load["tasks"]
    target = "0" if verdict else "(reported)"
    return [
        (
            f"{load['tasks']:.0f} tasks at once, {what}: errors",
            f"{errors:.0f}",
            target,
            judged(not errors),
        ),
        (
            f"... throughput, tasks/s (ideal {load['ideal']:.0f}), median of {len(runs)} runs",
            f"{load['throughput']:.0f} ({load['ratio']:.2f} of ideal; runs "
            f"{ratios[0]:.2f}-{ratios[-1]:.2f})",
            ">= 0.7 of ideal" if verdict else "(reported)",
            judged(load["ratio"] >= 0.7),
        ),
        (
            "... wall time / task latency p50 / p99, s",
            f"{load['wall_s']:.2f} / {load['p50_ms'] / 1000:.2f} / {load['p99_ms'] / 1000:.2f}",
            "ideal 2.00",
            "",
        ),
        (
            "... CPU used: orchestrator / fakes / load client, s",
            f"{load['cpu_orchestrator']:.2f} / {load['cpu_fakes']:.2f} / {load['cpu_client']:.2f}",
            "(reported)",
            "",
        ),
        (
            "... orchestrator CPU per task, ms; the busier worker's share of it",
            f"{per_task:.2f}; {load['busiest_share']:.2f}",
            "(reported)",
            "",
        ),
        (
            "... median step latency: model / agent / model, and outside the run, s",
            " / ".join(
                f"{load.get(key, 0.0) / 1000:.2f}"
                for key in ("step0_ms", "step1_ms", "step2_ms", "edge_ms")
            ),
            "1 / 0 / 1, 0",
            "",
        ),
    ]


def render(measured: dict[str, Any]) -> str:
    over, inside, clients = measured["overhead"], measured["in_process"], measured["clients"]
    cold, warm, slower = measured["cold"], measured["warm"], measured["slower"]
    imports = measured["imports"]
    verdict = "met" if over["edge_p50"] <= 3 else "**not met**"
    slow_cold, slow_warm = slower
    warm_rows = load_rows(warm, "the same on a warm instance", verdict=False)
    rows = [
        ("measure", "result", "target", ""),
        ("---", "---", "---", "---"),
        (
            "overhead per step p50 (instant fakes, edge to edge), ms",
            f"{over['edge_p50']:.2f}",
            "<= 3 ms",
            verdict,
        ),
        ("overhead per step p99, ms", f"{over['edge_p99']:.2f}", "(reported)", ""),
        (
            "... of it inside the run (the loop, no HTTP edge) p50 / p99, ms",
            f"{over['loop_p50']:.2f} / {over['loop_p99']:.2f}",
            "(reported)",
            "",
        ),
        *load_rows(cold, "gateway answering after 1 s, cold instance", verdict=True),
        *warm_rows[:2],
        warm_rows[4],
        (
            f"in process, bursts of {inside['size']:.0f}: orchestrator CPU per task / of it the "
            "garbage collector's, ms",
            f"{inside['cpu_ms']:.2f} / {inside['gc_ms']:.2f}",
            "(reported)",
            "",
        ),
        (
            "gateway answering after 5 s: errors / throughput, cold; warm",
            f"{slow_cold['errors'] + slow_warm['errors']:.0f} / {slow_cold['ratio']:.2f}; "
            f"{slow_warm['ratio']:.2f} of ideal ({slow_cold['ideal']:.0f} tasks/s)",
            "(reported)",
            "",
        ),
        (
            "cold start (process start to first /health), s",
            f"{measured['start_s']:.2f}",
            "(reported)",
            "",
        ),
    ]
    table = "\n".join("| " + " | ".join(row) + " |" for row in rows)
    return TEMPLATE.format(
        heading=HEADING,
        date=time.strftime("%Y-%m-%d"),
        cores=os.cpu_count(),
        load=os.getloadavg()[0],
        table=table,
        steps=over["steps"],
        tasks=over["tasks"],
        runs=len(cold),
        anthropic=importlib.metadata.version("anthropic"),
        import_sdk=imports["anthropic"],
        import_wire=imports["shared.aio"],
        sdk_ms=clients["sdk"],
        wire_ms=clients["wire"],
    )


TEMPLATE = """{heading}

`make bench-orchestrator` (`bench/orchestrator.py`), {date}, on this shared {cores}-core VM (load
average {load:.1f} when it ended). One orchestrator instance: functions-framework's ASGI server
(gunicorn + uvicorn workers), `WORKERS=2` as the project serves its functions on 2 cores. The
fakes (gateway and calculator agent, one process) and the load client are plain asyncio
streams with every answer and request encoded once, so that the machines they stand for cost
these cores little; their CPU is in the table. Every task: model turn (asks for the calculator)
-> agent call -> model turn (answers), {steps:.0f} steps.

{table}

Overhead per step = (the client's time for a task - the sum of its steps' latencies, each
measured by the orchestrator around its outbound call) / steps, over {tasks:.0f} sequential
tasks after 30 warm-up tasks. It holds request parsing and validation, the prompt, tool
validation (jsonschema), the trace, JSON in and out and the ASGI edge; the HTTP round trips
to the fakes are inside the step latencies.

**1,000 tasks at once.** The tasks are sent together, each on its own connection, and every one
must come back `completed`; ideal is 2 s (two 1 s model turns), 500 tasks/s. Each of the
{runs} runs is a new instance: the **cold** burst is its first (every connection to it and from
it opened inside the burst: the figure the target is judged on), the **warm** burst follows on
the same instance, its pool to the gateway still open and the client's 1,000 connections opened
one after another just before (as a load balancer's or long-lived clients' would be). The
lockstep is the hard case: every task's work comes in the same three bursts, so CPU adds to the
2 s of model time instead of hiding in it. The "busier worker's share" shows a cost the cold
burst carries and the warm one does not: both workers accept from one listening socket, and the
first to wake takes most of 1,000 connections that arrive at once (up to 0.94 of the work in
some runs), so it serialises the burst alone. The ratio moves with the neighbours' load on the
two cores: CPU per task is the steadier figure, and the in-process row (the app driven with
ASGI scopes, `python -m bench.orchestrator --profile`) the steadiest.

**What was cut** (issue 9's last target), measured 2026-12-02 on the same shared/ (HEAD at
9ee850d) with the orchestrator before (f870f16) and after this round: in process, CPU per task
0.88-1.10 -> 0.61-0.84 ms (medians 0.99 -> 0.72 of five runs each), of which the collector's
0.24 -> 0.06 ms; on the server, cold bursts 1.06-1.37 -> 0.97-1.03 ms a task and ratios
0.68-0.74 -> 0.69-0.77 (three runs each), warm bursts 0.91-1.08 -> 0.96-0.99 ms (within the noise).
- The garbage collector: a worker holds ~500 runs at once, each with hundreds of live objects,
  and at CPython's default (a collection every 700 new objects) it collected ~1,000 times per
  4,000 tasks, 8 of them full collections of everything alive. The orchestrator's main.py
  freezes the start-up heap and collects every 50,000 new objects.
- The loop's own work: one JSON encoder instead of one built per `json.dumps` call, short trace
  values kept without encoding them, a data task's tool validator compiled once per agent
  schema, a lone tool call awaited without a gathered task, cached agent statuses returned
  without a task per agent (service and loop without HTTP: 111 -> 89 us a task). With no await
  left before a run's first model call, a burst's calls go out as each request is read rather
  than all at its end.
- The figure this section showed before, 0.31 of ideal at 3.48 ms a task, was taken on the
  previous server stack (since then: httptools behind bounds, the scope-read edge, buffered
  metrics, `shared.aio`'s JSON calls on `shared.wire`) with aiohttp fakes and load client that
  used 0.7 and 1.1 s of these cores per burst (about 0.2 each now).

**What a task costs now** (py-spy on both workers through a cold and three warm bursts): 47% is
socket work in uvloop and the kernel (a request in and out and three out and back per task,
and connecting on a cold burst), 15% the server stack (uvicorn's protocol, Starlette's and
functions-framework's middleware, the shared edge), 11% JSON (half of it `shared.aio` and
`shared.asgi` building a new encoder for each `json.dumps` with options), 7% `shared.wire`'s
parsing, 4% asyncio's tasks and timers (a timer per outbound call), 14% the orchestrator's own
code with its jsonschema check. What is left is mostly outside the orchestrator: the accept
imbalance of a cold burst (a listening socket per worker with `SO_REUSEPORT` would let the
kernel spread the connections), the edge's middleware, and an encoder kept per module in
shared.

**Model client: the wire, not the anthropic SDK.** Measured here: `import anthropic` ({anthropic})
takes {import_sdk:.2f} s, the orchestrator's client (`shared.aio`, on
`shared.wire`) {import_wire:.2f} s; one call to the instant fake gateway takes {sdk_ms:.2f} ms
p50 through `AsyncAnthropic(...).messages.with_raw_response.create` (the raw response is needed
for `x-gateway-provider`) and {wire_ms:.2f} ms through `GatewayModel`. The wire client also
needs no pin on the SDK's version and no parsing into SDK models the loop would turn back into
dicts.

The full offline stack (the real gateway with its `local` provider and the real agents) is
measured in its own section below (`make bench-stack`).
"""


def write_results(section: str) -> None:
    """Replace this section of RESULTS.md in place (up to the next ``## `` heading)."""
    text = RESULTS.read_text() if RESULTS.exists() else ""
    start = text.find(f"\n{HEADING}\n")
    if start < 0:
        RESULTS.write_text(text.rstrip("\n") + "\n\n" + section)
        return
    end = text.find("\n## ", start + len(HEADING) + 2)
    rest = text[end:] if end >= 0 else "\n"
    RESULTS.write_text(text[: start + 1] + section.rstrip("\n") + "\n" + rest)


def measure(args: argparse.Namespace) -> dict[str, Any]:
    measured: dict[str, Any] = {}
    instant, instant_url = start_fakes(0.0)
    try:
        measured["start_s"] = cold_start_s(instant_url)
        orchestrator, url = start_orchestrator(instant_url)
        try:
            measured["overhead"] = run(overhead(url, args.overhead_tasks))
        finally:
            stop(orchestrator)
        measured["clients"] = run(model_clients(instant_url, 300))
        measured["in_process"] = in_process_cpu(instant_url)
    finally:
        stop(instant)
    measured["imports"] = {m: import_seconds(m) for m in ("anthropic", "shared.aio")}
    bursts = [held_at_once(args.tasks, 1.0) for _ in range(args.runs)]
    measured["cold"] = [cold for cold, _ in bursts]
    measured["warm"] = [warm for _, warm in bursts]
    # The same load with a slower model: if the 1 s figure is short of ideal because the
    # machine's CPU is spent (not because tasks wait on each other), this one is near ideal.
    measured["slower"] = held_at_once(args.tasks, 5.0)
    return measured


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tasks", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=3, help="instances for the 1 s bursts")
    parser.add_argument("--overhead-tasks", type=int, default=300)
    parser.add_argument("--no-write", action="store_true")
    parser.add_argument(
        "--profile",
        action="store_true",
        help="only the in-process CPU per task (the steadiest figure on a shared machine)",
    )
    args = parser.parse_args()
    if args.profile:
        fakes, url = start_fakes(0.0)
        try:
            print(json.dumps(in_process_cpu(url)))
        finally:
            stop(fakes)
        return
    section = render(measure(args))
    print(section)
    if not args.no_write:
        write_results(section)


if __name__ == "__main__":
    if sys.argv[1:2] == ["fakes"]:
        run(serve_fakes(int(sys.argv[2]), float(sys.argv[3])))
    elif sys.argv[1:2] == ["in-process"]:
        measured = run(in_process(sys.argv[2], int(sys.argv[3]), int(sys.argv[4])))
        print(json.dumps(measured))
    else:
        main()
