"""The Lambda adapter (shared/lambda_http.py): Function URL and API Gateway events, of every
shape, through functions-framework's app for a tiny function, answered as Lambda expects."""

from __future__ import annotations

import base64
import importlib
import json
from collections.abc import Iterator
from typing import Any

import pytest

from shared.lambda_events import NotHttpEvent
from shared.lambda_http import LambdaHandler

ECHO = "tests.shared.functions.lambda_echo.main"


def url_event(
    method: str = "GET",
    path: str = "/",
    *,
    query: str = "",
    headers: dict[str, str] | None = None,
    body: str | None = None,
    base64_body: bool = False,
    cookies: list[str] | None = None,
    stage: str = "$default",
) -> dict[str, Any]:
    """A Function URL / HTTP API event (payload format 2.0), as Lambda sends it."""
    event: dict[str, Any] = {
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": path,
        "rawQueryString": query,
        "headers": {
            "host": "abc.lambda-url.eu-west-1.on.aws",
            "x-forwarded-proto": "https",
            "user-agent": "curl/8.0",
            **(headers or {}),
        },
        "requestContext": {
            "accountId": "123456789012",
            "apiId": "abc",
            "domainName": "abc.lambda-url.eu-west-1.on.aws",
            "http": {
                "method": method,
                "path": path,
                "protocol": "HTTP/1.1",
                "sourceIp": "203.0.113.7",
                "userAgent": "curl/8.0",
            },
            "requestId": "req-1",
            "routeKey": "$default",
            "stage": stage,
            "time": "07/Dec/2026:20:00:00 +0000",
            "timeEpoch": 1796673600000,
        },
        "isBase64Encoded": base64_body,
    }
    if cookies is not None:
        event["cookies"] = cookies
    if body is not None:
        event["body"] = body
    return event


@pytest.fixture(scope="module")
def echo() -> Iterator[LambdaHandler]:
    handler: LambdaHandler = importlib.import_module(ECHO).handler
    yield handler
    handler.close()


def echoed(answer: dict[str, Any]) -> dict[str, Any]:
    assert answer["statusCode"] == 200, answer
    assert answer["isBase64Encoded"] is False
    seen: dict[str, Any] = json.loads(answer["body"])
    return seen


def test_a_json_body_reaches_the_app_with_method_path_and_caller(echo: LambdaHandler) -> None:
    body = json.dumps({"task": "add 2 and 2"})
    seen = echoed(
        echo(url_event("POST", "/tasks", body=body, headers={"content-type": "application/json"}))
    )
    assert seen["method"] == "POST"
    assert seen["path"] == "/tasks"
    assert base64.b64decode(seen["body"]) == body.encode()
    assert seen["headers"]["content-type"] == "application/json"
    assert seen["client"] == "203.0.113.7"


def test_a_base64_body_is_decoded_to_its_bytes(echo: LambdaHandler) -> None:
    raw = bytes(range(256))
    event = url_event("POST", body=base64.b64encode(raw).decode(), base64_body=True)
    assert base64.b64decode(echoed(echo(event))["body"]) == raw


def test_query_strings_keep_repeats_and_escapes(echo: LambdaHandler) -> None:
    seen = echoed(echo(url_event(query="a=1&a=2&q=caf%C3%A9%20au+lait&empty=")))
    assert seen["query"] == "a=1&a=2&q=caf%C3%A9%20au+lait&empty="
    assert seen["params"] == [["a", "1"], ["a", "2"], ["empty", ""], ["q", "café au lait"]]


def test_escaped_paths_decode_and_multi_value_headers_pass_as_sent(echo: LambdaHandler) -> None:
    event = url_event(path="/a%20b", headers={"accept": "text/html,application/json"})
    seen = echoed(echo(event))
    assert seen["path"] == "/a b"
    assert seen["headers"]["accept"] == "text/html,application/json"


def test_cookies_become_one_cookie_header(echo: LambdaHandler) -> None:
    seen = echoed(echo(url_event(cookies=["a=1", "b=2"])))
    assert seen["headers"]["cookie"] == "a=1; b=2"


def test_a_named_stage_is_taken_off_the_path(echo: LambdaHandler) -> None:
    seen = echoed(echo(url_event(path="/prod/health", stage="prod")))
    assert (seen["path"], seen["root_path"]) == ("/health", "/prod")


