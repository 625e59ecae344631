"""The store every instance of a function shares: what must outlive one request or be seen by
another instance (run dedupe, sessions) lives here, never in a process.

``STORE_URL`` chooses the implementation (``open_store``):

=====================  ================================================================
``memory://``          this process's memory: tests, and one instance (the default)
``sqlite:///path``     a file: the embedded store (the emulator's ``.agentorch/state.db``,
                       a container's volume); every process on the machine shares it
``redis://host:port``  Redis or Valkey (``rediss://`` for TLS): what Memorystore and
                       ElastiCache provide; every instance of every function shares it
=====================  ================================================================

The seam is small on purpose: a value under a key with a version (``put`` compares and sets
on it), a time to live, and a list to append to; and two pairs of these done as one step
in one call (``create_and_read``, ``append_and_delete``): a session's task needs each pair, and
on a server a round trip less per pair is what keeps a busy instance's throughput
(bench/sessions.py). A store that fails or does not answer within
``STORE_TIMEOUT_S`` raises ``StoreUnavailable`` (503) — never a silent loss or a hang — and
its failures are counted (``agentorch_store_errors_total``) and shown in ``/health``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from shared.errors import ConfigError

if TYPE_CHECKING:
    from shared.store.guard import GuardedStore

__all__ = ["Entry", "Store", "open_store", "DEFAULT_URL", "DEFAULT_TIMEOUT_S"]

DEFAULT_URL = "memory://"
DEFAULT_TIMEOUT_S = 2.0
URL_VARIABLE = "STORE_URL"


@dataclass(frozen=True)
class Entry:
    """A value as stored, with the version ``put`` compares against."""

    value: bytes
    version: int
    """1 when first written, one more at each write."""


class Store(Protocol):
    backend: str
    """``memory``, ``sqlite`` or ``redis``: what ``/health`` and the metrics name."""

    async def get(self, key: str) -> Entry | None:
        """The value under ``key``, or None (never written, deleted or expired)."""
        ...

    async def put(
        self, key: str, value: bytes, *, ttl_s: float | None = None, version: int | None = None
    ) -> int | None:
        """Write ``value``, to expire after ``ttl_s`` (None: never). With ``version``, only
        if the key is at that version (0: only if it is absent): compare and set. Returns the
        new version, or None when the comparison failed and nothing was written."""
        ...

    async def append(self, key: str, item: bytes, *, ttl_s: float | None = None) -> int:
        """Add ``item`` at the end of the list under ``key``; the list (all of it) then
        expires after ``ttl_s``. Returns the list's length."""
        ...

    async def items(self, key: str) -> list[bytes]:
        """The list under ``key``, oldest first ([] when there is none)."""
        ...

    async def delete(self, key: str) -> bool:
        """Forget ``key`` (a value or a list); whether there was one."""
        ...

    async def create_and_read(
        self, key: str, value: bytes, *, ttl_s: float | None, list_key: str
    ) -> list[bytes] | None:
        """``put(key, value, ttl_s=ttl_s, version=0)`` and, when it wrote, ``items(list_key)``,
        in one call. None (nothing read) when ``key`` was there already."""
        ...

    async def append_and_delete(
        self, key: str, item: bytes, *, ttl_s: float | None, delete_key: str
    ) -> int:
        """``append(key, item, ttl_s=ttl_s)`` then ``delete(delete_key)``, in one call; the
        list's length."""
        ...

    async def aclose(self) -> None: ...


def open_store(url: str, *, timeout_s: float = DEFAULT_TIMEOUT_S) -> GuardedStore:
    """The store ``url`` names, each operation bounded by ``timeout_s``. Only the chosen
    backend's library is imported (redis only for ``redis://``)."""
    from shared.store.guard import GuardedStore

    scheme = url.partition("://")[0].lower()
    if scheme == "memory":
        from shared.store.memory import MemoryStore

        return GuardedStore(MemoryStore(), timeout_s)
    if scheme == "sqlite":
        from shared.store.sqlite_store import SqliteStore, sqlite_path

        return GuardedStore(SqliteStore(sqlite_path(url), timeout_s), timeout_s)
    if scheme in ("redis", "rediss"):
        from shared.store.redis_store import RedisStore

        return GuardedStore(RedisStore(url, timeout_s), timeout_s)
    raise ConfigError(
        f"${URL_VARIABLE}={_shown(url)!r}: unknown scheme {scheme!r}; use memory://, "
        "sqlite:///path or redis://host:port"
    )


def _shown(url: str) -> str:
    """``url`` without a password (``redis://:secret@host``) for a message."""
    scheme, sep, rest = url.partition("://")
    if "@" in rest:
        rest = "…@" + rest.rpartition("@")[2]
    return (scheme + sep + rest)[:80]
