"""Each bundle's Lambda entry point (``main.handler``, what the SAM template names) answers as
Lambda would call it: from inside the bundle folder, with the python of the bundle's own venv
(its requirements.txt alone), a Function URL event (payload 2.0) for ``/health`` and for a real
request; and the orchestrator's an SQS batch with one bad message, reported alone in
``batchItemFailures``. The orchestrator reaches the gateway and the agents by URL: the bundles
conftest.py serves. Run by `make test-deploy`.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from emulator.package import Bundle
from tests.deploy import bundles, proof
from tests.deploy.proof import GATEWAY, GATEWAY_KEY, ORCHESTRATOR, REQUESTS
from tests.fakes.tavily_server import FakeTavily
from tests.shared.test_lambda_http import url_event

pytestmark = pytest.mark.processes

INVOKE = """\
import json, os, sys

sys.path.insert(0, os.environ["LAMBDA_TASK_ROOT"])  # as Lambda's runtime: the bundle first
import main


class Context:
    aws_request_id = "deploy-test"
    function_name = os.environ["AWS_LAMBDA_FUNCTION_NAME"]

    def get_remaining_time_in_millis(self):
        return 60_000


if __name__ == "__main__":  # not again in the data processor's query process (spawned)
    for event in json.load(sys.stdin):
        print("ANSWER", json.dumps(main.handler(event, Context())), flush=True)
"""
"""Lambda's part: import ``main`` and call ``handler(event, context)`` per event, in order,
in one process (one cold start, then warm invocations)."""
MARK = "ANSWER "
INVOKE_TIMEOUT_S = 120


def invoke(
    name: str, bundle: Bundle, venv: Path, home: Path, env: dict[str, str], events: list[Any]
) -> list[Any]:
    """Each event's answer from ``main.handler`` in the bundle's folder and venv."""
    script = home / "invoke.py"
    script.write_text(INVOKE)
    done = subprocess.run(
        [str(venv / "bin" / "python"), str(script)],
        cwd=bundle.folder,
        env=bundles.environment(
            venv,
            home,
            LAMBDA_TASK_ROOT=str(bundle.folder),
            AWS_LAMBDA_FUNCTION_NAME=name,
            **env,
        ),
        input=json.dumps(events),
        capture_output=True,
        text=True,
        timeout=INVOKE_TIMEOUT_S,
        check=False,
    )
    answers = [json.loads(line[len(MARK) :]) for line in done.stdout.splitlines() if MARK in line]
    assert done.returncode == 0 and len(answers) == len(events), done.stderr[-4000:]
    return answers


@pytest.fixture(scope="module")
def envs(servers: dict[str, bundles.Running], tavily: FakeTavily) -> dict[str, dict[str, str]]:
    """Each function's variables as its Lambda definition sets them: the orchestrator's URLs
    are the served bundles' (no PORT: Lambda gives none)."""
    ports = {name: int(running.url.rsplit(":", 1)[1]) for name, running in servers.items()}
    made = proof.environments(ports, tavily)
    for env in made.values():
        env.pop("PORT")
    return made


def _json(answer: dict[str, Any]) -> Any:
    assert answer["statusCode"] == 200, answer
    assert answer["isBase64Encoded"] is False, answer
    return json.loads(answer["body"])


@pytest.mark.parametrize("name", list(REQUESTS))
def test_the_bundle_handler_answers_function_url_events(
    name: str,
    built: dict[str, Bundle],
    venvs: dict[str, Path],
    home: Path,
    envs: dict[str, dict[str, str]],
) -> None:
    path, body = REQUESTS[name]
    headers = {"content-type": "application/json"}
    if name == GATEWAY.name:
        headers["x-api-key"] = GATEWAY_KEY
    events = [
        url_event("GET", "/health"),
        url_event("POST", path, headers=headers, body=json.dumps(body)),
    ]
    with bundles.timed(f"{name}: main.handler on two Function URL events"):
        health, answer = invoke(name, built[name], venvs[name], home, envs[name], events)
    assert _json(health)["function"] == name
    reply = _json(answer)
    if name == GATEWAY.name:
        assert reply["type"] == "message" and reply["content"], reply
    else:
        assert reply["result"], reply
    if name == "calculator":
        assert reply["result"]["value"] == 391


def test_the_orchestrator_bundle_handler_answers_a_task_and_an_sqs_batch(
    built: dict[str, Bundle],
    venvs: dict[str, Path],
    home: Path,
    envs: dict[str, dict[str, str]],
) -> None:
    name = ORCHESTRATOR.name
    queue = "arn:aws:sqs:eu-west-1:123456789012:agentorch-tasks"
    records = [
        {
            "messageId": message_id,
            "receiptHandle": f"handle-{message_id}",
            "body": body,
            "attributes": {"ApproximateReceiveCount": "1"},
            "messageAttributes": {},
            "eventSource": "aws:sqs",
            "eventSourceARN": queue,
            "awsRegion": "eu-west-1",
        }
        for message_id, body in [
            ("m-good", json.dumps({"task": "What is 17 * 23?"})),
            ("m-bad", "{oops"),
            ("m-good-too", json.dumps({"task": "What is 2 + 2?"})),
        ]
    ]
    task = json.dumps({"task": "What is 17 * 23?"})
    events = [
        url_event("GET", "/health"),
        url_event("POST", "/", headers={"content-type": "application/json"}, body=task),
        {"Records": records},
    ]
    with bundles.timed("orchestrator: main.handler on a task and an SQS batch"):
        health, answer, batch = invoke(name, built[name], venvs[name], home, envs[name], events)
    assert _json(health)["function"] == name
    run = _json(answer)
    assert run["status"] == "completed" and "391" in run["answer"], run
    assert batch == {"batchItemFailures": [{"itemIdentifier": "m-bad"}]}
