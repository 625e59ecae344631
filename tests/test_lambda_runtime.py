"""Each function as Lambda runs it: the real runtime interface client (``python -m awslambdaric
main.handler``, from a task root laid out as the Lambda image's) in a process of its own, against
a stand-in for the Lambda Runtime API (tests/fakes/lambda_runtime.py). The calculator boots and
answers a Function URL event; the orchestrator answers one and an SQS batch with one bad
message."""

from __future__ import annotations

import base64
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from emulator.compose import REPO_ROOT
from emulator.process import free_port, function_environment
from shared.manifest import load_manifest
from tests.fakes.anthropic_server import FakeAnthropic
from tests.fakes.lambda_runtime import FakeLambdaRuntime, Invocation
from tests.shared.test_lambda_http import url_event

pytestmark = pytest.mark.processes

MAINS = {function.name: function.main for function in load_manifest().functions}


def task_root(name: str, folder: Path) -> Path:
    """The Lambda image's task root for a function: a ``main.py`` naming its main module, so
    that the handler is ``main.handler`` (the Dockerfile's ``lambda`` stage writes the same)."""
    module = Path(MAINS[name]).resolve().relative_to(REPO_ROOT).with_suffix("")
    (folder / "main.py").write_text(f"from {'.'.join(module.parts)} import handler  # noqa: F401\n")
    return folder


class LambdaProcess:
    """``python -m awslambdaric HANDLER`` polling its own fake Runtime API."""

    def __init__(self, name: str, folder: Path, env: dict[str, str] | None = None) -> None:
        self.runtime = FakeLambdaRuntime().start()
        root = task_root(name, folder)
        environ = function_environment(free_port(), env)  # the repository on PYTHONPATH
        environ.update(
            AWS_LAMBDA_RUNTIME_API=self.runtime.address,
            LAMBDA_TASK_ROOT=str(root),
            AWS_LAMBDA_FUNCTION_NAME=name,
        )
        self.log = log = folder / "runtime.log"
        self.process = subprocess.Popen(
            [sys.executable, "-m", "awslambdaric", "main.handler"],
            cwd=root,
            env=environ,
            stdin=subprocess.DEVNULL,
            stdout=log.open("wb"),
            stderr=subprocess.STDOUT,
        )

    def invoke(self, event: Any) -> Invocation:
        if self.process.poll() is not None:
            raise AssertionError(f"the runtime exited: {self.log.read_text(errors='replace')}")
        return self.runtime.invoke(event)

    def stop(self) -> None:
        self.process.kill()
        self.process.wait(timeout=10)
        self.runtime.stop()


@pytest.fixture(scope="module")
def calculator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LambdaProcess]:
    process = LambdaProcess("calculator", tmp_path_factory.mktemp("calculator"))
    yield process
    process.stop()


@pytest.fixture(scope="module")
def orchestrator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LambdaProcess]:
    with FakeAnthropic(api_key="gw-key-0123456789abcdef") as gateway:
        dead = f"http://127.0.0.1:{free_port()}"  # no agent: each is left out at once
        env = {
            "GATEWAY_URL": gateway.url,
            "GATEWAY_API_KEY": gateway.api_key,
            **{
                f"{name.upper()}_URL": dead
                for name in MAINS
                if name not in ("gateway", "orchestrator")
            },
        }
        process = LambdaProcess("orchestrator", tmp_path_factory.mktemp("orchestrator"), env)
        yield process
        process.stop()


def answered(invocation: Invocation) -> dict[str, Any]:
    assert invocation.ok, invocation.payload
    answer: dict[str, Any] = invocation.payload
    return answer


def test_the_calculator_boots_and_answers_a_function_url_event(calculator: LambdaProcess) -> None:
    body = json.dumps({"expression": "17*23"})
    event = url_event("POST", body=body, headers={"content-type": "application/json"})
    answer = answered(calculator.invoke(event))
    assert answer["statusCode"] == 200, answer
    assert json.loads(answer["body"])["result"]["value"] == 391

    again = url_event(
        "POST", body=base64.b64encode(b'{"expression": "2+2"}').decode(), base64_body=True
    )
    assert json.loads(answered(calculator.invoke(again))["body"])["result"]["value"] == 4
    health = answered(calculator.invoke(url_event("GET", "/health")))
    assert json.loads(health["body"])["function"] == "calculator"


def test_an_event_no_function_takes_is_an_invocation_error(calculator: LambdaProcess) -> None:
    invocation = calculator.invoke({"Records": [{"eventSource": "aws:s3"}]})
    assert not invocation.ok
    assert invocation.payload["errorType"] == "NotHttpEvent"
    assert "not an HTTP event" in invocation.payload["errorMessage"]


def test_the_orchestrator_answers_a_task_and_an_sqs_batch(orchestrator: LambdaProcess) -> None:
    event = url_event("POST", body=json.dumps({"task": "say hi"}))
    answer = answered(orchestrator.invoke(event))
    assert answer["statusCode"] == 200, answer
    assert json.loads(answer["body"])["status"] == "completed"

    queue = "arn:aws:sqs:eu-west-1:123456789012:tasks"
    records = [
        {"messageId": message_id, "body": body, "eventSource": "aws:sqs", "eventSourceARN": queue}
        for message_id, body in [("m-1", json.dumps({"task": "say hi"})), ("m-bad", "{oops")]
    ]
    batch = answered(orchestrator.invoke({"Records": records}))
    assert batch == {"batchItemFailures": [{"itemIdentifier": "m-bad"}]}
