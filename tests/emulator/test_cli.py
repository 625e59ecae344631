"""The smaller commands: logs, ask from piped input, and which changes --reload restarts."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from emulator.cli import main
from emulator.compose import load_project
from emulator.reload import affected
from emulator.state import StateFolder
from tests.emulator.fake_orchestrator import FakeOrchestrator
from tests.emulator.support import probe_service, write_compose


def test_logs_prefix_each_line_with_its_service(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    compose = write_compose(tmp_path, {"api": probe_service(8301), "worker": probe_service(8302)})
    folder = StateFolder(tmp_path / "state")
    folder.prepare()
    folder.log_file("api").write_text("one\ntwo\nthree\n")
    folder.log_file("worker").write_text("ready\n")
    common = ["--file", str(compose), "--state-dir", str(folder.root), "logs"]

    assert main([*common, "--tail", "2"]) == 0
    assert capsys.readouterr().out.splitlines() == [
        "api    | two",
        "api    | three",
        "worker | ready",
    ]
    assert main([*common, "worker"]) == 0
    assert capsys.readouterr().out.splitlines() == ["worker | ready"]
    assert main([*common, "nobody"]) == 1
    assert "no service 'nobody'" in capsys.readouterr().err


def test_ask_without_a_task_reads_one_task_a_line_when_piped(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO("first task\n\nsecond task\nexit\nnever\n"))
    with FakeOrchestrator() as fake:
        assert main(["--state-dir", str(tmp_path), "ask", "--url", fake.url]) == 0
        tasks = [r.body["task"] for r in fake.requests]
        sessions = {r.body["session_id"] for r in fake.requests}
    assert tasks == ["first task", "second task"]
    printed = capsys.readouterr().out
    assert printed.count("answer: 17 * 23 - 4 = 387.") == 2
    [session] = sessions  # one conversation for the prompt, named so it can be continued
    assert f"agentorch ask --session {session}" in printed


def test_ask_with_a_session_sends_it_and_without_one_sends_none(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    with FakeOrchestrator() as fake:
        command = ["--state-dir", str(tmp_path), "ask", "--url", fake.url]
        assert main([*command, "--session", "chat-1", "What is 6 * 7?"]) == 0
        assert main([*command, "--json", "--session", "chat-1", "now add 8 to that"]) == 0
        assert main([*command, "What is 6 * 7?"]) == 0
        sent = [r.body.get("session_id") for r in fake.requests]
    assert sent == ["chat-1", "chat-1", None]


def test_reload_restarts_what_a_change_touches() -> None:
    project = load_project(environ={})
    root = project.directory
    assert affected(project, root / "functions/agents/search/index.py") == ["search-agent"]
    assert affected(project, root / "functions/gateway/router.py") == ["model-gateway"]
    assert sorted(affected(project, root / "shared/http.py")) == sorted(project.services)
    assert affected(project, root / "functions/gateway/__pycache__/router.cpython-311.pyc") == []
    assert affected(project, root / "README.md") == []


@pytest.mark.parametrize(
    ("environ", "flags"),
    [
        ({"ORCHESTRATOR_API_KEY": "orch-key-0123456789"}, []),
        ({"ORCHESTRATOR_API_KEYS": "orch-key-0123456789, another-key-0123"}, []),
        ({}, ["--api-key", "orch-key-0123456789"]),
    ],
)
def test_ask_sends_the_orchestrators_key(
    environ: dict[str, str],
    flags: list[str],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    for name, value in environ.items():
        monkeypatch.setenv(name, value)
    with FakeOrchestrator() as fake:
        fake.key = "orch-key-0123456789"
        command = ["--state-dir", str(tmp_path), "ask", "--url", fake.url, "--json", *flags]
        assert main([*command, "What is 17 * 23 - 4?"]) == 0
    assert [r.headers["x-api-key"] for r in fake.requests] == ["orch-key-0123456789"]


def test_ask_without_the_key_an_orchestrator_requires_says_which_to_set(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    with FakeOrchestrator() as fake:
        fake.key = "orch-key-0123456789"
        assert main(["--state-dir", str(tmp_path), "ask", "--url", fake.url, "Hello?"]) == 1
    error = capsys.readouterr().err
    assert "requires a key (401): set ORCHESTRATOR_API_KEY" in error, error
