"""The agentorch client against a fake orchestrator: live steps, the answer, one-line errors."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from emulator import client
from emulator.cli import main
from emulator.events import build
from shared.errors import UpstreamError, UpstreamUnavailable
from tests.emulator.fake_orchestrator import RESULT, FakeOrchestrator
from tests.emulator.support import write_compose


@pytest.fixture
def orchestrator() -> Iterator[FakeOrchestrator]:
    with FakeOrchestrator() as fake:
        yield fake


def test_ask_streams_each_step_then_returns_the_result(orchestrator: FakeOrchestrator) -> None:
    seen: list[tuple[str, Any]] = []
    result = client.ask(
        orchestrator.url,
        "What is 17 * 23 - 4?",
        [{"a": 1}],
        on_event=lambda e, d: seen.append((e, d.get("index"))),
    )
    assert result == RESULT
    assert seen == [
        ("step_started", 0),
        ("step_finished", 0),
        ("step_started", 1),
        ("step_finished", 1),
        ("result", None),
    ]
    sent = orchestrator.requests[0].body
    assert sent == {"task": "What is 17 * 23 - 4?", "stream": True, "data": [{"a": 1}]}


def test_the_command_prints_steps_answer_table_and_totals(
    orchestrator: FakeOrchestrator, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / "sales.csv"
    data.write_text("region,amount\nnorth,3\n")
    code = main(
        ["ask", "--url", orchestrator.url, "--data", str(data), "What", "is", "17 * 23 - 4?"]
    )
    out = capsys.readouterr().out
    assert code == 0
    assert 'step 2: agent calculator ← {"expression": "17*23-4"}' in out  # piped: plain lines
    assert "answer: 17 * 23 - 4 = 387." in out
    assert "calculator" in out and "local" in out and "→ calculator" in out
    assert "total: 1 model calls, 1 agent calls, 40 in / 20 out tokens, 12 ms" in out
    assert "trace: 4bf92f3577b34da6a3ce929d0e0e4736" in out  # to find the run in a trace viewer
    assert orchestrator.requests[0].body["data"] == "region,amount\nnorth,3\n"


def test_json_prints_the_raw_response(
    orchestrator: FakeOrchestrator, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["ask", "--json", "--url", orchestrator.url, "hi"]) == 0
    assert json.loads(capsys.readouterr().out) == RESULT
    assert orchestrator.requests[0].body["stream"] is False


def test_errors_are_one_line(
    orchestrator: FakeOrchestrator,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    gone = orchestrator.url
    orchestrator.stop()
    with pytest.raises(UpstreamUnavailable, match=f"cannot reach the orchestrator at {gone}"):
        client.ask(gone, "task")
    monkeypatch.setenv("ORCHESTRATOR_URL", gone)
    assert main(["ask", "anything"]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("agentorch: cannot reach the orchestrator at " + gone)
    assert "agentorch up -d" in err and "\n" not in err and "Traceback" not in err


def test_a_refused_task_names_the_status_and_reason() -> None:
    refused = "answered 400 invalid_request_error: task: field"
    with FakeOrchestrator() as fake, pytest.raises(UpstreamError, match=refused):
        client.ask(fake.url, "")


def test_sse_parsing() -> None:
    lines = [": comment", "event: step_started", 'data: {"a":', "data: 1}", "", "data: x", ""]
    assert list(client.iter_sse(lines)) == [("step_started", '{"a":\n1}'), ("message", "x")]


def test_cloudevents_for_invoke() -> None:
    binary = build({"expression": "1+1"}, "agentorch.tool.call")
    assert (
        binary.headers["ce-type"] == "agentorch.tool.call"
        and binary.headers["ce-specversion"] == "1.0"
    )
    assert json.loads(binary.body) == {"expression": "1+1"}
    structured = build({"expression": "1+1"}, "agentorch.tool.call", structured=True)
    assert structured.headers["content-type"] == "application/cloudevents+json"
    assert json.loads(structured.body)["data"] == {"expression": "1+1"}
    plain = build({"a": 1})
    assert plain.headers == {"content-type": "application/json"}


def test_a_bad_compose_file_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write_compose(tmp_path, {"api": {"x-function": {"target": "t", "port": 1}}})
    assert main(["--file", str(path), "--state-dir", str(tmp_path / "s"), "up"]) == 1
    assert capsys.readouterr().err.strip() == (
        "agentorch: docker-compose.yml: services.api.x-function.source: "
        "required, a non-empty string"
    )


def test_status_and_down_without_a_stack(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    state = ["--state-dir", str(tmp_path)]
    assert main([*state, "status"]) == 1
    assert "not running" in capsys.readouterr().out
    assert main([*state, "down"]) == 0
    assert "nothing was running" in capsys.readouterr().out


def test_ask_shows_a_call_waiting_for_approval_and_sends_the_answer(
    orchestrator: FakeOrchestrator,
) -> None:
    import argparse

    from rich.console import Console

    from emulator.cli import ask_once
    from tests.emulator.fake_orchestrator import NEEDS_APPROVAL

    console = Console(record=True, width=200)
    asked: list[str] = []
    args = argparse.Namespace(session=None, json=False, timeout=10.0)

    def confirm(question: str) -> bool:
        asked.append(question)
        return True

    code = ask_once(NEEDS_APPROVAL, orchestrator.url, None, args, console, confirm=confirm)
    out = console.export_text()
    assert code == 0 and asked == ["approve? [y/N] "]
    assert 'approval needed: calculator {"expression": "1+1"}' in out
    assert "answer: 17 * 23 - 4 = 387." in out
    assert orchestrator.requests[-1].body == {"approve": True}
