"""Request parsing: a plain JSON POST and a CloudEvent (binary or structured) give the same data."""

from __future__ import annotations

import json
from typing import Any

import pytest
from cloudevents.conversion import to_binary, to_structured
from cloudevents.http import CloudEvent
from starlette.testclient import TestClient

from shared.errors import BadRequest
from shared.inbound import STRUCTURED_CONTENT_TYPE, parse_request, require_object

TASK = {"task": "add 2 and 3", "data": [1, 2, {"x": None}], "max_steps": 4}


def event_of(data: Any) -> CloudEvent:
    return CloudEvent({"type": "agentorch.task", "source": "tests", "id": "evt-1"}, data)


def test_plain_json() -> None:
    inbound = parse_request({"Content-Type": "application/json"}, json.dumps(TASK).encode())

    assert inbound.data == TASK
    assert (inbound.event_id, inbound.event_type, inbound.event_source) == (None, None, None)


@pytest.mark.parametrize("body", [b"", b"   \n"])
def test_empty_body_is_a_bad_request(body: bytes) -> None:
    with pytest.raises(BadRequest, match="empty"):
        parse_request({"content-type": "application/json"}, body)


@pytest.mark.parametrize("body", [b"{nope", b"\xff\xfe\x00garbage", b'{"a": 1} trailing'])
def test_invalid_json_is_a_bad_request(body: bytes) -> None:
    with pytest.raises(BadRequest, match="not valid JSON"):
        parse_request({"content-type": "application/json"}, body)


def test_deeply_nested_json_is_a_bad_request() -> None:
    with pytest.raises(BadRequest, match="too deeply"):
        parse_request({}, b"[" * 5000 + b"]" * 5000)


@pytest.mark.parametrize("convert", [to_binary, to_structured], ids=["binary", "structured"])
def test_cloudevent_carries_the_same_data_as_a_plain_post(convert: Any) -> None:
    headers, body = convert(event_of(TASK))

    inbound = parse_request(headers, body)

    assert inbound.data == TASK
    assert inbound.event_id == "evt-1"
    assert inbound.event_type == "agentorch.task"
    assert inbound.event_source == "tests"


def test_binary_event_with_text_content_type_is_decoded() -> None:
    headers, body = to_binary(event_of(TASK))

    inbound = parse_request({**headers, "content-type": "text/plain"}, body)

    assert inbound.data == TASK


@pytest.mark.parametrize(
    "missing", ["ce-id", "ce-source", "ce-type"], ids=lambda name: f"without-{name}"
)
def test_binary_event_missing_a_required_attribute(missing: str) -> None:
    headers, body = to_binary(event_of(TASK))
    del headers[missing]

    with pytest.raises(BadRequest, match="invalid CloudEvent"):
        parse_request(headers, body)


@pytest.mark.parametrize("missing", ["specversion", "id", "source", "type"])
def test_structured_event_missing_a_required_attribute(missing: str) -> None:
    headers, body = to_structured(event_of(TASK))
    envelope = json.loads(body)
    del envelope[missing]

    with pytest.raises(BadRequest, match="invalid CloudEvent"):
        parse_request(headers, json.dumps(envelope).encode())


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b"[1, 2]",
        b"null",
        b"42",
        b'{"specversion": "9.9"}',
        b'{"specversion": []}',
        b"[" * 5000,
    ],
    ids=["not-json", "array", "null", "number", "unknown-specversion", "unhashable", "deep"],
)
def test_malformed_structured_event_is_a_bad_request(body: bytes) -> None:
    with pytest.raises(BadRequest, match="CloudEvent"):
        parse_request({"content-type": "application/cloudevents+json"}, body)


def test_event_without_data_is_a_bad_request() -> None:
    headers, body = to_structured(event_of(None))

    with pytest.raises(BadRequest, match="no data"):
        parse_request(headers, body)


def test_require_object_names_what_it_got() -> None:
    assert require_object({"a": 1}) == {"a": 1}
    with pytest.raises(BadRequest, match="got list"):
        require_object([1])


@pytest.mark.parametrize("convert", [to_binary, to_structured], ids=["binary", "structured"])
def test_function_sees_the_same_data_over_http(basic_client: TestClient, convert: Any) -> None:
    plain = basic_client.post("/", json=TASK).json()
    headers, body = convert(event_of(TASK))

    evented = basic_client.post("/", content=body, headers=headers).json()

    assert evented == {**plain, "event_id": "evt-1"}


