"""Helpers the agents' HTTP tests share: the function's test client, error bodies, CloudEvents."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import functions_framework
from cloudevents.http import CloudEvent
from flask.testing import FlaskClient

AGENTS_DIR = Path(__file__).resolve().parents[2] / "functions" / "agents"
TOOL_CALL = "agentorch.tool.call"


def function_client(name: str) -> FlaskClient:
    """A test client of functions/agents/<name>/main.py, built from the current environment."""
    source = AGENTS_DIR / name / "main.py"
    client: FlaskClient = functions_framework.create_app(name, str(source)).test_client()
    return client


def error_of(response: Any) -> dict[str, Any]:
    """The ``error`` object of an error response, checking the body is one on the way."""
    body = response.get_json()
    assert body["type"] == "error", body
    return dict(body["error"])


def invalid_request_message(response: Any) -> str:
    """The message of a 400 ``invalid_request_error`` response, checking it is one."""
    assert response.status_code == 400
    error = error_of(response)
    assert error["type"] == "invalid_request_error"
    message: str = error["message"]
    return message


def event(data: Any, event_type: str = TOOL_CALL) -> CloudEvent:
    """A CloudEvent carrying ``data``, as an event source would send it to the function."""
    return CloudEvent({"type": event_type, "source": "tests"}, data)
