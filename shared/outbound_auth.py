"""The caller's platform identity on its calls to private functions: ``OUTBOUND_AUTH``.

On Cloud Run and on Lambda the gateway and the agents can be private (only an authorised
identity may call them); the orchestrator then proves who it is on each call, with the identity
the platform gives it, and no key to keep:

- ``none`` (the default): nothing is added.
- ``google``: ``Authorization: Bearer <ID token>``, a Google-signed ID token whose audience is
  the callee's URL origin (``https://gateway-abc-uc.a.run.app``, what Cloud Run checks), from
  the metadata server: ``GET http://$GCE_METADATA_HOST/computeMetadata/v1/instance/
  service-accounts/default/identity?audience=AUD&format=full`` with ``Metadata-Flavor:
  Google`` (the host is ``metadata.google.internal`` unless ``GCE_METADATA_HOST`` says, as in
  Google's own libraries). A token is kept per audience and fetched again ``REFRESH_MARGIN_S``
  before the ``exp`` it carries (or an hour after it came, if sooner); callers that need one
  at once share one fetch. A metadata server that is down or slow fails the call with a 503
  naming it within ``OUTBOUND_AUTH_TIMEOUT_S``, never a hang; an answer that is not a bare
  JWT with a finite ``exp`` is a 503 too.
- ``aws_sigv4``: each request signed with SigV4 for an IAM-protected Lambda Function URL
  (service ``lambda``, or ``OUTBOUND_AUTH_AWS_SERVICE``; ``execute-api`` for API Gateway): the
  region from the URL (``<id>.lambda-url.<region>.on.aws``), else ``AWS_REGION``; the
  credentials from botocore's chain (on Lambda, the function role's, from the environment).
  Method, path, query, ``host``, ``x-amz-date`` and the body's hash (``x-amz-content-sha256``)
  are signed, and ``x-amz-security-token`` is sent when the credentials have a session token.

Which calls carry it is the caller's choice (``ForCallees``): the orchestrator signs its calls
to the gateway and to the agents that have no headers of their own (``AGENT_<NAME>_HEADERS``),
never its sink or an agent that authenticates its own way.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import math
import re
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Literal
from urllib.parse import quote, urlsplit

from pydantic import Field

from shared.aws import AwsCredentials, sigv4_headers
from shared.errors import ConfigError, ConnectTimeout, UpstreamUnavailable
from shared.settings import FunctionSettings
from shared.transport import FAILURES, Auth, Transport

DEFAULT_METADATA_HOST = "metadata.google.internal"
IDENTITY_PATH = "/computeMetadata/v1/instance/service-accounts/default/identity"
REFRESH_MARGIN_S = 300.0
"""A token is fetched again this long before its ``exp``: never sent about to expire."""
MAX_KEPT_S = 3600.0
"""The longest a token is kept, whatever ``exp`` it claims: Google's ID tokens last an hour,
and a metadata server that claims years (or ``Infinity``) must not pin one past it."""
_JWT = re.compile(r"[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*")
_FUNCTION_URL = re.compile(r"\.lambda-url\.([a-z0-9-]+)\.on\.aws$")


class OutboundAuthSettings(FunctionSettings):
    """How a function proves who it is to the functions it calls (see the module's doc)."""

    env = {
        "OUTBOUND_AUTH": "mode",
        "GCE_METADATA_HOST": "metadata_host",
        "OUTBOUND_AUTH_TIMEOUT_S": "timeout_s",
        "OUTBOUND_AUTH_AWS_SERVICE": "aws_service",
        "AWS_DEFAULT_REGION": "aws_region",
        "AWS_REGION": "aws_region",  # after AWS_DEFAULT_REGION: it wins, as in botocore
    }

    mode: Literal["none", "google", "aws_sigv4"] = "none"
    metadata_host: str = Field(default=DEFAULT_METADATA_HOST, min_length=1)
    """The metadata server's host (and port): ``GCE_METADATA_HOST``."""
    timeout_s: float = Field(default=5.0, gt=0)
    """How long a metadata server may take to give a token."""
    aws_service: str = Field(default="lambda", min_length=1)
    aws_region: str | None = None
    """For URLs that do not name their region (a custom domain)."""


class IdentityUnavailable(UpstreamUnavailable):
    """No identity to call with: the metadata server could not give an ID token."""


def origin_of(url: str) -> str:
    """``scheme://host[:port]`` of ``url``, lower-cased: a Cloud Run audience."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}".lower()


def region_of(url: str) -> str | None:
    """The region a Lambda Function URL names (``<id>.lambda-url.<region>.on.aws``)."""
    match = _FUNCTION_URL.search((urlsplit(url).hostname or "").lower())
    return match.group(1) if match else None


class ForCallees:
    """``auth`` on requests to ``callees`` (URLs: a request is theirs when its URL is one of
    them or below one, ``<callee>/schema``); other requests get nothing added."""

    def __init__(self, auth: Auth, callees: Iterable[str]) -> None:
        self._auth = auth
        self.callees = tuple(sorted({_normal(url) for url in callees}))

    def covers(self, url: str) -> bool:
        url = _normal(url)
        return any(url == c or url.startswith((f"{c}/", f"{c}?")) for c in self.callees)

    async def headers(
        self, method: str, url: str, headers: Mapping[str, str], body: bytes
    ) -> Mapping[str, str]:
        if not self.covers(url):
            return {}
        return await self._auth.headers(method, url, headers, body)

    async def close(self) -> None:
        await self._auth.close()


def _normal(url: str) -> str:
    """``url`` with its origin lower-cased and no trailing ``/``."""
    parts = urlsplit(url)
    rest = url[len(parts.scheme) + 3 + len(parts.netloc) :]
    return f"{origin_of(url)}{rest}".rstrip("/")


class GoogleIdTokens:
    """``Authorization: Bearer`` with an ID token for the callee's origin, from the metadata
    server at ``host`` over ``transport`` (its own: the metadata server is link-local, never
    behind a proxy). ``clock`` (wall time, as ``exp`` is) is injected so tests drive expiry."""

    def __init__(
        self,
        transport: Transport,
        host: str = DEFAULT_METADATA_HOST,
        *,
        timeout_s: float = 5.0,
        margin_s: float = REFRESH_MARGIN_S,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._transport = transport
        self._host = host
        self._timeout_s = timeout_s
        self._margin_s = margin_s
        self._clock = clock
        self._tokens: dict[str, tuple[str, float]] = {}
        """Audience -> its token and the time it expires."""
        self._fetching: dict[str, asyncio.Task[str]] = {}

    async def headers(
        self, method: str, url: str, headers: Mapping[str, str], body: bytes
    ) -> Mapping[str, str]:
        return {"authorization": f"Bearer {await self.token(origin_of(url))}"}

    async def token(self, audience: str) -> str:
        """A token for ``audience`` that is good for at least the margin: the kept one, else
        one fetched (by this caller, or by the caller already fetching it)."""
        kept = self._tokens.get(audience)
        if kept is not None and self._clock() < kept[1] - self._margin_s:
            return kept[0]
        task = self._fetching.get(audience)
        if task is None or task.get_loop() is not asyncio.get_running_loop():
            task = asyncio.get_running_loop().create_task(self._fetch(audience))
            self._fetching[audience] = task
            task.add_done_callback(lambda done: self._fetched(audience, done))
        # Shielded: a caller that gives up does not cancel the fetch the others wait on.
        return await asyncio.shield(task)

    async def close(self) -> None:
        await self._transport.close()

    def _fetched(self, audience: str, task: asyncio.Task[str]) -> None:
        if self._fetching.get(audience) is task:
            del self._fetching[audience]
        if not task.cancelled():
            task.exception()  # retrieved: every waiter may have given up on it

    async def _fetch(self, audience: str) -> str:
        url = f"http://{self._host}{IDENTITY_PATH}?audience={quote(audience, safe='')}&format=full"
        where = f"the metadata server at {self._host}"
        try:
            async with asyncio.timeout(self._timeout_s):
                answer = await self._transport.exchange(
                    "GET",
                    url,
                    {"metadata-flavor": "Google"},
                    connect_timeout_s=self._timeout_s,
                    limit=64 * 1024,
                )
        except FAILURES as exc:
            detail = f"no answer within {self._timeout_s:g} s" if _timed_out(exc) else str(exc)
            raise IdentityUnavailable(
                f"no ID token for {audience}: {where} is unreachable: {detail}"
            ) from exc
        if answer.status != 200:
            text = answer.body[:200].decode("utf-8", "replace")
            raise IdentityUnavailable(
                f"no ID token for {audience}: {where} answered {answer.status}: {text}"
            )
        token = answer.body.decode("ascii", "replace").strip()
        expires = jwt_expiry(token)
        if expires is None:
            raise IdentityUnavailable(
                f"no ID token for {audience}: {where} answered something that is not a JWT "
                "with an exp"
            )
        self._tokens[audience] = (token, min(expires, self._clock() + MAX_KEPT_S))
        return token


def jwt_expiry(token: str) -> float | None:
    """The ``exp`` (seconds since the epoch) of a JWT, unverified; None when it has none.
    The signature is the callee's to check: the caller only needs to know when to refresh."""
    if not _JWT.fullmatch(token):  # a header value: nothing but base64url and two dots
        return None
    parts = token.split(".")
    try:
        claims = json.loads(base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4)))
    except (ValueError, UnicodeDecodeError):
        return None
    exp = claims.get("exp") if isinstance(claims, dict) else None
    if isinstance(exp, bool) or not isinstance(exp, int | float) or not math.isfinite(exp):
        return None
    return float(exp)