def test_a_json_string_payload_is_not_decoded_twice() -> None:
    headers = {
        "ce-specversion": "1.0",
        "ce-id": "1",
        "ce-source": "t",
        "ce-type": "t",
        "content-type": "application/json",
    }

    inbound = parse_request(headers, b'"{\\"expression\\": \\"1+1\\"}"')

    assert inbound.data == '{"expression": "1+1"}'  # a string, which callers refuse as such


# -- the attributes that name an event, and how deep a payload may nest --------------------------


@pytest.mark.parametrize("name", ["id", "source", "type"])
def test_an_empty_binary_attribute_is_refused_by_name(name: str) -> None:
    headers, body = to_binary(event_of(TASK))
    headers[f"ce-{name}"] = ""

    with pytest.raises(BadRequest, match=rf"'{name}' \(header ce-{name}\) must be a non-empty"):
        parse_request(headers, body)


@pytest.mark.parametrize("name", ["id", "source", "type"])
def test_a_missing_binary_attribute_is_refused_by_name(name: str) -> None:
    # The SDK's own message for this was "Failed to find specversion in HTTP request".
    headers, body = to_binary(event_of(TASK))
    del headers[f"ce-{name}"]

    with pytest.raises(BadRequest, match=rf"'{name}' \(header ce-{name}\) is missing"):
        parse_request(headers, body)


@pytest.mark.parametrize(
    ("name", "value", "got"),
    [
        ("id", 42, "got a int"),
        ("id", "", "got empty"),
        ("id", True, "got a bool"),
        ("id", [1], "got a list"),
        ("source", "", "got empty"),
        ("source", 7, "got a int"),
        ("type", "", "got empty"),
    ],
)
def test_a_structured_attribute_must_be_a_non_empty_string(name: str, value: Any, got: str) -> None:
    # The SDK keeps an integer id as it came: it then named the same run as the string "42".
    headers, body = to_structured(event_of(TASK))
    envelope = {**json.loads(body), name: value}

    with pytest.raises(BadRequest, match=rf"attribute '{name}' must be a non-empty string, {got}"):
        parse_request(headers, json.dumps(envelope).encode())


def nested(depth: int) -> str:
    """JSON text of ``depth`` levels of arrays and objects, alternating, around a 1. Written
    as text: ``json.dumps`` of 990 levels would meet the recursion limit in the test itself."""
    opening = "".join("[" if level % 2 else '{"k":' for level in range(depth))
    closing = "".join("]" if level % 2 else "}" for level in reversed(range(depth)))
    return opening + "1" + closing


def as_plain(text: str) -> tuple[dict[str, str], bytes]:
    return {"content-type": "application/json"}, text.encode()


def as_binary(text: str) -> tuple[dict[str, str], bytes]:
    headers = {"ce-specversion": "1.0", "ce-id": "1", "ce-source": "s", "ce-type": "t"}
    return {**headers, "content-type": "application/json"}, text.encode()


def as_structured(text: str) -> tuple[dict[str, str], bytes]:
    envelope = '{"specversion": "1.0", "id": "1", "source": "s", "type": "t", "data": %s}'
    return {"content-type": STRUCTURED_CONTENT_TYPE}, (envelope % text).encode()


ENCODINGS = [as_plain, as_binary, as_structured]


@pytest.mark.parametrize("encode", ENCODINGS, ids=["plain", "binary", "structured"])
def test_a_payload_at_the_depth_limit_is_parsed(encode: Any) -> None:
    headers, body = encode(nested(10))

    assert parse_request(headers, body, max_depth=10).data == json.loads(nested(10))


@pytest.mark.parametrize("depth", [11, 500, 990])
@pytest.mark.parametrize("encode", ENCODINGS, ids=["plain", "binary", "structured"])
def test_a_payload_past_the_depth_limit_is_refused_naming_it(encode: Any, depth: int) -> None:
    headers, body = encode(nested(depth))

    with pytest.raises(BadRequest, match="nested too deeply: at most 10 levels"):
        parse_request(headers, body, max_depth=10)


def test_brackets_inside_strings_are_not_levels() -> None:
    # Past the bracket count that lets a body through unwalked, so the walk itself is tested.
    data = {"text": "[" * 500 + "{" * 500, "rows": [{"a": [1]}] * 50}

    assert parse_request(*as_plain(json.dumps(data)), max_depth=4).data == data
    with pytest.raises(BadRequest, match="at most 3 levels"):
        parse_request(*as_plain(json.dumps(data)), max_depth=3)


def test_without_a_depth_limit_only_the_parser_bounds_depth() -> None:
    assert parse_request(*as_plain(nested(500))).data == json.loads(nested(500))
