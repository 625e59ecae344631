"""The whole stack on the emulator, as a user drives it: up -d, tasks, a CloudEvent, down.

One stack for the module (it takes a few seconds to start on 2 cores), on free ports and a
state folder of its own, so that it never meets a stack someone else is running. It runs with
``GATEWAY_API_KEYS`` set, as the README advises: the orchestrator and ``agentorch`` must take
their key from that one setting (issue 15, item 15), and with ``AGENTS`` naming a remote agent
(a calculator started as a separate process, ``remote-math``): one line of environment, as
`.env` gives it (tests/emulator/test_compose.py), must have the stack offer it.
"""

from __future__ import annotations

import json
import subprocess
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from emulator.process import start_function
from emulator.state import StateFolder, alive
from shared.manifest import load_manifest
from tests.emulator.support import agentorch as run_cli
from tests.emulator.support import group_alive
from tests.waiting import wait_until

pytestmark = [
    pytest.mark.skipif(
        not Path("functions/orchestrator/main.py").is_file(),
        reason="the orchestrator is not here yet",
    ),
    pytest.mark.processes,
]


KEYS = {"GATEWAY_API_KEYS": "stack-key-1, stack-key-2"}


def agentorch(
    state: Path, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return run_cli("--state-dir", str(state), *args, env=env)


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    state = tmp_path_factory.mktemp("agentorch")
    remote = start_function("calculator", env={"WORKERS": "1"})
    # The keys only in the environment of `up` (as .env gives them: tests/emulator/test_compose
    # shows .env's value reaching the orchestrator): neither GATEWAY_API_KEY nor any other help.
    env = {**KEYS, "AGENTS": f"remote-math={remote.url}"}
    try:
        started = agentorch(state, "up", "-d", "--any-port", env=env)
        assert started.returncode == 0, started.stderr
        yield state
    finally:
        agentorch(state, "down")
        remote.stop()


def ask(state: Path, *args: str) -> dict[str, object]:
    done = agentorch(state, "ask", "--json", *args)
    assert done.returncode == 0, done.stdout + done.stderr
    result: dict[str, object] = json.loads(done.stdout)
    return result


def agents_used(result: dict[str, object]) -> set[str]:
    steps = result["steps"]
    assert isinstance(steps, list)
    return {s["name"] for s in steps if s["kind"] == "agent" and not s.get("error")}


def test_every_service_is_up_and_healthy(stack: Path) -> None:
    status = agentorch(stack, "status")
    assert status.returncode == 0, status.stderr
    for name in ("model-gateway", "orchestrator", "calculator-agent", "search-agent"):
        assert name in status.stdout
    health = agentorch(stack, "health", env=KEYS)  # the key: the first of GATEWAY_API_KEYS
    assert health.returncode == 0, health.stdout
    assert "local" in health.stdout  # the gateway's providers table (a keyed endpoint)


def test_health_shows_the_gateway_refusing_a_wrong_or_missing_key(stack: Path) -> None:
    for args in (["--api-key", "not-the-key"], []):
        health = agentorch(stack, "health", *args)
        assert health.returncode == 1, health.stdout
        assert "401" in health.stdout and "GATEWAY_API_KEYS" in health.stdout, health.stdout
        assert "unhealthy: model-gateway" in health.stdout
    assert "refused the key" in agentorch(stack, "health", "--api-key", "x").stdout
    # GATEWAY_API_KEY, the explicit client key, wins over the list.
    assert agentorch(stack, "health", env={"GATEWAY_API_KEY": "stack-key-2"}).returncode == 0


def test_invoke_sends_the_key_to_the_gateway(stack: Path) -> None:
    body = '{"model": "default", "messages": [{"role": "user", "content": "hi"}]}'
    path = ["--path", "/v1/messages/count_tokens", "--data", body]
    done = agentorch(stack, "invoke", "model-gateway", *path, env=KEYS)
    assert done.returncode == 0, done.stdout + done.stderr
    assert json.loads(done.stdout)["input_tokens"] > 0
    assert agentorch(stack, "invoke", "model-gateway", *path).returncode == 1  # no key: 401


def test_tasks_use_each_local_agent(stack: Path, tmp_path: Path) -> None:
    arithmetic = ask(stack, "What is 17 * 23 - 4?")
    assert arithmetic["status"] == "completed" and "387" in str(arithmetic["answer"])
    assert "calculator" in agents_used(arithmetic)

    knowledge = ask(stack, "Search the knowledge base for circuit breaker")
    assert "search" in agents_used(knowledge)

    table = tmp_path / "sales.json"
    table.write_text('[{"region": "north", "amount": 10}, {"region": "south", "amount": 5}]')
    data = ask(stack, "--data", str(table), "Describe this table of data")
    assert "data_processor" in agents_used(data)


def test_the_answer_with_its_steps_is_printed(stack: Path) -> None:
    done = agentorch(stack, "ask", "What is 2 + 2?")
    assert done.returncode == 0, done.stderr
    assert "answer:" in done.stdout and "4" in done.stdout
    assert "calculator" in done.stdout and "total:" in done.stdout


def test_a_follow_up_in_a_session_resolves_against_the_previous_answer(stack: Path) -> None:
    # The offline model through the gateway; the session in the stack's SQLite store.
    first = ask(stack, "--session", "stack-chat", "What is 6 * 7?")
    follow_up = ask(stack, "--session", "stack-chat", "now add 8 to that")
    assert "42" in str(first["answer"]) and "50" in str(follow_up["answer"])
    assert (stack / "state.db").is_file()
    alone = ask(stack, "now add 8 to that")  # no session: nothing to refer to
    assert "50" not in str(alone["answer"])


def test_a_remote_agent_from_agents_is_listed_and_reaches_the_model(stack: Path) -> None:
    recorded = StateFolder(stack).read()
    assert recorded is not None
    url = recorded.services["orchestrator"].url
    with urllib.request.urlopen(f"{url}/agents", timeout=30) as reply:
        agents = {a["name"]: a for a in json.load(reply)["agents"]}
    assert agents["remote-math"]["status"] == "available"
    assert agents["remote-math"]["source"] == "$AGENTS"
    task = {"task": "What is 6 * 7?", "agents": ["remote-math"]}
    request = urllib.request.Request(url, json.dumps(task).encode(), method="POST")
    request.add_header("content-type", "application/json")
    with urllib.request.urlopen(request, timeout=60) as reply:
        result = json.load(reply)
    assert result["status"] == "completed" and "42" in str(result["answer"])
    assert agents_used(result) == {"remote-math"}


def test_invoke_with_a_cloudevent(stack: Path) -> None:
    for mode in ([], ["--structured"]):
        done = agentorch(
            stack,
            "invoke",
            "calculator-agent",
            "--data",
            '{"expression": "6 * 7"}',
            "--cloudevent",
            "agentorch.tool.call",
            *mode,
        )
        assert done.returncode == 0, done.stdout + done.stderr
        assert json.loads(done.stdout)["result"]["value"] == 42


def test_down_leaves_no_process(stack: Path) -> None:
    # The module's last test: it stops the stack the others used (the fixture's down is then
    # a no-op), so that the suite starts the whole stack only once.
    recorded = StateFolder(stack).read()
    assert recorded is not None
    groups = [s.pid for s in recorded.services.values() if s.pid]
    assert len(groups) == len(load_manifest().functions) and all(group_alive(g) for g in groups)
    down = agentorch(stack, "down")
    assert down.returncode == 0 and "stopped:" in down.stdout
    # Killed processes linger a moment as zombies until their new parent reaps them.
    wait_until(lambda: not any(group_alive(g) for g in groups) or None, 10, "groups gone")
    assert not alive(recorded.supervisor_pid)  # (a zombie until its new parent reaps it)
    assert agentorch(stack, "status").returncode == 1