def _timed_out(error: BaseException) -> bool:
    return isinstance(error, TimeoutError | ConnectTimeout)


class AwsSigV4:
    """Each request signed with SigV4 for ``service`` (``lambda``: an IAM Function URL)."""

    def __init__(
        self,
        credentials: AwsCredentials,
        service: str = "lambda",
        region: str | None = None,
    ) -> None:
        """``region``: for URLs that do not name theirs."""
        self._credentials = credentials
        self._service = service
        self._region = region

    def region_for(self, url: str) -> str:
        region = region_of(url) or self._region
        if region is None:
            raise ConfigError(f"{origin_of(url)} names no AWS region: set AWS_REGION")
        return region

    async def headers(
        self, method: str, url: str, headers: Mapping[str, str], body: bytes
    ) -> Mapping[str, str]:
        frozen = await self._credentials.frozen()
        signed = {
            "host": urlsplit(url).netloc,  # as the transport writes it: the signed one is sent
            "x-amz-content-sha256": hashlib.sha256(body).hexdigest(),
        }
        added = sigv4_headers(
            frozen, self._service, self.region_for(url), method, url, body, signed
        )
        return {k.lower(): v for k, v in added.items() if k.lower() != "host"}

    async def close(self) -> None:
        pass


def platform_auth(
    settings: OutboundAuthSettings,
    callees: Iterable[str],
    *,
    transport: Transport | None = None,
    credentials: AwsCredentials | None = None,
    who: str = "the orchestrator",
) -> Auth | None:
    """The identity ``settings`` ask for, on calls to ``callees`` (URLs) and below them;
        None for ``none``. ``transport`` (google: to the metadata server; default a wire client of
        its own) and ``credentials`` (aws_sigv4: default botocore's chain) are for tests; ``who``
    names the caller in errors. A callee
        with no region to sign for stops start-up here, not at its first call."""
    callees = list(callees)
    auth: Auth
    if settings.mode == "google":
        if transport is None:
            from shared.wire import WireClient

            transport = WireClient(limit=8)
        auth = GoogleIdTokens(transport, settings.metadata_host, timeout_s=settings.timeout_s)
    elif settings.mode == "aws_sigv4":
        credentials = credentials or AwsCredentials(owner=who)
        signer = AwsSigV4(credentials, settings.aws_service, settings.aws_region)
        for url in callees:
            signer.region_for(url)
        auth = signer
    else:
        return None
    return ForCallees(auth, callees)
