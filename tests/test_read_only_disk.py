"""Each kind of function serves on a disk it may not write outside the temporary folder, as the
serverless platforms run it (Cloud Functions, Lambda: everything read-only but ``/tmp``).

The gateway, the orchestrator and two agents (the calculator; the data processor, whose queries
run in processes of their own) start as production starts them, in a working folder and with a
home folder made read-only (``chmod 555``), ``$TMPDIR`` a folder of their own and no
``$XDG_RUNTIME_DIR``; each answers ``/health`` and a real request (the orchestrator a task,
through the gateway and the agents). Tests may run as root, whom ``chmod`` does not stop, so the
proof is also that nothing was written there, and that what the functions do write (the metrics
folder, gunicorn's control socket, the query processes' socket) is in ``$TMPDIR``. The gateway
runs two workers (``WORKERS=2``: functions-framework's gunicorn), the others one (``shared.serve``
alone), so both ways a function is served are on the read-only disk.
"""

from __future__ import annotations

import json
import stat
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from emulator.process import FunctionProcess, start_function
from tests.served import refused_url

pytestmark = pytest.mark.processes

ROWS = [{"city": "Oslo", "people": 700}, {"city": "Bergen", "people": 290}]


@pytest.fixture(scope="module")
def folders(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, Path, Path]]:
    """(the read-only working and home folder, the functions' $TMPDIR, their logs' folder)."""
    sealed = tmp_path_factory.mktemp("sealed")
    sealed.chmod(stat.S_IRUSR | stat.S_IXUSR | stat.S_IRGRP | stat.S_IXGRP | stat.S_IROTH)
    try:
        yield sealed, tmp_path_factory.mktemp("tmp"), tmp_path_factory.mktemp("logs")
    finally:
        sealed.chmod(0o755)


@pytest.fixture(scope="module")
def functions(folders: tuple[Path, Path, Path]) -> Iterator[dict[str, FunctionProcess]]:
    sealed, scratch, logs = folders
    env = {
        "HOME": str(sealed),
        "TMPDIR": str(scratch),
        "XDG_RUNTIME_DIR": "",
        "PYTHONDONTWRITEBYTECODE": "1",
        "WORKERS": "1",
        "LOG_LEVEL": "WARNING",
    }
    started: dict[str, FunctionProcess] = {}

    def start(target: str, **extra: str) -> FunctionProcess:
        log = logs / f"{target}.log"
        started[target] = start_function(target, env={**env, **extra}, log_path=log, cwd=sealed)
        return started[target]

    try:
        gateway = start("gateway", WORKERS="2")  # gunicorn: its control socket
        calculator = start("calculator")
        data_processor = start("data_processor")
        refused = refused_url()
        start(
            "orchestrator",
            GATEWAY_URL=gateway.url,
            CALCULATOR_URL=calculator.url,
            DATA_PROCESSOR_URL=data_processor.url,
            SEARCH_URL=refused,
            TAVILY_URL=refused,
        )
        yield started
    finally:
        for process in started.values():
            process.stop()


def post(url: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    request = urllib.request.Request(
        url, data=json.dumps(body).encode(), headers={"content-type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        answer: dict[str, Any] = json.loads(response.read())
        return response.status, answer


def health(process: FunctionProcess) -> int:
    with urllib.request.urlopen(f"{process.url}/health", timeout=10) as response:
        return int(response.status)


def test_the_gateway_answers(functions: dict[str, FunctionProcess]) -> None:
    gateway = functions["gateway"]
    body = {"model": "local", "max_tokens": 64, "messages": [{"role": "user", "content": "6*7?"}]}
    status, answer = post(f"{gateway.url}/v1/messages", body)
    assert health(gateway) == 200
    assert status == 200 and answer["type"] == "message", answer


def test_the_agents_answer(functions: dict[str, FunctionProcess]) -> None:
    calculator, data_processor = functions["calculator"], functions["data_processor"]
    assert health(calculator) == health(data_processor) == 200
    assert post(f"{calculator.url}/", {"expression": "17*23"})[1]["result"]["value"] == 391
    status, described = post(f"{data_processor.url}/", {"operation": "describe", "rows": ROWS})
    assert status == 200 and described["result"]["row_count"] == 2, described


def test_the_orchestrator_answers_a_task(functions: dict[str, FunctionProcess]) -> None:
    orchestrator = functions["orchestrator"]
    assert health(orchestrator) == 200
    status, result = post(f"{orchestrator.url}/", {"task": "What is 17*23?"})
    assert status == 200 and result["status"] == "completed", result
    assert "391" in result["answer"]


def test_nothing_is_written_outside_the_temporary_folder(
    functions: dict[str, FunctionProcess], folders: tuple[Path, Path, Path]
) -> None:
    sealed, scratch, logs = folders
    post(f"{functions['data_processor'].url}/", {"operation": "describe", "rows": ROWS})
    assert sorted(sealed.iterdir()) == []
    written = {path.name for path in scratch.iterdir()}
    assert sum(name.startswith("agentorch-metrics-") for name in written) == len(functions)
    assert sum(name.startswith("gunicorn-") for name in written) == 1, written  # the gateway
    for log in logs.iterdir():
        assert "control socket" not in log.read_text(errors="replace"), log.name