def test_set_cookies_go_in_cookies_and_repeated_headers_are_joined(echo: LambdaHandler) -> None:
    answer = echo(url_event(path="/cookies"))
    assert answer["body"] == "ok"
    assert [cookie.split(";")[0] for cookie in answer["cookies"]] == ["a=1", "b=2"]
    assert answer["headers"]["x-many"] == "one,two"
    assert "set-cookie" not in answer["headers"]


def test_a_binary_answer_goes_base64(echo: LambdaHandler) -> None:
    answer = echo(url_event(path="/binary"))
    assert answer["isBase64Encoded"] is True
    assert base64.b64decode(answer["body"]) == bytes(range(256))


def test_a_stream_is_answered_whole(echo: LambdaHandler) -> None:
    answer = echo(url_event(path="/stream"))
    assert answer["statusCode"] == 200
    assert answer["headers"]["content-type"].startswith("text/event-stream")
    assert answer["body"].count("event: tick") == 3


def test_a_crash_is_a_500_that_tells_nothing_inside(echo: LambdaHandler) -> None:
    answer = echo(url_event(path="/crash"))
    assert answer["statusCode"] == 500
    assert "secret" not in answer["body"]


def test_a_rest_api_event_payload_1_0(echo: LambdaHandler) -> None:
    event = {
        "resource": "/{proxy+}",
        "path": "/items",
        "httpMethod": "POST",
        "headers": {"Content-Type": "application/json"},
        "multiValueHeaders": {"Content-Type": ["application/json"], "X-Many": ["1", "2"]},
        "queryStringParameters": {"a": "2"},
        "multiValueQueryStringParameters": {"a": ["1", "2"], "q": ["x y"]},
        "requestContext": {"identity": {"sourceIp": "198.51.100.1"}, "stage": "prod"},
        "body": "e30=",
        "isBase64Encoded": True,
    }
    answer = echo(event)
    assert answer["multiValueHeaders"]["content-type"] == ["application/json"]
    seen = json.loads(answer["body"])
    assert (seen["method"], seen["path"], seen["client"]) == ("POST", "/items", "198.51.100.1")
    assert seen["params"] == [["a", "1"], ["a", "2"], ["q", "x y"]]
    assert seen["headers"]["x-many"] == "1, 2"
    assert base64.b64decode(seen["body"]) == b"{}"


def test_a_rest_api_events_repeated_cookie_headers_are_one_cookie_list(
    echo: LambdaHandler,
) -> None:
    event = {
        "path": "/",
        "httpMethod": "GET",
        "multiValueHeaders": {"Cookie": ["a=1", "b=2"], "Accept": ["text/html", "*/*"]},
        "requestContext": {"identity": {"sourceIp": "198.51.100.1"}},
    }
    headers = echoed(echo(event))["headers"]
    assert headers["cookie"] == "a=1; b=2"  # not "a=1, b=2": the cookie a would be "1, b=2"
    assert headers["accept"] == "text/html, */*"


@pytest.mark.parametrize(
    ("change", "named"),
    [
        ({"body": "%%%", "isBase64Encoded": True}, "not base64"),
        ({"body": 42}, "body must be a string"),
        ({"headers": {"x-a": 1}}, "headers.x-a"),
        ({"headers": []}, "headers must be an object"),
        ({"cookies": "a=1"}, "cookies"),
        ({"rawPath": "no-slash"}, "must start with '/'"),
        ({"requestContext": {"http": {"method": "GE T"}}}, "HTTP method"),
        ({"requestContext": {"http": "GET"}}, "requestContext.http"),
        ({"requestContext": {"http": {"method": "\u01c5ET"}}}, "HTTP method"),
        ({"body": "e30=", "isBase64Encoded": "true"}, "isBase64Encoded must be true or false"),
        ({"headers": {"x-a": "a\r\nx-injected: 1"}}, "headers.x-a holds a CR, LF or NUL"),
        ({"headers": {"x-a": "a\nb"}}, "headers.x-a holds a CR, LF or NUL"),
        ({"headers": {"x a": "1"}}, "not a token"),
        ({"headers": {"x-a\r\nx-b": "1"}}, "not a token"),
        ({"cookies": ["a=1\r\nx-b: 2"]}, "cookies holds a CR, LF or NUL"),
    ],
)
def test_a_malformed_http_event_is_a_400_naming_the_field(
    echo: LambdaHandler, change: dict[str, Any], named: str
) -> None:
    answer = echo({**url_event("POST"), **change})
    assert answer["statusCode"] == 400
    error = json.loads(answer["body"])["error"]
    assert error["type"] == "invalid_request_error"
    assert named in error["message"]


