"""AWS credentials and SigV4 signing for calls made on the wire, not through an SDK client.

Used by the gateway's Bedrock provider and by ``shared.outbound_auth`` (IAM-protected Lambda
Function URLs). Credentials come from botocore's own chain (environment, profile, web identity,
container, instance metadata); signing is botocore's public ``SigV4Auth``. botocore is imported
only when a request is first signed: a function that never signs never pays for it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

from shared.errors import CredentialsRefused

if TYPE_CHECKING:
    from botocore.credentials import Credentials, ReadOnlyCredentials

CredentialResolver = Callable[[], "Credentials | None"]


def botocore_chain() -> Credentials | None:
    """botocore's default credential chain (it may block: run it on a thread)."""
    from botocore.session import Session

    return Session().get_credentials()


class AwsCredentials:
    """botocore's credential chain, resolved once and refreshed when near expiry.

    Both resolving (the chain may end in an instance-metadata probe) and refreshing (an STS or
    metadata call) block, so they run on a thread, one at a time; in between, signing reads a
    frozen snapshot without leaving the event loop. When the chain or a refresh fails, it is
    tried again at most every ``retry_s``, not once per request: a refresh that fails keeps
    the snapshot (botocore refreshes well before expiry, so it is still good), and a chain
    that found nothing refuses at once in the meantime.
    """

    def __init__(
        self,
        resolve: CredentialResolver | None = None,
        retry_s: float = 10.0,
        *,
        owner: str = "bedrock: the gateway",
    ) -> None:
        """``owner`` names who lacks credentials in an error (``bedrock: the gateway``)."""
        self._resolve = resolve or botocore_chain
        self._retry_s = retry_s
        self._owner = owner
        self._credentials: Credentials | None = None
        self._frozen: ReadOnlyCredentials | None = None
        self._retry_at = 0.0
        self._lock: tuple[asyncio.AbstractEventLoop, asyncio.Lock] | None = None

    async def frozen(self) -> ReadOnlyCredentials:
        if (current := self._current()) is not None:
            return current
        async with self._loop_lock():
            if (current := self._current()) is not None:
                return current  # another caller resolved or refreshed them meanwhile
            try:
                return await self._renew()
            finally:
                if self._frozen is None or refresh_due(self._credentials):
                    self._retry_at = time.monotonic() + self._retry_s

    def _current(self) -> ReadOnlyCredentials | None:
        if self._frozen is None:
            if time.monotonic() < self._retry_at:
                raise CredentialsRefused(f"{self._owner} has no usable AWS credentials")
            return None
        if time.monotonic() < self._retry_at or not refresh_due(self._credentials):
            return self._frozen
        return None

    async def _renew(self) -> ReadOnlyCredentials:
        try:
            if self._credentials is None:
                self._credentials = await asyncio.to_thread(self._resolve)
            if self._credentials is None:
                raise CredentialsRefused(f"{self._owner} has no usable AWS credentials")
            self._frozen = await asyncio.to_thread(self._credentials.get_frozen_credentials)
        except CredentialsRefused:
            raise
        except Exception as exc:  # botocore's many credential-provider errors
            if self._frozen is not None:
                return self._frozen
            raise CredentialsRefused(
                f"{self._owner}'s AWS credentials could not be obtained: {exc}"
            ) from exc
        return self._frozen

    def _loop_lock(self) -> asyncio.Lock:
        # A lock belongs to one event loop (tests run one loop per test).
        loop = asyncio.get_running_loop()
        if self._lock is None or self._lock[0] is not loop:
            self._lock = (loop, asyncio.Lock())
        return self._lock[1]


def refresh_due(credentials: Credentials | None) -> bool:
    from botocore.credentials import RefreshableCredentials

    return isinstance(credentials, RefreshableCredentials) and credentials.refresh_needed()


def sigv4_headers(
    credentials: ReadOnlyCredentials,
    service: str,
    region: str,
    method: str,
    url: str,
    body: bytes,
    headers: Mapping[str, str],
) -> dict[str, str]:
    """``headers`` plus SigV4's (``Authorization``, ``X-Amz-Date``, the session token when
    there is one), every header in ``headers`` signed. Give ``host`` as the client will send
    it, so that the signed host is the sent one."""
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest

    request = AWSRequest(method=method, url=url, data=body, headers=dict(headers))
    SigV4Auth(credentials, service, region).add_auth(request)
    return dict(request.headers.items())
