"""Bedrock through moto, with scripted answers and faults.

moto mocks ``bedrock-runtime`` ``InvokeModel`` (real boto3 serialization and signing) but always
answers ``{}``. ``fake_bedrock`` keeps moto's request handling and replaces its backend's
``invoke_model`` so each call takes the next scripted item: an answer body (a dict, returned as
the response JSON) or a ``BedrockFault``, raised as a moto ``ServiceException`` so boto3 sees a
real error response with the code and the HTTP status of the bedrock-runtime service model.
With nothing scripted it answers ``"fake-bedrock answer to: <last user text>"``.

``FakeBedrockServer`` is the same script behind moto's server mode on a free loopback port,
for clients that must reach Bedrock over HTTP (another process, an async client): point
``AWS_ENDPOINT_URL_BEDROCK_RUNTIME`` at its ``url`` (``environ()`` gives every variable).

``BedrockWire`` is for what moto cannot show or say: it records each request as it came
(path, headers with the signature or bearer token, raw body) and answers InvokeModel and
CountTokens the way Bedrock does, or plays scripted ``Reply``/``Disconnect`` items (an error
type header with its ``:url`` suffix, a slow answer).
"""

from __future__ import annotations

import threading
import time
import uuid
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pytest

from tests.fakes.anthropic_server import last_user_text
from tests.fakes.server import Exchange, FakeServer, RecordedRequest

if TYPE_CHECKING:  # moto is imported where it is used: a second of every test worker's start
    from moto.bedrockruntime.exceptions import BedrockRuntimeError
    from moto.bedrockruntime.models import BedrockRuntimeBackend
    from moto.bedrockruntime.responses import BedrockRuntimeResponse

REGION = "us-east-1"
DEFAULT_MODEL_ID = "anthropic.claude-3-5-haiku-20241022-v1:0"

FAULT_STATUS = {
    "ThrottlingException": 429,
    "ServiceUnavailableException": 503,
    "ModelTimeoutException": 408,
    "ValidationException": 400,
    "AccessDeniedException": 403,
    "InternalServerException": 500,
    "ModelNotReadyException": 429,
    "ModelErrorException": 424,
    "ResourceNotFoundException": 404,
    "ServiceQuotaExceededException": 400,
}
"""The InvokeModel errors and the HTTP status the service model gives each."""


@dataclass(frozen=True)
class BedrockFault:
    """A scripted InvokeModel error, e.g. ``BedrockFault("ThrottlingException")``."""

    code: str
    message: str = ""

    def __post_init__(self) -> None:
        if self.code not in FAULT_STATUS:
            raise ValueError(f"unknown InvokeModel error {self.code!r}; use one of {FAULT_STATUS}")

    @property
    def status(self) -> int:
        return FAULT_STATUS[self.code]

    def exception(self) -> BedrockRuntimeError:
        from moto.bedrockruntime.exceptions import BedrockRuntimeError

        return BedrockRuntimeError(self.code, self.message or f"fake-bedrock scripted {self.code}")


@dataclass(frozen=True)
class InvokeRequest:
    model_id: str
    body: Any
    """The parsed JSON body (raw when the content type was not JSON)."""
    content_type: str
    accept: str
    received_at: float = field(default_factory=time.monotonic)
    """``time.monotonic()`` when the call reached the backend."""


def anthropic_message(
    content: list[dict[str, Any]] | str,
    *,
    model: str = DEFAULT_MODEL_ID,
    stop_reason: str = "end_turn",
    input_tokens: int = 10,
    output_tokens: int = 10,
) -> dict[str, Any]:
    """An Anthropic-on-Bedrock InvokeModel answer body (a string becomes one text block)."""
    blocks = [{"type": "text", "text": content}] if isinstance(content, str) else content
    return {
        "id": f"msg_bdrk_{uuid.uuid4().hex[:24]}",
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": blocks,
        "stop_reason": stop_reason,
        "stop_sequence": None,
        "usage": {"input_tokens": input_tokens, "output_tokens": output_tokens},
    }


class FakeBedrock:
    """The script and the record behind the patched moto backend."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._script: deque[dict[str, Any] | BedrockFault] = deque()
        self._requests: list[InvokeRequest] = []
        self._wire = threading.local()  # contentType/accept, which moto does not pass on

    def enqueue(self, *items: dict[str, Any] | BedrockFault) -> None:
        """Script the next answers (bodies or faults), one per InvokeModel call, in order."""
        with self._lock:
            self._script.extend(items)

    @property
    def requests(self) -> list[InvokeRequest]:
        with self._lock:
            return list(self._requests)

    @property
    def pending(self) -> int:
        with self._lock:
            return len(self._script)

    def invoke_model(self, payload: Any, model_id: str) -> dict[str, Any]:
        """What moto's backend answers: the next scripted body, or raise the next fault."""
        content_type, accept = getattr(self._wire, "value", ("application/json",) * 2)
        with self._lock:
            self._requests.append(InvokeRequest(model_id, payload, content_type, accept))
            item = self._script.popleft() if self._script else None
        if isinstance(item, BedrockFault):
            raise item.exception()
        return item if item is not None else self._default_answer(payload, model_id)

    @staticmethod
    def _default_answer(payload: Any, model_id: str) -> dict[str, Any]:
        messages = payload.get("messages", []) if isinstance(payload, dict) else []
        text = last_user_text(messages) if isinstance(messages, list) else ""
        return anthropic_message(f"fake-bedrock answer to: {text}", model=model_id)

    def note_wire(self, content_type: str, accept: str) -> None:
        self._wire.value = (content_type, accept)