@pytest.mark.parametrize("event", [{"Records": []}, {"detail-type": "x"}, [], "text", None])
def test_an_event_that_is_not_http_raises_naming_it(echo: LambdaHandler, event: Any) -> None:
    with pytest.raises(NotHttpEvent, match="not an HTTP event|JSON object"):
        echo(event)


class _Context:
    """What the runtime passes as ``context``: here, the time left before Lambda's deadline."""

    def __init__(self, left_ms: int) -> None:
        self.left_ms = left_ms

    def get_remaining_time_in_millis(self) -> int:
        return self.left_ms


def test_an_answer_later_than_the_deadline_is_a_504() -> None:
    async def never(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            await receive()
            await receive()  # waits for a disconnect that comes only with the answer

    handler = LambdaHandler("unused", "unused", app=never)
    try:
        answer = handler(url_event(), _Context(left_ms=510))
    finally:
        handler.close()
    assert answer["statusCode"] == 504
    assert "deadline" in answer["body"]


def test_an_answer_larger_than_lambda_takes_is_a_500_naming_its_size() -> None:
    async def big(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            headers = [(b"content-type", b"application/octet-stream")]
            await send({"type": "http.response.start", "status": 200, "headers": headers})
            await send({"type": "http.response.body", "body": b"\0" * (5 * 1024 * 1024)})

    handler = LambdaHandler("unused", "unused", app=big)
    try:
        answer = handler(url_event())  # 5 MB: 6.7 MB as base64
    finally:
        handler.close()
    assert answer["statusCode"] == 500
    assert "more than Lambda's 6291456" in json.loads(answer["body"])["error"]["message"]


def test_the_lifespan_starts_once_and_the_loop_is_kept() -> None:
    seen: list[str] = []

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                seen.append(message["type"])
                await send({"type": message["type"] + ".complete"})
                if message["type"] == "lifespan.shutdown":
                    return
        import asyncio

        seen.append(f"loop {id(asyncio.get_running_loop())}")
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    handler = LambdaHandler("unused", "unused", app=app)
    assert handler(url_event())["statusCode"] == 204
    assert handler(url_event())["statusCode"] == 204
    handler.close()
    assert seen[0] == "lifespan.startup"
    assert seen[1] == seen[2]  # one loop for both invocations
    assert seen[3] == "lifespan.shutdown"


def test_a_failed_startup_fails_the_invocation_and_the_next_one_starts_again() -> None:
    startups: list[str] = []

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            message = await receive()
            startups.append(message["type"])
            if len(startups) == 1:
                await send({"type": "lifespan.startup.failed", "message": "no database"})
                return
            await send({"type": "lifespan.startup.complete"})
            await receive()
            await send({"type": "lifespan.shutdown.complete"})
            return
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    handler = LambdaHandler("unused", "unused", app=app)
    with pytest.raises(RuntimeError, match="no database"):
        handler(url_event())
    try:
        assert handler(url_event())["statusCode"] == 204
    finally:
        handler.close()
    assert startups == ["lifespan.startup", "lifespan.startup"]


def test_lambdas_request_id_is_the_execution_id_unless_one_was_sent(echo: LambdaHandler) -> None:
    class Context(_Context):
        aws_request_id = "8f5e-lambda-request"

    handler = echo
    seen = echoed(handler(url_event(), Context(left_ms=60_000)))
    assert seen["headers"]["function-execution-id"] == "8f5e-lambda-request"
    sent = url_event(headers={"function-execution-id": "mine"})
    assert (
        echoed(handler(sent, Context(left_ms=60_000)))["headers"]["function-execution-id"] == "mine"
    )


def test_an_invocations_spans_are_exported_before_it_returns(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The batch processor waits seconds before it exports; Lambda freezes the process once
    the invocation returns: the handler flushes first (into a real OTLP/HTTP receiver)."""
    from shared import telemetry
    from tests.fakes.otlp import FakeOtlp

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            return  # no lifespan: the handler goes on without one
        with telemetry.span("work"):
            await send({"type": "http.response.start", "status": 204, "headers": []})
            await send({"type": "http.response.body", "body": b""})

    with FakeOtlp() as receiver:
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.url)
        monkeypatch.setenv("OTEL_METRICS_EXPORTER", "none")
        monkeypatch.setenv("OTEL_BSP_SCHEDULE_DELAY", "60000")  # only a flush sends it
        telemetry.reset()
        handler = LambdaHandler("unused", "unused", app=app)
        try:
            assert handler(url_event())["statusCode"] == 204
            assert [span.name for span in receiver.spans()] == ["work"]
        finally:
            handler.close()
            telemetry.reset()
