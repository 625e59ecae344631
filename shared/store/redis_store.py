"""``redis://host:port/db`` (``rediss://`` for TLS): Redis or Valkey, through the ``redis``
package's asyncio client, imported only when a redis URL is chosen (at start-up then: see
``RedisStore.__init__``).

A value is a hash ``{v: value, n: version}``; a list is a Redis list. Compare-and-set,
append (with its expiry) and the two pairs (``create_and_read``, ``append_and_delete``) are
Lua scripts, so each is one atomic step on the server whatever
other instances do. At most ``MAX_CONNECTIONS`` calls at once, each on a pooled connection;
a broken one is replaced once at once (a restarted server), and every call is bounded by
``timeout_s`` (socket timeouts here, the guard's deadline over all), so a server that accepts
and never answers is a 503, not a hang.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from shared.store import Entry

if TYPE_CHECKING:
    import redis.asyncio

MAX_CONNECTIONS = 64

PUT = """
local kind = redis.call('TYPE', KEYS[1])['ok']
local current = 0
if kind == 'hash' then current = tonumber(redis.call('HGET', KEYS[1], 'n')) or 0 end
local wanted = tonumber(ARGV[2])
if wanted >= 0 and wanted ~= current then return -1 end
if kind ~= 'hash' and kind ~= 'none' then redis.call('DEL', KEYS[1]) end
redis.call('HSET', KEYS[1], 'v', ARGV[1], 'n', current + 1)
local ttl = tonumber(ARGV[3])
if ttl > 0 then redis.call('PEXPIRE', KEYS[1], ttl) else redis.call('PERSIST', KEYS[1]) end
return current + 1
"""

APPEND = """
local kind = redis.call('TYPE', KEYS[1])['ok']
if kind ~= 'list' and kind ~= 'none' then redis.call('DEL', KEYS[1]) end
local length = redis.call('RPUSH', KEYS[1], ARGV[1])
local ttl = tonumber(ARGV[2])
if ttl > 0 then redis.call('PEXPIRE', KEYS[1], ttl) else redis.call('PERSIST', KEYS[1]) end
return length
"""

CREATE_AND_READ = """
local kind = redis.call('TYPE', KEYS[1])['ok']
if kind == 'hash' then return false end
if kind ~= 'none' then redis.call('DEL', KEYS[1]) end
redis.call('HSET', KEYS[1], 'v', ARGV[1], 'n', 1)
local ttl = tonumber(ARGV[2])
if ttl > 0 then redis.call('PEXPIRE', KEYS[1], ttl) end
if redis.call('TYPE', KEYS[2])['ok'] ~= 'list' then return {} end
return redis.call('LRANGE', KEYS[2], 0, -1)
"""

APPEND_AND_DELETE = """
local kind = redis.call('TYPE', KEYS[1])['ok']
if kind ~= 'list' and kind ~= 'none' then redis.call('DEL', KEYS[1]) end
local length = redis.call('RPUSH', KEYS[1], ARGV[1])
local ttl = tonumber(ARGV[2])
if ttl > 0 then redis.call('PEXPIRE', KEYS[1], ttl) else redis.call('PERSIST', KEYS[1]) end
redis.call('DEL', KEYS[2])
return length
"""


def _ms(ttl_s: float | None) -> int:
    return 0 if ttl_s is None else max(1, round(ttl_s * 1000))


class RedisStore:
    backend = "redis"

    def __init__(self, url: str, timeout_s: float) -> None:
        # Imported now, not on the first call: under load its import took longer than a
        # call's deadline, and the first call failed. Only a redis:// store imports it.
        import redis.asyncio  # noqa: F401

        self._url = url
        self._timeout_s = timeout_s
        self._client: redis.asyncio.Redis | None = None
        self._scripts: dict[str, Any] = {}
        self._slots = asyncio.Semaphore(MAX_CONNECTIONS)
        """Calls at once, one per pooled connection. A call waits here for its turn (first
        come, first served, within the guard's deadline), so the pool never refuses one:
        redis-py's own blocking pool wakes its waiters through a condition whose lock every
        one of them takes again, which under 1,000 tasks at once left some waiting past any
        deadline (bench/sessions.py)."""

    def client(self) -> redis.asyncio.Redis:
        """Made on first use, in the running loop (nothing connects before a request)."""
        if self._client is None:
            import redis.asyncio
            from redis.asyncio.retry import Retry
            from redis.backoff import NoBackoff

            pool = redis.asyncio.ConnectionPool.from_url(
                self._url,
                max_connections=MAX_CONNECTIONS,
                socket_timeout=self._timeout_s,
                socket_connect_timeout=self._timeout_s,
                retry=Retry(NoBackoff(), 1),
            )
            self._client = redis.asyncio.Redis(connection_pool=pool)
            self._scripts = {
                "put": self._client.register_script(PUT),
                "append": self._client.register_script(APPEND),
                "create_and_read": self._client.register_script(CREATE_AND_READ),
                "append_and_delete": self._client.register_script(APPEND_AND_DELETE),
            }
        return self._client

    async def get(self, key: str) -> Entry | None:
        from redis.exceptions import ResponseError

        try:
            async with self._slots:
                fields: list[Any] = await self.client().hmget(key, ["v", "n"])
        except ResponseError as exc:
            if str(exc).startswith("WRONGTYPE"):
                return None  # a list, not a value
            raise
        value, version = fields
        return None if value is None else Entry(bytes(value), int(version))

    async def put(
        self, key: str, value: bytes, *, ttl_s: float | None = None, version: int | None = None
    ) -> int | None:
        self.client()
        wanted = -1 if version is None else version
        async with self._slots:
            written = await self._scripts["put"](keys=[key], args=[value, wanted, _ms(ttl_s)])
        return None if int(written) < 0 else int(written)

    async def append(self, key: str, item: bytes, *, ttl_s: float | None = None) -> int:
        self.client()
        async with self._slots:
            return int(await self._scripts["append"](keys=[key], args=[item, _ms(ttl_s)]))

    async def items(self, key: str) -> list[bytes]:
        from redis.exceptions import ResponseError

        try:
            async with self._slots:
                listed: list[Any] = await self.client().lrange(key, 0, -1)
        except ResponseError as exc:
            if str(exc).startswith("WRONGTYPE"):
                return []
            raise
        return [bytes(item) for item in listed]

    async def delete(self, key: str) -> bool:
        async with self._slots:
            return bool(await self.client().delete(key))

    async def create_and_read(
        self, key: str, value: bytes, *, ttl_s: float | None, list_key: str
    ) -> list[bytes] | None:
        self.client()
        async with self._slots:
            read = await self._scripts["create_and_read"](
                keys=[key, list_key], args=[value, _ms(ttl_s)]
            )
        return None if read is None else [bytes(item) for item in read]

    async def append_and_delete(
        self, key: str, item: bytes, *, ttl_s: float | None, delete_key: str
    ) -> int:
        self.client()
        async with self._slots:
            script = self._scripts["append_and_delete"]
            return int(await script(keys=[key, delete_key], args=[item, _ms(ttl_s)]))

    async def aclose(self) -> None:
        if self._client is not None:
            client, self._client = self._client, None
            await client.aclose(close_connection_pool=True)
