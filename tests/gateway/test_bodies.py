"""Bodies as Anthropic takes them (32 MB, gzip or deflate, decoded under a cap) and optional CORS
for browser clients."""

from __future__ import annotations

import asyncio
import base64
import gzip
import json
import threading
import time
import zlib
from typing import Any

import httpx
import pytest

from functions.gateway.bodies import (
    MAX_CODINGS,
    MAX_GZIP_MEMBERS,
    Decoder,
    decoded_body,
    request_payload,
)
from functions.gateway.providers.local import MARK
from shared.errors import BadRequest, PayloadTooLarge, UnsupportedMedia
from tests.fakes.anthropic_server import FakeAnthropic
from tests.gateway.support import ServedGateway, StartGateway, request_body

ORIGIN = "https://app.example"
BROWSER_HEADER = "anthropic-dangerous-direct-browser-access"
"""What the TypeScript SDK sends from a browser (``dangerouslyAllowBrowser``)."""


def image_request(size: int) -> dict[str, Any]:
    """A request with one base64 image of about ``size`` bytes on the wire."""
    data = base64.b64encode(b"\x89PNG" + b"\0" * (size * 3 // 4)).decode()
    image = {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": data}}
    content = [image, {"type": "text", "text": "what is in this picture?"}]
    return {**request_body("local"), "messages": [{"role": "user", "content": content}]}


def post(gateway: ServedGateway, content: bytes, **headers: str) -> httpx.Response:
    return gateway.http().post(
        "/v1/messages", content=content, headers={"content-type": "application/json", **headers}
    )


# -- the limit --------------------------------------------------------------------------------


def test_a_37_mb_image_is_accepted_by_default(
    gateway: ServedGateway, fake_anthropic: FakeAnthropic
) -> None:
    body = {**image_request(3_700_000), "model": "anthropic"}

    response = gateway.http().post("/v1/messages", json=body)

    assert response.status_code == 200, response.text[:300]
    [received] = fake_anthropic.requests
    assert received.body["messages"] == body["messages"]  # the image arrived whole


def test_the_limit_is_configurable(start_gateway: StartGateway) -> None:
    gateway = start_gateway(GATEWAY_MAX_BODY_BYTES="1000000")

    response = gateway.http().post("/v1/messages", json=image_request(1_200_000))

    assert response.status_code == 413
    assert "1000000 bytes" in response.json()["error"]["message"]


# -- content-encoding -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("encoding", "compress"),
    [
        ("gzip", gzip.compress),
        ("deflate", zlib.compress),
        ("deflate", lambda data: zlib.compress(data, wbits=-zlib.MAX_WBITS)),  # raw deflate
    ],
    ids=["gzip", "deflate", "raw deflate"],
)
def test_compressed_bodies_are_accepted(
    start_gateway: StartGateway, encoding: str, compress: Any
) -> None:
    payload = json.dumps(request_body("local", "what is 2+2")).encode()

    response = post(start_gateway(), compress(payload), **{"content-encoding": encoding})

    assert response.status_code == 200, response.text
    assert response.json()["content"][0]["text"].startswith(MARK)


def test_a_decompression_bomb_is_413(start_gateway: StartGateway) -> None:
    gateway = start_gateway(GATEWAY_MAX_BODY_BYTES="100000")
    bomb = gzip.compress(b'{"model": "local", "pad": "' + b" " * 10_000_000)
    assert len(bomb) < 100_000  # it passes the limit on the wire

    response = post(gateway, bomb, **{"content-encoding": "gzip"})

    assert response.status_code == 413
    assert "decoded request body exceeds the limit of 100000 bytes" in response.text


def test_an_unknown_encoding_is_415_and_a_broken_one_400(start_gateway: StartGateway) -> None:
    gateway = start_gateway()

    unknown = post(gateway, b"...", **{"content-encoding": "br"})
    broken = post(gateway, b"not gzip at all", **{"content-encoding": "gzip"})

    assert unknown.status_code == 415 and "'br' is not supported" in unknown.text
    assert broken.status_code == 400 and "cannot be decoded" in broken.text


def test_decoding_stops_one_byte_past_the_cap() -> None:
    payload = b"x" * 5000

    assert decoded_body({"content-encoding": "gzip"}, gzip.compress(payload), 5000) == payload
    with pytest.raises(PayloadTooLarge):
        decoded_body({"content-encoding": "gzip"}, gzip.compress(payload), 4999)
    with pytest.raises(BadRequest, match="truncated"):
        decoded_body({"content-encoding": "gzip"}, gzip.compress(payload)[:-12], 9999)
    with pytest.raises(UnsupportedMedia):
        decoded_body({"content-encoding": "zstd"}, payload, 9999)
    assert decoded_body({}, payload, 1) == payload  # not encoded: the edge bounded it


def many_members(count: int) -> bytes:
    """The issue's body: ``count`` empty gzip members, 20 bytes each."""
    return gzip.compress(b"", mtime=0) * count


def test_a_body_of_100000_gzip_members_is_decoded_in_linear_work() -> None:
    body = many_members(100_000)  # 2 MB
    decoder = Decoder(limit=32 * 1024 * 1024, max_members=200_000)  # the cap lifted to see

    assert decoder.decode(["gzip"], body) == b""

    assert decoder.members == 100_000
    # zlib is handed each byte a bounded number of times: slices double from 64 bytes within
    # a member, so what a member leaves over is at most twice what it used, plus 64. Copying
    # the rest of the body per member (the old decoder) handed it 100 GB for these 2 MB.
    assert decoder.fed <= 3 * len(body) + 64 * decoder.members
    assert decoder.fed < 4 * len(body)


def test_members_of_a_real_body_are_joined_and_counted() -> None:
    payload = json.dumps(request_body("local", "what is 2+2")).encode()
    halves = gzip.compress(payload[:40]) + gzip.compress(payload[40:])
    decoder = Decoder(limit=10_000)

    assert decoder.decode(["gzip"], halves) == payload
    assert decoder.members == 2
    assert len(halves) <= decoder.fed <= len(halves) + 64  # the first member's leftover again


def test_gzip_members_beyond_the_cap_are_refused_after_the_cap() -> None:
    decoder = Decoder(limit=1000)

    assert decoder.decode(["gzip"], many_members(MAX_GZIP_MEMBERS)) == b""
    decoder = Decoder(limit=1000)
    with pytest.raises(BadRequest, match=f"at most {MAX_GZIP_MEMBERS} are accepted"):
        decoder.decode(["gzip"], many_members(100_000))
    assert decoder.members == MAX_GZIP_MEMBERS  # the work stopped at the cap


@pytest.mark.parametrize("path", ["/v1/messages", "/v1/messages/count_tokens"])
def test_the_100000_member_body_is_400_naming_the_limit(
    start_gateway: StartGateway, path: str
) -> None:
    response = (
        start_gateway()
        .http()
        .post(
            path,
            content=many_members(100_000),
            headers={"content-type": "application/json", "content-encoding": "gzip"},
        )
    )

    assert response.status_code == 400
    assert response.json()["error"]["type"] == "invalid_request_error"
    assert f"more than {MAX_GZIP_MEMBERS} members" in response.json()["error"]["message"]


def test_stacked_codings_beyond_the_cap_are_415(start_gateway: StartGateway) -> None:
    gateway = start_gateway()
    payload = json.dumps(request_body("local", "what is 2+2")).encode()
    stacked = payload
    for _ in range(MAX_CODINGS):
        stacked = gzip.compress(stacked)

    allowed = post(gateway, stacked, **{"content-encoding": ", ".join(["gzip"] * MAX_CODINGS)})
    deep = post(gateway, gzip.compress(stacked), **{"content-encoding": "gzip, " * 49 + "gzip"})

    assert allowed.status_code == 200, allowed.text
    assert deep.status_code == 415
    assert deep.json()["error"]["message"] == (
        f"content-encoding lists 50 codings; at most {MAX_CODINGS} are accepted"
    )


def test_health_answers_while_a_hostile_body_is_decoded(start_gateway: StartGateway) -> None:
    gateway = start_gateway()
    answers: list[httpx.Response] = []
    sender = threading.Thread(
        target=lambda: answers.append(
            post(gateway, many_members(100_000), **{"content-encoding": "gzip"})
        )
    )
    sender.start()
    probes = 0
    with httpx.Client(base_url=gateway.url, timeout=2.0) as probe:
        deadline = time.monotonic() + 10
        while probes == 0 or (sender.is_alive() and time.monotonic() < deadline):
            # Decoding on the event loop (seconds for this body before) kept this waiting.
            assert probe.get("/health").status_code == 200
            probes += 1
    sender.join(timeout=10)

    assert [answer.status_code for answer in answers] == [400]


def test_encoded_bodies_are_decoded_off_the_event_loop() -> None:
    payload = json.dumps(request_body("local", "x" * 1_000_000)).encode()
    headers = {"content-type": "application/json", "content-encoding": "gzip"}

    async def decode_beside_a_ticker() -> tuple[Any, int]:
        ticks = 0
        decoding = True

        async def tick() -> None:
            nonlocal ticks
            while decoding:
                ticks += 1
                await asyncio.sleep(0)

        ticker = asyncio.create_task(tick())
        await asyncio.sleep(0)
        before = ticks
        decoded = await request_payload(headers, gzip.compress(payload), len(payload))
        during, decoding = ticks - before, False
        await ticker
        return decoded, during

    decoded, ticks = asyncio.run(decode_beside_a_ticker())

    assert decoded == json.loads(payload)
    assert ticks > 0  # the loop served other work meanwhile; on the loop it could not


# -- CORS -------------------------------------------------------------------------------------


def preflight(gateway: ServedGateway, origin: str = ORIGIN) -> httpx.Response:
    return gateway.http().options(
        "/v1/messages",
        headers={
            "origin": origin,
            "access-control-request-method": "POST",
            "access-control-request-headers": f"x-api-key, {BROWSER_HEADER}",
        },
    )


def from_origin(gateway: ServedGateway, body: dict[str, Any]) -> httpx.Response:
    return gateway.http().post("/v1/messages", json=body, headers={"origin": ORIGIN})


def test_cors_is_off_by_default(start_gateway: StartGateway) -> None:
    gateway = start_gateway()

    answer = gateway.http().post(
        "/v1/messages", json=request_body("local"), headers={"origin": ORIGIN}
    )

    assert preflight(gateway).status_code == 405
    assert "access-control-allow-origin" not in answer.headers


def test_an_allowed_origin_is_answered_with_cors_headers(start_gateway: StartGateway) -> None:
    gateway = start_gateway({"cors_origins": [ORIGIN]})

    checked = preflight(gateway)
    answer = gateway.http().post(
        "/v1/messages", json=request_body("local"), headers={"origin": ORIGIN}
    )
    error = from_origin(gateway, {"model": "local"})

    assert checked.status_code == 204
    assert checked.headers["access-control-allow-origin"] == ORIGIN
    assert "POST" in checked.headers["access-control-allow-methods"]
    assert (
        "anthropic-dangerous-direct-browser-access"
        in checked.headers["access-control-allow-headers"]
    )
    assert answer.headers["access-control-allow-origin"] == ORIGIN
    assert "request-id" in answer.headers["access-control-expose-headers"]
    assert error.status_code == 400 and error.headers["access-control-allow-origin"] == ORIGIN


def test_another_origin_gets_no_cors_headers(start_gateway: StartGateway) -> None:
    gateway = start_gateway({"cors_origins": [ORIGIN]})

    checked = preflight(gateway, "https://elsewhere.example")
    answer = gateway.http().post(
        "/v1/messages", json=request_body("local"), headers={"origin": "https://elsewhere.example"}
    )

    assert "access-control-allow-origin" not in checked.headers
    assert "access-control-allow-origin" not in answer.headers
    assert answer.status_code == 200  # CORS is the browser's check; the call itself is served
