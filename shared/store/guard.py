"""What every store is wrapped in: each operation bounded in time, every failure turned into
``StoreUnavailable`` (503), counted in ``/metrics`` and kept for ``/health``."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from shared.errors import StoreUnavailable
from shared.logs import get_logger
from shared.metrics import Counter
from shared.store import Entry, Store

T = TypeVar("T")

STORE_ERRORS = Counter(
    "agentorch_store_errors_total",
    "Store operations that failed or timed out, by backend, operation and kind.",
    ["backend", "operation", "kind"],
)

log = get_logger("store")


class GuardedStore:
    """``inner`` with a deadline on each operation and one error for all its failures."""

    def __init__(
        self, inner: Store, timeout_s: float, *, clock: Callable[[], float] = time.time
    ) -> None:
        self.inner = inner
        self.backend = inner.backend
        self.timeout_s = timeout_s
        self._clock = clock
        self.failures = 0
        self.last_error: str | None = None
        self.last_error_at: float | None = None
        self.last_ok_at: float | None = None

    async def get(self, key: str) -> Entry | None:
        return await self._guarded("get", lambda: self.inner.get(key))

    async def put(
        self, key: str, value: bytes, *, ttl_s: float | None = None, version: int | None = None
    ) -> int | None:
        return await self._guarded(
            "put", lambda: self.inner.put(key, value, ttl_s=ttl_s, version=version)
        )

    async def append(self, key: str, item: bytes, *, ttl_s: float | None = None) -> int:
        return await self._guarded("append", lambda: self.inner.append(key, item, ttl_s=ttl_s))

    async def items(self, key: str) -> list[bytes]:
        return await self._guarded("items", lambda: self.inner.items(key))

    async def delete(self, key: str) -> bool:
        return await self._guarded("delete", lambda: self.inner.delete(key))

    async def create_and_read(
        self, key: str, value: bytes, *, ttl_s: float | None, list_key: str
    ) -> list[bytes] | None:
        return await self._guarded(
            "create_and_read",
            lambda: self.inner.create_and_read(key, value, ttl_s=ttl_s, list_key=list_key),
        )

    async def append_and_delete(
        self, key: str, item: bytes, *, ttl_s: float | None, delete_key: str
    ) -> int:
        return await self._guarded(
            "append_and_delete",
            lambda: self.inner.append_and_delete(key, item, ttl_s=ttl_s, delete_key=delete_key),
        )

    async def aclose(self) -> None:
        try:
            async with asyncio.timeout(self.timeout_s):
                await self.inner.aclose()
        except Exception:  # closing must not fail a shutdown
            log.warning("store did not close cleanly", extra={"backend": self.backend})

    def health(self) -> dict[str, Any]:
        """For ``/health``: whether the last operation worked, and the last failure."""
        ok = self.last_error_at is None or (self.last_ok_at or 0) > self.last_error_at
        return {
            "backend": self.backend,
            "ok": ok,
            "failures": self.failures,
            "last_error": self.last_error,
        }

    async def _guarded(self, operation: str, call: Callable[[], Awaitable[T]]) -> T:
        try:
            async with asyncio.timeout(self.timeout_s):
                value = await call()
        except TimeoutError:
            raise self._failed(operation, "timeout", f"no answer in {self.timeout_s:g} s") from None
        except StoreUnavailable as exc:
            raise self._failed(operation, "error", exc.message) from exc
        except Exception as exc:  # any backend failure: refused, reset, locked, full...
            raise self._failed(operation, "error", f"{type(exc).__name__}: {exc}") from exc
        self.last_ok_at = self._clock()
        return value

    def _failed(self, operation: str, kind: str, reason: str) -> StoreUnavailable:
        self.failures += 1
        self.last_error = f"{operation}: {reason}"[:300]
        self.last_error_at = self._clock()
        STORE_ERRORS.labels(self.backend, operation, kind).inc()
        log.warning(
            "store operation failed",
            extra={"backend": self.backend, "operation": operation, "reason": self.last_error},
        )
        return StoreUnavailable(f"the {self.backend} store is unavailable: {self.last_error}")