def _patch_moto(monkeypatch: pytest.MonkeyPatch, fake: FakeBedrock) -> None:
    from moto.bedrockruntime.models import BedrockRuntimeBackend
    from moto.bedrockruntime.responses import BedrockRuntimeResponse

    original_response = BedrockRuntimeResponse.invoke_model

    def invoke_model_response(self: BedrockRuntimeResponse) -> Any:
        fake.note_wire(
            self._get_param("contentType", "application/json"),
            self._get_param("accept", "application/json"),
        )
        return original_response(self)

    def invoke_model_backend(
        self: BedrockRuntimeBackend, payload: Any, model_id: str
    ) -> dict[str, Any]:
        return fake.invoke_model(payload, model_id)

    monkeypatch.setattr(BedrockRuntimeResponse, "invoke_model", invoke_model_response)
    monkeypatch.setattr(BedrockRuntimeBackend, "invoke_model", invoke_model_backend)


@pytest.fixture
def fake_bedrock(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeBedrock]:
    """moto's bedrock-runtime with fake credentials and a scripted ``invoke_model``."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    from moto import mock_aws

    fake = FakeBedrock()
    _patch_moto(monkeypatch, fake)
    with mock_aws():
        yield fake


_moto_warm = False


class FakeBedrockServer(FakeBedrock):
    """moto's bedrock-runtime over real HTTP on 127.0.0.1, answering from this script."""

    def __init__(self, *, host: str = "127.0.0.1", port: int = 0) -> None:
        from moto.server import ThreadedMotoServer

        super().__init__()
        self._server = ThreadedMotoServer(ip_address=host, port=port, verbose=False)
        self._patches = pytest.MonkeyPatch()

    @property
    def url(self) -> str:
        host, port = self._server.get_host_and_port()
        return f"http://{host}:{port}"

    def environ(self) -> dict[str, str]:
        """The variables that point boto3 (and the gateway's bedrock provider) at this server."""
        return {
            "AWS_ENDPOINT_URL_BEDROCK_RUNTIME": self.url,
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_REGION": REGION,
            "AWS_DEFAULT_REGION": REGION,
        }

    def start(self) -> FakeBedrockServer:
        _patch_moto(self._patches, self)
        self._server.start()
        self._warm_up()
        return self

    def _warm_up(self) -> None:
        """moto loads a service's backend on its first request, once a process: 1.2 s here on
        a quiet machine, past a test gateway's attempt timeout on a loaded one. One call
        before the test's own pays it, then is forgotten."""
        global _moto_warm
        if _moto_warm:
            return
        import boto3  # the fake's own tests' client; only the first server of a process needs it

        client = boto3.client(
            "bedrock-runtime",
            endpoint_url=self.url,
            region_name=REGION,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )
        client.invoke_model(modelId="warm-up", body=b"{}")
        with self._lock:
            self._requests.clear()
        _moto_warm = True

    def stop(self) -> None:
        self._server.stop()
        self._patches.undo()

    def __enter__(self) -> FakeBedrockServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


@pytest.fixture
def fake_bedrock_server(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeBedrockServer]:
    """A running ``FakeBedrockServer``, with the environment pointing boto3 at it."""
    with FakeBedrockServer() as server:
        for name, value in server.environ().items():
            monkeypatch.setenv(name, value)
        yield server


class BedrockWire(FakeServer):
    """Bedrock's InvokeModel and CountTokens on the wire, with every request recorded."""

    REQUEST_ID = "fake-bedrock-request-id"
    INPUT_TOKENS = 42

    def answer(self, request: RecordedRequest, exchange: Exchange) -> None:
        scripted = self.next_scripted()
        headers = {"x-amzn-RequestId": self.REQUEST_ID}
        if scripted is not None:
            exchange.play(scripted)
        elif request.route.endswith("/count-tokens"):
            exchange.send_json(200, {"inputTokens": self.INPUT_TOKENS}, headers)
        elif request.route.endswith("/invoke"):
            exchange.send_json(200, anthropic_message("fake-bedrock wire answer"), headers)
        else:
            exchange.send_json(404, {"message": "no such operation"})
