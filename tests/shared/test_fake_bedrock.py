"""The moto-backed fake Bedrock answers InvokeModel like the real service, through real boto3."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from tests.fakes.bedrock import BedrockFault, FakeBedrock, FakeBedrockServer, anthropic_message

MODEL_ID = "anthropic.claude-3-5-haiku-20241022-v1:0"


def runtime_client() -> Any:
    # botocore's ``max_attempts`` counts retries (1 means two calls); ``total_max_attempts``
    # counts calls, so 1 really turns boto3's own retries off.
    config = Config(retries={"total_max_attempts": 1, "mode": "standard"})
    return boto3.client("bedrock-runtime", region_name="us-east-1", config=config)


def invoke(text: str = "hello bedrock") -> dict[str, Any]:
    body = {
        "anthropic_version": "bedrock-2023-05-31",
        "max_tokens": 64,
        "messages": [{"role": "user", "content": [{"type": "text", "text": text}]}],
    }
    response = runtime_client().invoke_model(
        modelId=MODEL_ID,
        body=json.dumps(body),
        contentType="application/json",
        accept="application/json",
    )
    answer: dict[str, Any] = json.loads(response["body"].read())
    return answer


def test_default_answer_is_an_anthropic_message(fake_bedrock: FakeBedrock) -> None:
    answer = invoke("hello bedrock")

    assert answer["type"] == "message"
    assert answer["model"] == MODEL_ID
    assert answer["content"] == [{"type": "text", "text": "fake-bedrock answer to: hello bedrock"}]
    assert answer["stop_reason"] == "end_turn"
    [recorded] = fake_bedrock.requests
    assert recorded.model_id == MODEL_ID
    assert recorded.body["anthropic_version"] == "bedrock-2023-05-31"
    assert (recorded.content_type, recorded.accept) == ("application/json", "application/json")


def test_scripted_answer_is_returned_once(fake_bedrock: FakeBedrock) -> None:
    tool_use = {"type": "tool_use", "id": "toolu_1", "name": "calc", "input": {"x": 1}}
    fake_bedrock.enqueue(anthropic_message([tool_use], stop_reason="tool_use"))

    assert invoke()["content"] == [tool_use]
    assert invoke()["content"][0]["type"] == "text"
    assert fake_bedrock.pending == 0


@pytest.mark.parametrize(
    ("code", "status"),
    [
        ("ThrottlingException", 429),
        ("ServiceUnavailableException", 503),
        ("ModelTimeoutException", 408),
        ("ValidationException", 400),
        ("AccessDeniedException", 403),
    ],
)
def test_faults_reach_boto3_with_code_and_status(
    fake_bedrock: FakeBedrock, code: str, status: int
) -> None:
    fake_bedrock.enqueue(BedrockFault(code, "scripted trouble"))

    with pytest.raises(ClientError) as caught:
        invoke()

    error = caught.value.response
    assert error["Error"]["Code"] == code
    assert error["Error"]["Message"] == "scripted trouble"
    assert error["ResponseMetadata"]["HTTPStatusCode"] == status
    assert len(fake_bedrock.requests) == 1  # max_attempts=1: boto3 did not retry


def test_unknown_fault_code_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown InvokeModel error"):
        BedrockFault("Throttled")


def test_the_server_answers_boto3_over_http_at_the_endpoint_variable(
    fake_bedrock_server: FakeBedrockServer,
) -> None:
    throttled = BedrockFault("ThrottlingException")
    fake_bedrock_server.enqueue(anthropic_message("over the wire"), throttled)

    answer = invoke("hello server")
    with pytest.raises(ClientError) as caught:
        invoke()

    assert answer["content"] == [{"type": "text", "text": "over the wire"}]
    assert caught.value.response["Error"]["Code"] == "ThrottlingException"
    assert caught.value.response["ResponseMetadata"]["HTTPStatusCode"] == 429
    first, _ = fake_bedrock_server.requests
    assert first.model_id == MODEL_ID
    assert first.body["messages"][0]["content"][0]["text"] == "hello server"
    assert first.content_type == "application/json"


def test_another_process_reaches_the_server(fake_bedrock_server: FakeBedrockServer) -> None:
    # What a gateway run as a process does: only the environment says where Bedrock is.
    fake_bedrock_server.enqueue(anthropic_message("from the fake, in another process"))
    script = (
        "import boto3, json\n"
        "client = boto3.client('bedrock-runtime')\n"
        "body = {'anthropic_version': 'bedrock-2023-05-31', 'max_tokens': 8,\n"
        "        'messages': [{'role': 'user', 'content': 'hi'}]}\n"
        f"answer = client.invoke_model(modelId='{MODEL_ID}', body=json.dumps(body))\n"
        "print(json.loads(answer['body'].read())['content'][0]['text'])\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script],
        env={**os.environ, **fake_bedrock_server.environ()},
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "from the fake, in another process"
    assert len(fake_bedrock_server.requests) == 1
