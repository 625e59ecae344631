"""Tracing off costs a function nothing at start: no OpenTelemetry module is imported, even
after a request with a traceparent went through the edge and out again (cold start, issue 17).
One fresh interpreter: the test process itself has the SDK loaded by other tests."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

pytestmark = pytest.mark.processes

PROBE = """
import asyncio, sys
from starlette.requests import Request
from functions.agents.calculator.agent import SPEC
from shared.agent import agent_app

parent = b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
body = b'{"expression": "1+1"}'
scope = {
    "type": "http", "method": "POST", "path": "/", "query_string": b"",
    "headers": [(b"traceparent", parent), (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode())],
}

async def receive():
    return {"type": "http.request", "body": body, "more_body": False}

answer = asyncio.run(agent_app(SPEC)(Request(scope, receive)))
assert answer.status_code == 200, answer.body
print(sorted(name for name in sys.modules if name.startswith("opentelemetry")))
"""


def test_no_opentelemetry_module_is_imported_when_tracing_is_off() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    done = subprocess.run(
        [sys.executable, "-c", PROBE],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
