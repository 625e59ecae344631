"""Property: no request makes AsyncFunctionApp answer 5xx or leave the JSON error shape."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any, cast

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from starlette.testclient import TestClient

if TYPE_CHECKING:
    from httpx2 import Response  # what starlette's TestClient answers with

from tests.shared.scenarios import function_client

CLIENT: TestClient = function_client("basic", "basic")

# Header values as an HTTP server would hand them over: latin-1, no control characters.
header_text = st.text(
    st.characters(min_codepoint=0x20, max_codepoint=0xFF, exclude_characters="\x7f"), max_size=40
)

CONTENT_TYPES = [
    "application/json",
    "application/json; charset=utf-8",
    "application/cloudevents+json",
    "application/cloudevents+json; charset=utf-8",
    "application/cloudevents-batch+json",
    "text/plain",
    "application/x-www-form-urlencoded",
    "multipart/form-data; boundary=xyz",
    "application/octet-stream",
]
CE_HEADERS = [
    "ce-specversion",
    "ce-id",
    "ce-source",
    "ce-type",
    "ce-time",
    "ce-subject",
    "ce-datacontenttype",
    "ce-dataschema",
]
ENVELOPE_KEYS = ["specversion", "id", "source", "type", "time", "data", "data_base64"]

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
specversions = st.sampled_from(["1.0", "0.3", "2.0", ""]) | json_values
envelopes = st.dictionaries(st.sampled_from(ENVELOPE_KEYS), json_values, max_size=7) | (
    st.fixed_dictionaries(
        {
            "specversion": specversions,
            "id": json_values,
            "source": json_values,
            "type": json_values,
        },
        optional={"data": json_values, "data_base64": json_values | st.text(max_size=12)},
    )
)


def encoded(value: Any) -> bytes:
    return json.dumps(value).encode()


bodies = st.one_of(
    st.binary(max_size=300),
    st.text(max_size=200).map(str.encode),
    json_values.map(encoded),
    envelopes.map(encoded),
)
# Deeply nested JSON is tested by example (test_http, test_inbound): hypothesis raises the
# recursion limit while it runs a test, so it would not see json's RecursionError here.
content_types = st.none() | st.sampled_from(CONTENT_TYPES) | header_text
ce_headers = st.dictionaries(
    st.sampled_from(CE_HEADERS), st.sampled_from(["1.0", "0.3"]) | header_text, max_size=8
)


def latin1(headers: dict[str, str]) -> dict[str, str]:
    """Header values as bytes on the wire: httpx would refuse str values outside ASCII.
    (It sends bytes values as given, though its types pair str names with str values only.)"""
    return cast(dict[str, str], {name: value.encode("latin-1") for name, value in headers.items()})


def assert_json_answer(response: Response) -> None:
    assert response.status_code < 500, response.text
    assert response.headers["x-request-id"]
    if response.status_code >= 400:
        assert response.json()["type"] == "error"


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(body=bodies, content_type=content_types, ce=ce_headers)
def test_no_body_makes_a_5xx(body: bytes, content_type: str | None, ce: dict[str, str]) -> None:
    headers = dict(ce)
    if content_type is not None:
        headers["content-type"] = content_type

    assert_json_answer(CLIENT.post("/", content=body, headers=latin1(headers)))


@settings(max_examples=100, deadline=None)
@given(
    method=st.sampled_from(["GET", "POST", "PUT", "DELETE", "PATCH"]),
    path=st.sampled_from(["/", "/health", "/metrics", "/refuse", "/nowhere", "/a/b", "/health/"]),
    body=bodies,
    request_id=st.none() | header_text,
)
def test_no_route_or_header_makes_a_5xx(
    method: str, path: str, body: bytes, request_id: str | None
) -> None:
    headers = {} if request_id is None else {"x-request-id": request_id}

    assert_json_answer(CLIENT.request(method, path, content=body, headers=latin1(headers)))
