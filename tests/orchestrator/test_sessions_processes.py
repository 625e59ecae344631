"""One conversation, two orchestrator processes (as the emulator and production start them),
one real Redis: the first turn answered by one, the follow-up ("now add 8 to that") by the
other, which finds the first answer in the shared store. The gateway (its offline local model)
and the calculator are served in this process; only the two orchestrators are processes."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from emulator.process import FunctionProcess, start_function
from shared.entry import function_app
from tests.fakes.redis_server import redis_server
from tests.orchestrator.serving import REPO_ROOT
from tests.served import ServedApp, refused_url

pytestmark = pytest.mark.processes  # two orchestrators and redis-server

CALCULATOR_SOURCE = str(REPO_ROOT / "functions/agents/calculator/main.py")


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[FunctionProcess]]:
    from tests.gateway.support import GATEWAY_KEY, module_gateway

    folder = tmp_path_factory.mktemp("pair")
    calculator = ServedApp(function_app(CALCULATOR_SOURCE, "calculator"))
    started: list[FunctionProcess] = []
    try:
        with redis_server() as redis, module_gateway(folder) as gateway:
            environ = {
                "STORE_URL": redis.url,
                "GATEWAY_URL": gateway.url,
                "GATEWAY_API_KEY": GATEWAY_KEY,
                "CALCULATOR_URL": calculator.url,
                "SEARCH_URL": refused_url(),
                "DATA_PROCESSOR_URL": refused_url(),
                "TAVILY_URL": refused_url(),
            }
            for name in ("a", "b"):
                log = folder / f"orchestrator-{name}.log"
                started.append(start_function("orchestrator", env=environ, log_path=log))
            yield started
    finally:
        for process in started:
            process.stop()
        calculator.stop()


def ask(process: FunctionProcess, task: str, session_id: str) -> dict[str, Any]:
    body = {"task": task, "session_id": session_id}
    answer = httpx.post(process.url, json=body, timeout=30)
    assert answer.status_code == 200, answer.text
    result: dict[str, Any] = answer.json()
    return result


def test_two_processes_answer_one_conversation(pair: list[FunctionProcess]) -> None:
    first, second = pair
    asked = ask(first, "What is 6 * 7?", "two-processes")
    followed = ask(second, "now add 8 to that", "two-processes")
    assert asked["answer"].endswith("6 * 7 = 42.") and asked["session"]["saved"] is True
    assert followed["answer"].endswith("42 + 8 = 50."), followed
    history = httpx.get(f"{first.url}/sessions/two-processes", timeout=10).json()
    assert [turn["run_id"] for turn in history["turns"]] == [asked["run_id"], followed["run_id"]]
    alone = ask(first, "now add 8 to that", "another-session")  # nothing to refer to
    assert "50" not in str(alone["answer"])
