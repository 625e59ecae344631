"""AsyncFunctionApp through functions-framework's ASGI path: routing, request ids, limits, and
the error shape."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, cast

import pytest
from starlette.testclient import TestClient

from shared.errors import BadRequest
from shared.http import Query

if TYPE_CHECKING:
    from httpx2 import Response  # what starlette's TestClient answers with

MAX_BODY_BYTES = 1024  # tests/shared/functions/basic/main.py
JSON = {"content-type": "application/json"}


def mimetype(response: Response) -> str:
    return response.headers.get("content-type", "").split(";")[0]


def pieces(body: bytes, size: int = 256) -> Iterator[bytes]:
    """A body without a Content-Length: httpx sends an iterator chunked."""
    for start in range(0, len(body), size):
        yield body[start : start + size]


def assert_error(response: Response, status: int, error_type: str) -> dict[str, Any]:
    assert response.status_code == status
    assert mimetype(response) == "application/json"
    body: dict[str, Any] = response.json()
    assert body["type"] == "error"
    assert body["error"]["type"] == error_type
    assert body["error"]["message"]
    return body


def test_valid_request_id_is_echoed(basic_client: TestClient) -> None:
    response = basic_client.get("/health", headers={"x-request-id": "req-42.a:b_c"})

    assert response.headers["x-request-id"] == "req-42.a:b_c"


@pytest.mark.parametrize("sent", [None, "", "has spaces", "x" * 129, "semi;colon", "ünï"])
def test_missing_or_invalid_request_id_is_replaced(
    basic_client: TestClient, sent: str | None
) -> None:
    # Latin-1 bytes, as a client may send them: httpx passes bytes values on as given, though
    # its types pair str names with str values only.
    headers = {} if sent is None else cast(dict[str, str], {"x-request-id": sent.encode("latin-1")})

    response = basic_client.get("/health", headers=headers)

    created = response.headers["x-request-id"]
    assert created != sent
    assert re.fullmatch(r"[A-Za-z0-9]{12,32}", created)
    again = basic_client.get("/health", headers=headers).headers["x-request-id"]
    assert again != created


def test_the_platforms_execution_id_becomes_the_request_id(basic_client: TestClient) -> None:
    # Cloud Run and Cloud Functions send function-execution-id; functions-framework logs it.
    response = basic_client.get("/health", headers={"function-execution-id": "exec-7"})

    assert response.headers["x-request-id"] == "exec-7"


def test_health_is_cheap_and_extensible(basic_client: TestClient) -> None:
    response = basic_client.get("/health")

    assert response.status_code == 200
    assert response.json() == {"status": "ok", "function": "basic", "scenario": "basic"}


def test_metrics_are_prometheus_text(basic_client: TestClient) -> None:
    basic_client.get("/health")

    response = basic_client.get("/metrics")

    assert response.status_code == 200
    assert mimetype(response) == "text/plain"
    text = response.text
    assert "# TYPE agentorch_http_requests_total counter" in text
    assert 'agentorch_http_requests_total{function="basic",route="/health",status="200"}' in text


def test_unknown_path_is_a_json_404(basic_client: TestClient) -> None:
    body = assert_error(basic_client.get("/nowhere"), 404, "not_found_error")

    assert "/nowhere" in body["error"]["message"]


def test_wrong_method_is_a_405_with_allow(basic_client: TestClient) -> None:
    response = basic_client.get("/")

    assert_error(response, 405, "invalid_request_error")
    assert response.headers["allow"] == "POST"


def test_trailing_slash_reaches_the_route(basic_client: TestClient) -> None:
    assert basic_client.get("/health/").status_code == 200


def test_service_error_keeps_its_status_and_type(basic_client: TestClient) -> None:
    body = assert_error(basic_client.get("/refuse"), 403, "permission_error")

    assert body["error"]["message"] == "this route refuses everyone"


def test_unexpected_exception_is_a_500_without_internals(basic_client: TestClient) -> None:
    response = basic_client.get("/crash", headers={"x-request-id": "crash-1"})

    body = assert_error(response, 500, "api_error")
    assert "crash-1" in body["error"]["message"]
    text = response.text
    assert "Traceback" not in text and "secret internals" not in text


def test_unrenderable_reply_is_a_json_500(basic_client: TestClient) -> None:
    response = basic_client.get("/unrenderable", headers={"x-request-id": "render-1"})

    assert_error(response, 500, "api_error")
    assert response.headers["x-request-id"] == "render-1"


def test_json_post_is_echoed(basic_client: TestClient) -> None:
    response = basic_client.post("/", json={"task": "add", "n": [1, 2]})

    assert response.status_code == 200
    assert response.json() == {"data": {"task": "add", "n": [1, 2]}, "event_id": None}


def test_body_over_the_limit_is_a_413(basic_client: TestClient) -> None:
    body = b'{"pad": "' + b"x" * MAX_BODY_BYTES + b'"}'

    response = basic_client.post("/", content=body, headers=JSON)

    message = assert_error(response, 413, "request_too_large")["error"]["message"]
    assert str(len(body)) in message and str(MAX_BODY_BYTES) in message


def test_chunked_body_over_the_limit_is_a_413(basic_client: TestClient) -> None:
    # No Content-Length: the app must stop reading once the limit is passed.
    body = pieces(b"x" * (MAX_BODY_BYTES * 4))

    response = basic_client.post("/", content=body, headers=JSON)

    assert response.request.headers["transfer-encoding"] == "chunked"
    assert_error(response, 413, "request_too_large")


def test_chunked_body_within_the_limit_is_read(basic_client: TestClient) -> None:
    response = basic_client.post("/", content=pieces(b'{"small": true}', size=4), headers=JSON)

    assert response.json()["data"] == {"small": True}


def test_body_at_the_limit_is_accepted(basic_client: TestClient) -> None:
    pad = "x" * (MAX_BODY_BYTES - len('{"pad": ""}'))
    body = f'{{"pad": "{pad}"}}'.encode()
    assert len(body) == MAX_BODY_BYTES

    assert basic_client.post("/", content=body, headers=JSON).status_code == 200


def test_streamed_reply_is_delivered(basic_client: TestClient) -> None:
    response = basic_client.get("/stream")

    assert response.status_code == 200
    assert mimetype(response) == "text/plain"
    assert "content-length" not in response.headers  # streamed as it came, not sized first
    assert response.content == b"one\ntwo\n"
    assert response.headers["x-request-id"]


@pytest.mark.parametrize(
    ("body", "fragment"),
    [(b"", "empty"), (b"{not json", "not valid JSON"), (b"[" * MAX_BODY_BYTES, "too deeply")],
)
def test_bad_bodies_are_400(basic_client: TestClient, body: bytes, fragment: str) -> None:
    response = basic_client.post("/", content=body, headers=JSON)

    assert fragment in assert_error(response, 400, "invalid_request_error")["error"]["message"]


# -- query strings ---------------------------------------------------------------------------


def test_a_query_is_read_one_parameter_at_a_time() -> None:
    query = Query.parse(b"limit=07&after_id=&x=1&x=2&name=%C3%A9t%C3%A9")

    assert query.integer("limit", default=20, low=1, high=1000) == 7
    assert query.integer("absent", default=20, low=1, high=1000) == 20
    assert (query.get("after_id"), query.get("name"), query.get("absent")) == ("", "été", None)
    with pytest.raises(BadRequest, match="x: given 2 times"):
        query.get("x")  # a repeated parameter is refused only where a route reads it
    assert Query.parse(b"").values == {}


@pytest.mark.parametrize(
    "raw", ["\u00b2", "\u0664", "9" * 5000, "-1", "+1", "0", "1001", "1.0", "1e3", " 1", ""]
)
def test_a_malformed_integer_is_a_bad_request_naming_it(raw: str) -> None:
    query = Query({"limit": (raw,)})

    with pytest.raises(BadRequest, match=r"^limit: must be an integer from 1 to 1000, got '"):
        query.integer("limit", default=20, low=1, high=1000)
