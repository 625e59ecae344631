"""A fake of Google's metadata server (Cloud Run, Cloud Functions, GCE): the identity endpoint.

It speaks the real wire: ``GET /computeMetadata/v1/instance/service-accounts/default/identity
?audience=AUD&format=full`` with ``Metadata-Flavor: Google`` answers a JWT as plain text (header,
claims, signature; the signature is random bytes: nobody here can check Google's). A request
without the header is refused with 403, one without an audience with 400, as the real server
does. ``clock`` (wall time) sets ``iat`` and ``exp`` (``lifetime_s`` later), so a test moves
time without sleeping; ``enqueue`` scripts faults (``Reply``, ``Disconnect``) as every fake.

    with FakeMetadata(clock=lambda: now) as metadata:
        environ = {"OUTBOUND_AUTH": "google", "GCE_METADATA_HOST": metadata.host}
"""

from __future__ import annotations

import base64
import json
import os
import threading
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs, urlsplit

from tests.fakes.server import MAX_DELAY_S, Exchange, FakeServer, RecordedRequest

IDENTITY_PATH = "/computeMetadata/v1/instance/service-accounts/default/identity"
SERVICE_ACCOUNT = "orchestrator@agentorch-test.iam.gserviceaccount.com"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def claims_of(token: str) -> dict[str, Any]:
    """A JWT's claims, unverified (what a test reads of a token the callee received)."""
    payload = token.split(".")[1]
    return dict(json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))))


class FakeMetadata(FakeServer):
    def __init__(self, *, clock: Callable[[], float] = time.time, lifetime_s: int = 3600) -> None:
        super().__init__()
        self.clock = clock
        self.lifetime_s = lifetime_s
        self.issued: list[str] = []
        """Every token given, in order."""
        self.gate: threading.Event | None = None
        """Set: each token waits for it (at most ``MAX_DELAY_S``), so that a test can gather
        callers while a fetch is under way."""

    @property
    def host(self) -> str:
        """``host:port``: what ``GCE_METADATA_HOST`` holds."""
        return self.url.removeprefix("http://")

    def identity_requests(self) -> list[RecordedRequest]:
        return [r for r in self.requests if r.route == IDENTITY_PATH]

    def answer(self, request: RecordedRequest, exchange: Exchange) -> None:
        headers = {"metadata-flavor": "Google", "content-type": "application/text"}
        if request.headers.get("metadata-flavor") != "Google":
            text = b"Missing required header: Metadata-Flavor: Google\n"
            exchange.send_json(403, text, {**headers, "content-type": "text/html"})
            return
        scripted = self.next_scripted()
        if scripted is not None:
            exchange.play(scripted)
            return
        if request.method != "GET" or request.route != IDENTITY_PATH:
            exchange.send_json(404, b"Not Found\n", headers)
            return
        query = parse_qs(urlsplit(request.path).query)
        audience = (query.get("audience") or [""])[0]
        if not audience:
            exchange.send_json(400, b"non-empty audience parameter required\n", headers)
            return
        if self.gate is not None:
            self.gate.wait(MAX_DELAY_S)
        token = self.token(audience, full=(query.get("format") or [""])[0] == "full")
        exchange.send_json(200, token.encode(), headers)

    def token(self, audience: str, *, full: bool = True) -> str:
        now = int(self.clock())
        claims: dict[str, Any] = {
            "aud": audience,
            "azp": "117010340213400000000",
            "exp": now + self.lifetime_s,
            "iat": now,
            "iss": "https://accounts.google.com",
            "sub": "117010340213400000000",
        }
        if full:
            claims |= {"email": SERVICE_ACCOUNT, "email_verified": True}
        header = {"alg": "RS256", "kid": "fake-key-1", "typ": "JWT"}
        token = ".".join(
            (
                _b64(json.dumps(header).encode()),
                _b64(json.dumps(claims).encode()),
                _b64(os.urandom(256)),
            )
        )
        self.issued.append(token)
        return token
