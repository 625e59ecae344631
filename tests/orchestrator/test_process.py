"""The orchestrator as production runs it (functions-framework, gunicorn, uvicorn workers), with
the fake Anthropic API as its gateway: what it logs, and how it stops on SIGTERM."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from emulator.process import FunctionProcess, free_port, start_function
from tests.fakes.anthropic_server import FakeAnthropic, Fault
from tests.fakes.server import Exchange, FakeServer, RecordedRequest

pytestmark = pytest.mark.processes

GRACE_S = 8.0  # SHUTDOWN_GRACE_S's default
MARGIN_S = 4.0
"""Process exit after the grace ran out: uvicorn's own polling, logging, gunicorn's reaping."""


class SlowSink(FakeServer):
    """Takes every event (202) ``delay_s`` after it arrived; counts those it could answer."""

    def __init__(self, delay_s: float) -> None:
        super().__init__()
        self.delay_s = delay_s
        self.answered_at: list[float] = []

    def answer(self, request: RecordedRequest, exchange: Exchange) -> None:
        if self.pause(self.delay_s):
            exchange.send_json(202, None)
            self.answered_at.append(time.monotonic())


@pytest.fixture
def gateway() -> Iterator[FakeAnthropic]:
    with FakeAnthropic(api_key="gw-key-0123456789abcdef") as fake:
        yield fake


def serve(gateway: FakeAnthropic, log: Path, *, workers: int = 1, **env: str) -> FunctionProcess:
    dead = f"http://127.0.0.1:{free_port()}"  # no agent: each is left out at once
    environ = {
        "WORKERS": str(workers),
        "GATEWAY_URL": gateway.url,
        "GATEWAY_API_KEY": gateway.api_key,
        "CALCULATOR_URL": dead,
        "SEARCH_URL": dead,
        "DATA_PROCESSOR_URL": dead,
        "TAVILY_URL": dead,
        "LOG_LEVEL": "INFO",
        **env,
    }
    return start_function("orchestrator", env=environ, log_path=log)


def ask(process: FunctionProcess, task: str, request_id: str) -> dict[str, Any]:
    answer = httpx.post(
        process.url, json={"task": task}, headers={"x-request-id": request_id}, timeout=30
    )
    assert answer.status_code == 200, answer.text
    result: dict[str, Any] = answer.json()
    return result


def lines(log: Path) -> list[dict[str, Any]]:
    """The JSON lines of the process's output (gunicorn's own lines are not JSON)."""
    found = []
    for raw in log.read_text(errors="replace").splitlines():
        try:
            line = json.loads(raw)
        except ValueError:
            continue
        if isinstance(line, dict):
            found.append(line)
    return found


def terminate(process: FunctionProcess, within_s: float) -> float:
    """SIGTERM to the server (gunicorn's master, as a platform sends it); the seconds it took
    to exit. Fails when it did not exit within ``within_s``."""
    started = time.monotonic()
    os.kill(process.process.pid, signal.SIGTERM)
    try:
        process.process.wait(timeout=within_s)
    except subprocess.TimeoutExpired:
        process.stop()
        pytest.fail(f"the orchestrator did not exit within {within_s:g} s of SIGTERM")
    finally:
        if process.log is not None:
            process.log.close()
    return time.monotonic() - started


def lost(log: Path) -> dict[str, dict[str, Any]]:
    return {
        line["run_id"]: line
        for line in lines(log)
        if line.get("msg") == "sink did not take the result"
    }


def test_each_task_is_one_line_and_each_failure_says_why(
    gateway: FakeAnthropic, tmp_path: Path
) -> None:
    log = tmp_path / "orchestrator.log"
    process = serve(gateway, log)
    try:
        done = ask(process, "say hi", "req-done-1")
        gateway.enqueue(Fault(400, message=f"key {gateway.api_key} may not use this model"))
        failed = ask(process, "say hi again", "req-failed-1")
    finally:
        terminate(process, GRACE_S + MARGIN_S)
    assert done["status"] == "completed" and failed["status"] == "failed"
    logged = lines(log)
    by_run = {line["run_id"]: line for line in logged if line.get("msg") == "run finished"}
    line = by_run[done["run_id"]]
    assert line["severity"] == "INFO" and line["request_id"] == "req-done-1"
    assert line["status"] == "completed" and line["steps"] == 1 and line["model_calls"] == 1
    assert line["input_tokens"] > 0 and line["output_tokens"] > 0 and line["duration_ms"] > 0
    [run_failed] = [line for line in logged if line.get("msg") == "run failed"]
    [step_failed] = [line for line in logged if line.get("msg") == "model step failed"]
    for line in (run_failed, step_failed):
        assert line["severity"] == "WARNING" and line["run_id"] == failed["run_id"]
        assert line["request_id"] == "req-failed-1"
        assert "400" in line["error"] and "may not use this model" in line["error"]
    assert gateway.api_key not in log.read_text()  # the key the gateway echoed is hidden


@pytest.mark.parametrize("workers", [1, 2])
def test_on_sigterm_pending_deliveries_are_made(
    gateway: FakeAnthropic, tmp_path: Path, workers: int
) -> None:
    log = tmp_path / "orchestrator.log"
    with SlowSink(delay_s=5.0) as sink:
        process = serve(gateway, log, workers=workers, K_SINK=sink.url)
        started = time.monotonic()
        runs = [ask(process, f"task {n}", f"req-{n}")["run_id"] for n in range(3)]
        assert time.monotonic() - started < sink.delay_s  # answers do not wait for the sink
        sink.wait_for_requests(3)
        terminate(process, GRACE_S + MARGIN_S)
        exited = time.monotonic()
        assert len(sink.answered_at) == 3  # each answered while the orchestrator still waited
        assert all(at < exited for at in sink.answered_at)
    assert {r.body["subject"] for r in sink.requests} == set(runs)
    assert lost(log) == {}


@pytest.mark.parametrize("workers", [1, 2])
def test_on_sigterm_deliveries_a_sink_never_takes_are_logged_as_lost(
    gateway: FakeAnthropic, tmp_path: Path, workers: int
) -> None:
    log = tmp_path / "orchestrator.log"
    with socket.create_server(("127.0.0.1", 0)) as silent:  # accepts, never answers
        sink = f"http://127.0.0.1:{silent.getsockname()[1]}"
        grace = 3.0
        process = serve(gateway, log, workers=workers, K_SINK=sink, SHUTDOWN_GRACE_S=f"{grace:g}")
        runs = [ask(process, f"task {n}", f"req-{n}")["run_id"] for n in range(3)]
        took = terminate(process, grace + MARGIN_S)
    assert took >= grace - 0.5  # it did wait for them
    missing = lost(log)
    assert set(missing) == set(runs)
    for line in missing.values():
        assert line["severity"] == "ERROR" and line["problem"].startswith("the worker stopped")
