"""What a function imports to start and answer its first request (cold start, issue 17): the
libraries of features it has not used yet stay unimported. prometheus_client waits for the first
flush of the counts (a second after the first request) or a scrape; uvicorn is told there are no
WebSockets, so it imports no WebSocket library; with tracing off no OpenTelemetry module is
imported, even for a request that carries a ``traceparent``. One fresh interpreter: the test
process has them all loaded by other tests."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.processes

REPO_ROOT = Path(__file__).resolve().parents[2]
LATER = ("prometheus_client", "websockets", "wsproto", "opentelemetry", "mcp", "flask")

PROBE = """
import asyncio, json, sys
LATER = set(sys.argv[1:])
import uvicorn
from shared import metrics, runtime, server
from shared.entry import function_app

runtime.prepare()
app = function_app("functions/agents/calculator/main.py", "calculator")
config = uvicorn.Config(app, **server.uvicorn_options())
config.load()  # what uvicorn does before it listens: picks its protocols

PARENT = b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"

async def first_request():
    body = b'{"expression": "6*7"}'
    scope = {"type": "http", "method": "POST", "path": "/", "raw_path": b"/",
             "query_string": b"", "root_path": "", "scheme": "http",
             "http_version": "1.1", "server": ("127.0.0.1", 80), "client": ("127.0.0.1", 1),
             "headers": [(b"traceparent", PARENT), (b"content-type", b"application/json"),
                         (b"content-length", str(len(body)).encode())]}
    sent = []
    async def receive():
        return {"type": "http.request", "body": body, "more_body": False}
    async def send(message):
        sent.append(message)
    await config.loaded_app(scope, receive, send)
    return sent[0]["status"], b"".join(m.get("body", b"") for m in sent[1:])

status, body = asyncio.run(first_request())
loaded = lambda: sorted({n.split(".")[0] for n in sys.modules} & LATER)
at_start = loaded()
metrics.flush()
text = metrics.render()[0].decode()
counted = [l for l in text.splitlines()
           if l.startswith("agentorch_http_requests_total{") and 'status="200"' in l]
print(json.dumps({"status": status, "body": json.loads(body), "at_start": at_start,
                  "after_flush": loaded(), "counted": counted}))
"""


def test_a_function_answers_its_first_request_without_later_libraries() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "PROMETHEUS_"))}
    done = subprocess.run(
        [sys.executable, "-c", PROBE, *LATER],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.splitlines()[-1])
    assert result["status"] == 200 and result["body"]["result"]["value"] == 42
    assert result["at_start"] == []
    assert result["after_flush"] == ["prometheus_client"]  # the counts went in, and only then
    assert len(result["counted"]) == 1 and result["counted"][0].endswith(" 1.0")
