"""``OUTBOUND_AUTH``: the caller's platform identity on each request, over the real wire.

Google ID tokens come from a fake metadata server that speaks the real protocol
(``tests.fakes.metadata_server``), and time is a clock the tests move; SigV4 signatures are
checked the way AWS checks them: recomputed with botocore from the request the callee received.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import re
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials, ReadOnlyCredentials

from shared.aio import AsyncHttp
from shared.aws import AwsCredentials
from shared.errors import ConfigError
from shared.outbound_auth import (
    MAX_KEPT_S,
    REFRESH_MARGIN_S,
    AwsSigV4,
    ForCallees,
    GoogleIdTokens,
    IdentityUnavailable,
    OutboundAuthSettings,
    jwt_expiry,
    platform_auth,
    region_of,
)
from shared.transport import Auth, Authenticated, Transport, outbound_transport
from shared.wire import WireClient
from tests.fakes.metadata_server import IDENTITY_PATH, FakeMetadata, claims_of
from tests.fakes.server import Exchange, FakeServer, RecordedRequest, Reply
from tests.served import refused_url

T0 = 1_900_000_000.0
KEY_ID, SECRET, SESSION = "AKIDEXAMPLE0TEST", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", "sess-tok"
REGION = "eu-west-3"


class Callee(FakeServer):
    """A private function: records each request, answers 200 ``{"ok": true}``."""

    def answer(self, request: RecordedRequest, exchange: Exchange) -> None:
        exchange.send_json(200, {"ok": True})


@dataclass
class Clock:
    now: float = T0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def metadata(clock: Clock) -> Iterator[FakeMetadata]:
    with FakeMetadata(clock=clock) as fake:
        yield fake
        if fake.gate is not None:
            fake.gate.set()


@pytest.fixture(scope="module")
def callee() -> Iterator[Callee]:
    with Callee() as fake:
        yield fake


def google(metadata: FakeMetadata, clock: Clock, *callees: str, timeout_s: float = 2.0) -> Auth:
    tokens = GoogleIdTokens(WireClient(), metadata.host, timeout_s=timeout_s, clock=clock)
    return ForCallees(tokens, callees)


async def post(auth: Auth, url: str, body: Any = None, transport: Transport | None = None) -> None:
    http = AsyncHttp(Authenticated(transport or WireClient(), auth))
    try:
        answer = await http.request_json("POST", url, body=body or {}, timeout_s=5)
        assert answer.status == 200
    finally:
        await http.close()


def bearer(request: RecordedRequest) -> str:
    scheme, _, token = request.headers["authorization"].partition(" ")
    assert scheme == "Bearer"
    return token


# -- Google ID tokens ------------------------------------------------------------------------


def test_the_callee_receives_an_id_token_for_its_own_origin(
    metadata: FakeMetadata, clock: Clock, callee: Callee
) -> None:
    before = len(callee.requests)
    asyncio.run(post(google(metadata, clock, callee.url), f"{callee.url}/v1/messages?x=1"))
    received = callee.requests[before]
    assert claims_of(bearer(received))["aud"] == callee.url  # the origin: what Cloud Run checks
    (asked,) = metadata.identity_requests()
    assert asked.method == "GET" and asked.headers["metadata-flavor"] == "Google"
    query = parse_qs(urlsplit(asked.path).query)
    assert query == {"audience": [callee.url], "format": ["full"]}


def test_a_token_is_kept_per_audience_until_a_margin_before_it_expires(
    metadata: FakeMetadata, clock: Clock, callee: Callee
) -> None:
    other = f"http://localhost:{urlsplit(callee.url).port}"  # another origin, the same server
    auth = google(metadata, clock, f"{callee.url}/", other)
    lifetime = metadata.lifetime_s

    async def calls() -> list[str]:
        before = len(callee.requests)
        await post(auth, f"{callee.url}/a")
        await post(auth, f"{callee.url}/b")  # kept
        await post(auth, f"{other}/a")  # another audience: its own token
        clock.now = T0 + lifetime - REFRESH_MARGIN_S - 1
        await post(auth, f"{callee.url}/c")  # still kept: more than the margin left
        clock.now = T0 + lifetime - REFRESH_MARGIN_S + 1
        await post(auth, f"{callee.url}/d")  # refreshed before it expires
        return [bearer(r) for r in callee.requests[before:]]

    sent = asyncio.run(calls())
    assert len(metadata.identity_requests()) == 3
    assert sent[0] == sent[1] == sent[3] != sent[4]
    audiences = [claims_of(token)["aud"] for token in sent]
    assert audiences == [callee.url, callee.url, other, callee.url, callee.url]
    assert claims_of(sent[4])["exp"] == T0 + lifetime - REFRESH_MARGIN_S + 1 + lifetime


def test_a_token_claiming_a_far_exp_is_kept_at_most_an_hour(
    metadata: FakeMetadata, clock: Clock
) -> None:
    metadata.lifetime_s = 10 * 365 * 86400  # a metadata server that claims ten years
    tokens = GoogleIdTokens(WireClient(), metadata.host, clock=clock)

    async def fetches() -> list[str]:
        first = await tokens.token("https://gw.a.run.app")
        clock.now = T0 + MAX_KEPT_S - REFRESH_MARGIN_S + 1
        return [first, await tokens.token("https://gw.a.run.app")]

    first, second = asyncio.run(fetches())
    assert first != second
    assert len(metadata.identity_requests()) == 2


def test_callers_that_need_a_token_at_once_share_one_fetch(
    metadata: FakeMetadata, clock: Clock
) -> None:
    metadata.gate = threading.Event()
    tokens = GoogleIdTokens(WireClient(), metadata.host, clock=clock)

    async def many() -> list[str]:
        waiting = [asyncio.create_task(tokens.token("https://gw.a.run.app")) for _ in range(20)]
        await asyncio.to_thread(metadata.wait_for_requests, 1)
        await asyncio.sleep(0)  # every task has run up to its wait on the one fetch
        assert metadata.gate is not None
        metadata.gate.set()
        try:
            return await asyncio.gather(*waiting)
        finally:
            await tokens.close()

    got = asyncio.run(many())
    assert len(set(got)) == 1 and len(metadata.identity_requests()) == 1


def test_a_caller_that_gives_up_does_not_cancel_the_fetch_others_wait_on(
    metadata: FakeMetadata, clock: Clock
) -> None:
    metadata.gate = threading.Event()
    tokens = GoogleIdTokens(WireClient(), metadata.host, clock=clock)

    async def one_cancelled() -> str:
        first = asyncio.create_task(tokens.token("https://gw.a.run.app"))
        second = asyncio.create_task(tokens.token("https://gw.a.run.app"))
        await asyncio.to_thread(metadata.wait_for_requests, 1)
        first.cancel()
        assert metadata.gate is not None
        metadata.gate.set()
        try:
            return await second
        finally:
            await tokens.close()

    assert claims_of(asyncio.run(one_cancelled()))["aud"] == "https://gw.a.run.app"


def test_a_metadata_server_that_is_down_fails_the_call_with_a_503_naming_it(
    clock: Clock, callee: Callee
) -> None:
    down = urlsplit(refused_url()).netloc
    tokens = GoogleIdTokens(WireClient(), down, timeout_s=2, clock=clock)
    with pytest.raises(IdentityUnavailable) as caught:
        asyncio.run(post(ForCallees(tokens, [callee.url]), callee.url))
    assert caught.value.status_code == 503
    assert f"no ID token for {callee.url}: the metadata server at {down} is unreachable" in str(
        caught.value
    )


def test_a_metadata_server_that_hangs_fails_within_its_timeout(
    metadata: FakeMetadata, clock: Clock
) -> None:
    metadata.gate = threading.Event()  # never set: no answer
    tokens = GoogleIdTokens(WireClient(), metadata.host, timeout_s=0.2, clock=clock)
    with pytest.raises(IdentityUnavailable, match=r"is unreachable: no answer within 0\.2 s"):
        asyncio.run(tokens.token("https://gw.a.run.app"))


@pytest.mark.parametrize(
    ("scripted", "says"),
    [
        (Reply(500, b"internal error"), "answered 500: internal error"),
        (Reply(200, b"not-a-jwt"), "answered something that is not a JWT with an exp"),
    ],
)
def test_a_metadata_server_that_fails_is_named_and_nothing_is_kept(
    metadata: FakeMetadata, clock: Clock, scripted: Reply, says: str
) -> None:
    metadata.enqueue(scripted)
    tokens = GoogleIdTokens(WireClient(), metadata.host, clock=clock)

    with pytest.raises(IdentityUnavailable, match=f"the metadata server at .* {says}"):
        asyncio.run(tokens.token("https://gw.a.run.app"))
    again = asyncio.run(tokens.token("https://gw.a.run.app"))  # the next call asks again
    assert claims_of(again)["aud"] == "https://gw.a.run.app"


def test_the_fake_metadata_server_refuses_a_request_without_its_header(
    metadata: FakeMetadata,
) -> None:
    url = f"{metadata.url}{IDENTITY_PATH}?audience=https://x"
    with pytest.raises(urllib.error.HTTPError, match="403"):
        urllib.request.urlopen(url, timeout=5)
    asked = urllib.request.Request(url, headers={"Metadata-Flavor": "Google"})
    with urllib.request.urlopen(asked, timeout=5) as answer:
        assert claims_of(answer.read().decode())["aud"] == "https://x"


def test_requests_to_other_callees_get_no_token(
    metadata: FakeMetadata, clock: Clock, callee: Callee
) -> None:
    before = len(callee.requests)
    auth = google(metadata, clock, "https://gateway.a.run.app", f"{callee.url}/wx")
    asyncio.run(post(auth, f"{callee.url}/wxyz"))
    asyncio.run(post(auth, f"{callee.url}/geo/schema"))
    assert not any("authorization" in r.headers for r in callee.requests[before:])
    assert not metadata.requests


def test_a_callee_covers_its_url_and_what_is_below_it() -> None:
    covered = ForCallees(GoogleIdTokens(WireClient()), ["HTTPS://Agents.Example/wx/", "http://g"])
    for url in ("https://agents.example/wx", "https://agents.example/wx/schema", "http://g/v1"):
        assert covered.covers(url), url
    for url in ("https://agents.example/wxyz", "https://agents.example/", "http://g2/"):
        assert not covered.covers(url), url


def test_jwt_expiry_reads_exp_and_refuses_what_is_not_a_jwt() -> None:
    assert jwt_expiry(FakeMetadata(clock=lambda: 100.0, lifetime_s=60).token("a")) == 160.0
    infinite = base64.urlsafe_b64encode(b'{"exp": Infinity}').decode().rstrip("=")
    for token in (
        "",
        "a.b",
        "a.!!!.c",
        "a.eyJ4IjoxfQ.c",
        "a.eyJleHAiOnRydWV9.c",
        f"a.{infinite}.c",
    ):
        assert jwt_expiry(token) is None
    good = FakeMetadata(clock=lambda: 100.0).token("a")
    for smuggled in (f"{good}\r\nx-evil: 1", f"x-evil: 1\r\n{good}", f"{good} tail"):
        assert jwt_expiry(smuggled) is None, smuggled  # a header value, sent as it is


def test_a_token_that_would_split_its_header_is_not_sent(
    metadata: FakeMetadata, clock: Clock
) -> None:
    good = metadata.token("https://gw.a.run.app")
    metadata.enqueue(Reply(200, f"{good}\r\nx-evil: 1".encode()))
    tokens = GoogleIdTokens(WireClient(), metadata.host, clock=clock)
    with pytest.raises(IdentityUnavailable, match="not a JWT with an exp"):
        asyncio.run(tokens.token("https://gw.a.run.app"))


# -- SigV4 for IAM Function URLs -------------------------------------------------------------


def static_credentials(token: str | None = SESSION) -> AwsCredentials:
    return AwsCredentials(lambda: Credentials(KEY_ID, SECRET, token), owner="the orchestrator")


def verify_sigv4(request: RecordedRequest, secret: str = SECRET) -> dict[str, str]:
    """Check ``request``'s signature as AWS would: recompute it with botocore from what was
    received (the signed headers, the method, path, query and body). Its parts, parsed."""
    match = re.fullmatch(
        r"AWS4-HMAC-SHA256 Credential=([^/]+)/(\d{8})/([^/]+)/([^/]+)/aws4_request, "
        r"SignedHeaders=([^,]+), Signature=([0-9a-f]{64})",
        request.headers["authorization"],
    )
    assert match, request.headers["authorization"]
    key_id, day, region, service, signed, signature = match.groups()
    assert hashlib.sha256(request.raw).hexdigest() == request.headers["x-amz-content-sha256"]
    headers = {name: request.headers[name] for name in signed.split(";")}
    url = f"http://{request.headers['host']}{request.path}"
    rebuilt = AWSRequest(method=request.method, url=url, data=request.raw, headers=headers)
    rebuilt.context["timestamp"] = request.headers["x-amz-date"]
    token = request.headers.get("x-amz-security-token")
    signer = SigV4Auth(ReadOnlyCredentials(key_id, secret, token), service, region)
    canonical = signer.canonical_request(rebuilt)
    expected = signer.signature(signer.string_to_sign(rebuilt, canonical), rebuilt)
    assert signature == expected, "the signature does not match the request received"
    assert day == request.headers["x-amz-date"][:8]
    return {"key_id": key_id, "region": region, "service": service, "signed": signed}


@pytest.mark.parametrize("kind", ["wire", "httpx"])
def test_the_callee_receives_a_sigv4_signature_that_verifies(callee: Callee, kind: str) -> None:
    before = len(callee.requests)
    auth = ForCallees(AwsSigV4(static_credentials(), "lambda", REGION), [callee.url])
    transport = outbound_transport({"OUTBOUND_TRANSPORT": kind})
    url = f"{callee.url}/run?b=2&a=1&c=x%20y"
    asyncio.run(post(auth, url, {"task": "héllo"}, transport))
    received = callee.requests[before]
    assert received.headers["x-amz-security-token"] == SESSION
    parts = verify_sigv4(received)
    assert parts == {
        "key_id": KEY_ID,
        "region": REGION,
        "service": "lambda",
        "signed": "host;x-amz-content-sha256;x-amz-date;x-amz-security-token",
    }


def test_a_signature_does_not_verify_for_another_body_or_secret(callee: Callee) -> None:
    before = len(callee.requests)
    auth = AwsSigV4(static_credentials(token=None), "lambda", REGION)
    asyncio.run(post(auth, f"{callee.url}/", {"n": 1}))
    received = callee.requests[before]
    assert "x-amz-security-token" not in received.headers
    verify_sigv4(received)
    with pytest.raises(AssertionError, match="does not match"):
        verify_sigv4(received, secret="another-secret")
    tampered = RecordedRequest(received.method, "/other", received.headers, received.raw, None)
    with pytest.raises(AssertionError, match="does not match"):
        verify_sigv4(tampered)


def test_credentials_come_from_the_environment_by_botocores_chain(
    callee: Callee, monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    for name, value in {
        "AWS_ACCESS_KEY_ID": "AKIDFROMTHEENV00",
        "AWS_SECRET_ACCESS_KEY": "secret-from-the-env",
        "AWS_SESSION_TOKEN": "token-from-the-env",
        "AWS_CONFIG_FILE": str(tmp_path / "none"),
        "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "none"),
    }.items():
        monkeypatch.setenv(name, value)
    settings = OutboundAuthSettings.load({"OUTBOUND_AUTH": "aws_sigv4", "AWS_REGION": REGION})
    auth = platform_auth(settings, [callee.url])
    assert auth is not None
    before = len(callee.requests)
    asyncio.run(post(auth, callee.url))
    received = callee.requests[before]
    assert verify_sigv4(received, "secret-from-the-env")["key_id"] == "AKIDFROMTHEENV00"
    assert received.headers["x-amz-security-token"] == "token-from-the-env"


def test_the_region_comes_from_a_function_url_else_aws_region() -> None:
    assert region_of("https://abc123.lambda-url.ap-southeast-2.on.aws/") == "ap-southeast-2"
    assert region_of("https://gateway.example.com/") is None
    signer = AwsSigV4(static_credentials(), region="us-west-2")
    assert signer.region_for("https://abc.lambda-url.eu-north-1.on.aws") == "eu-north-1"
    assert signer.region_for("https://gateway.example.com") == "us-west-2"


def test_a_callee_with_no_region_to_sign_for_stops_start_up() -> None:
    settings = OutboundAuthSettings.load({"OUTBOUND_AUTH": "aws_sigv4"})
    with pytest.raises(ConfigError, match="https://gateway.example.com names no AWS region"):
        platform_auth(
            settings, ["https://gateway.example.com/v1"], credentials=static_credentials()
        )


# -- settings --------------------------------------------------------------------------------


def test_the_settings_name_a_bad_mode_and_default_to_none() -> None:
    assert platform_auth(OutboundAuthSettings.load({}), ["http://a"]) is None
    with pytest.raises(ConfigError, match=r"\$OUTBOUND_AUTH='gcp'"):
        OutboundAuthSettings.load({"OUTBOUND_AUTH": "gcp"})
    google_settings = OutboundAuthSettings.load(
        {"OUTBOUND_AUTH": "google", "GCE_METADATA_HOST": "169.254.169.254"}
    )
    assert google_settings.metadata_host == "169.254.169.254"


class Static:
    """An ``Auth`` that adds the same headers to every request."""

    def __init__(self, **headers: str) -> None:
        self.added = headers

    async def headers(
        self, method: str, url: str, headers: Mapping[str, str], body: bytes
    ) -> Mapping[str, str]:
        return self.added

    async def close(self) -> None:
        pass


def test_auth_headers_replace_the_callers_of_the_same_name_whatever_its_case(
    callee: Callee,
) -> None:
    async def send() -> None:
        transport = Authenticated(WireClient(), Static(authorization="Bearer new"))
        try:
            answer = await transport.exchange(
                "GET", callee.url, {"Authorization": "Bearer old", "x-kept": "1"}
            )
            assert answer.status == 200
        finally:
            await transport.close()

    before = len(callee.requests)
    asyncio.run(send())
    received = callee.requests[before].headers
    assert received["authorization"] == "Bearer new" and received["x-kept"] == "1"
