"""The orchestrator's CPU per task without a server or sockets to it: its ASGI app (from its
main.py, as functions-framework builds it) driven with ASGI scopes, in a process of its own
(``python -m bench.orchestrator in-process URL TASKS SIZE``)."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from typing import Any

import yaml

from bench.orchestrator.load import TASK_REQUEST
from bench.orchestrator.processes import REPO_ROOT, bench_config
from bench.tools import WORK


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
