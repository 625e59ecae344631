"""``memory://``: the store in this process's memory (tests; one instance alone). Bounded in
keys and in bytes (what values and lists hold): past ``max_keys`` or ``max_bytes`` the expired
go first, then the oldest written, down to nine tenths of the bound (so that the sweep, which
looks at every key, runs once per many writes). Without the bytes bound, a client's runs (each
one's steps kept a day) could take the instance's memory within the bound in keys."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from shared.store import Entry

DEFAULT_MAX_KEYS = 100_000
DEFAULT_MAX_BYTES = 256 * 1024 * 1024


@dataclass
class _Held:
    value: bytes | list[bytes]
    version: int
    expires_at: float | None
    size: int = 0
    """What ``value`` holds, in bytes."""

    def expired(self, now: float) -> bool:
        return self.expires_at is not None and self.expires_at <= now


@dataclass
class MemoryStore:
    max_keys: int = DEFAULT_MAX_KEYS
    max_bytes: int = DEFAULT_MAX_BYTES
    clock: Callable[[], float] = time.monotonic
    backend: str = "memory"
    _held: dict[str, _Held] = field(default_factory=dict)
    """Oldest written first: a write moves its key to the end."""
    _bytes: int = 0

    def held_bytes(self) -> int:
        return self._bytes

    async def get(self, key: str) -> Entry | None:
        held = self._live(key)
        if held is None or isinstance(held.value, list):
            return None
        return Entry(held.value, held.version)

    async def put(
        self, key: str, value: bytes, *, ttl_s: float | None = None, version: int | None = None
    ) -> int | None:
        held = self._live(key)
        current = 0 if held is None or isinstance(held.value, list) else held.version
        if version is not None and version != current:
            return None
        kept = bytes(value)
        self._write(key, _Held(kept, current + 1, self._expiry(ttl_s), len(kept)))
        return current + 1

    async def append(self, key: str, item: bytes, *, ttl_s: float | None = None) -> int:
        held = self._live(key)
        listed = held is not None and isinstance(held.value, list)
        items = held.value if held is not None and isinstance(held.value, list) else []
        items.append(bytes(item))
        size = (held.size if held is not None and listed else 0) + len(item)
        self._write(key, _Held(items, len(items), self._expiry(ttl_s), size))
        return len(items)

    async def items(self, key: str) -> list[bytes]:
        held = self._live(key)
        return list(held.value) if held is not None and isinstance(held.value, list) else []

    async def delete(self, key: str) -> bool:
        return self._live(key) is not None and self._drop(key)

    async def create_and_read(
        self, key: str, value: bytes, *, ttl_s: float | None, list_key: str
    ) -> list[bytes] | None:
        if await self.put(key, value, ttl_s=ttl_s, version=0) is None:
            return None
        return await self.items(list_key)

    async def append_and_delete(
        self, key: str, item: bytes, *, ttl_s: float | None, delete_key: str
    ) -> int:
        length = await self.append(key, item, ttl_s=ttl_s)
        await self.delete(delete_key)
        return length

    async def aclose(self) -> None:
        self._held.clear()
        self._bytes = 0

    def _live(self, key: str) -> _Held | None:
        held = self._held.get(key)
        if held is not None and held.expired(self.clock()):
            self._drop(key)
            return None
        return held

    def _expiry(self, ttl_s: float | None) -> float | None:
        return None if ttl_s is None else self.clock() + ttl_s

    def _write(self, key: str, held: _Held) -> None:
        self._drop(key)
        self._held[key] = held
        self._bytes += held.size
        if len(self._held) > self.max_keys or self._bytes > self.max_bytes:
            now = self.clock()
            for stale in [k for k, h in self._held.items() if h.expired(now)]:
                self._drop(stale)
            while self._held and (
                len(self._held) > self.max_keys * 9 // 10 or self._bytes > self.max_bytes * 9 // 10
            ):
                self._drop(next(iter(self._held)))

    def _drop(self, key: str) -> bool:
        held = self._held.pop(key, None)
        if held is None:
            return False
        self._bytes -= held.size
        return True
