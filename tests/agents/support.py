"""Helpers the agents' HTTP tests share: the function's test client, error bodies, CloudEvents."""

from __future__ import annotations

import json as jsonlib
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cloudevents.http import CloudEvent
from starlette.testclient import TestClient

from shared.entry import function_app

if TYPE_CHECKING:
    import httpx2  # what starlette's TestClient answers with

AGENTS_DIR = Path(__file__).resolve().parents[2] / "functions" / "agents"
TOOL_CALL = "agentorch.tool.call"


class FunctionResponse:
    """One answer of the function, read the way the agents' tests read it (``get_json()``,
    ``data``, ``mimetype``: the names of Flask's test responses, kept so the tests read alike)."""

    def __init__(self, response: httpx2.Response) -> None:
        self._response = response

    @property
    def status_code(self) -> int:
        return self._response.status_code

    @property
    def headers(self) -> httpx2.Headers:
        return self._response.headers

    @property
    def data(self) -> bytes:
        return self._response.content

    @property
    def content_type(self) -> str:
        return self._response.headers.get("content-type", "")

    @property
    def mimetype(self) -> str:
        return self.content_type.split(";", 1)[0].strip().lower()

    def get_data(self, as_text: bool = False) -> bytes | str:
        return self._response.text if as_text else self._response.content

    def get_json(self) -> Any:
        """The JSON body; ``None`` when the answer is not JSON."""
        if self.mimetype != "application/json" and not self.mimetype.endswith("+json"):
            return None
        return jsonlib.loads(self._response.content)


class FunctionClient:
    """Requests to a function's ASGI app, in process, with the keywords the tests use:
    ``json=``, ``data=`` (bytes or text), ``headers=``, ``content_type=``."""

    def __init__(self, app: Any) -> None:
        self._client = TestClient(app)

    def open(
        self,
        path: str,
        method: str = "GET",
        *,
        json: Any = None,
        data: bytes | str | None = None,
        headers: dict[str, str] | None = None,
        content_type: str | None = None,
    ) -> FunctionResponse:
        sent = dict(headers or {})
        if content_type is not None:
            sent["content-type"] = content_type
        if json is not None:
            data = jsonlib.dumps(json)
            sent.setdefault("content-type", "application/json")
        body = data.encode() if isinstance(data, str) else data
        response = self._client.request(method, path, content=body, headers=sent)
        return FunctionResponse(response)

    def get(self, path: str, **options: Any) -> FunctionResponse:
        return self.open(path, "GET", **options)

    def post(self, path: str, **options: Any) -> FunctionResponse:
        return self.open(path, "POST", **options)

    def put(self, path: str, **options: Any) -> FunctionResponse:
        return self.open(path, "PUT", **options)


def function_client(name: str) -> FunctionClient:
    """A test client of functions/agents/<name>/main.py, built from the current environment."""
    source = AGENTS_DIR / name / "main.py"
    return FunctionClient(function_app(str(source), name))


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
