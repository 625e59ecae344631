"""The Lambda image variant really boots and answers: the Dockerfile's ``lambda`` stage over the
calculator, run as Lambda runs it (a read-only root, only /tmp writable), against the stand-in
for the Lambda Runtime API on the host (tests/fakes/lambda_runtime.py)."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator

import pytest

from tests.docker.stack import REPO_ROOT, docker
from tests.fakes.lambda_runtime import FakeLambdaRuntime
from tests.shared.test_lambda_http import url_event

IMAGE = "agentorch/calculator-lambda:e2e"


@pytest.fixture(scope="module")
def image() -> str:
    base = os.environ.get("BASE_IMAGE", "python:3.11-slim")  # docker-e2e.sh exports it
    built = subprocess.run(
        ["docker", "build", "-q", "--target", "lambda", "--build-arg", f"BASE_IMAGE={base}"]
        + ["--build-arg", "FUNCTION=calculator", "-t", IMAGE, "."],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert built.returncode == 0, built.stdout + built.stderr
    return IMAGE


@pytest.fixture(scope="module")
def runtime(image: str) -> Iterator[FakeLambdaRuntime]:
    with FakeLambdaRuntime() as fake:
        container = docker(
            "run", "-d", "--rm", "--network", "host", "--read-only", "--tmpfs", "/tmp",
            "-e", f"AWS_LAMBDA_RUNTIME_API={fake.address}", image,
        ).strip()  # fmt: skip
        try:
            yield fake
        finally:
            subprocess.run(["docker", "rm", "-f", container], capture_output=True, timeout=60)


def test_the_lambda_image_boots_and_answers_a_function_url_event(
    runtime: FakeLambdaRuntime,
) -> None:
    event = url_event("POST", body=json.dumps({"expression": "17*23"}))
    invocation = runtime.invoke(event, timeout_s=60)
    assert invocation.ok, invocation.payload
    assert invocation.payload["statusCode"] == 200, invocation.payload
    assert json.loads(invocation.payload["body"])["result"]["value"] == 391
