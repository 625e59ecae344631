"""``redis://[[user]:password@]host:port/db`` (``rediss://`` for TLS): Redis or Valkey, through
``shared.store.resp``'s pipelined client (hiredis parses the replies), made when a redis URL is
chosen.

A value is a hash ``{v: value, n: version}``; a list is a Redis list. Compare-and-set,
append (with its expiry) and the two pairs (``create_and_read``, ``append_and_delete``) are
Lua scripts, so each is one atomic step on the server whatever other instances do. A broken
connection is replaced at once (a restarted server), and every call is bounded by the guard's
deadline, so a server that accepts and never answers is a 503, not a hang.
"""

from __future__ import annotations

from typing import Any

from shared.store import Entry
from shared.store.resp import RespClient, RespError

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

_PUSH = """
local kind = redis.call('TYPE', KEYS[1])['ok']
if kind ~= 'list' and kind ~= 'none' then redis.call('DEL', KEYS[1]) end
local length = redis.call('RPUSH', KEYS[1], ARGV[1])
local ttl = tonumber(ARGV[2])
if ttl > 0 then redis.call('PEXPIRE', KEYS[1], ttl) else redis.call('PERSIST', KEYS[1]) end
"""
"""Append ARGV[1] to the list KEYS[1] (replacing what else is there), its TTL ARGV[2] ms."""

APPEND = _PUSH + "return length\n"

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

APPEND_AND_DELETE = _PUSH + "redis.call('DEL', KEYS[2])\nreturn length\n"


def _ms(ttl_s: float | None) -> int:
    return 0 if ttl_s is None else max(1, round(ttl_s * 1000))


class RedisStore:
    backend = "redis"

    def __init__(self, url: str, timeout_s: float) -> None:
        self._client = RespClient(url, connect_timeout_s=timeout_s)

    async def get(self, key: str) -> Entry | None:
        try:
            fields: list[Any] = await self._client.call("HMGET", key, "v", "n")
        except RespError as exc:
            if str(exc).startswith("WRONGTYPE"):
                return None  # a list, not a value
            raise
        value, version = fields
        return None if value is None else Entry(bytes(value), int(version))

    async def put(
        self, key: str, value: bytes, *, ttl_s: float | None = None, version: int | None = None
    ) -> int | None:
        wanted = -1 if version is None else version
        written = await self._client.script(PUT, [key], [value, wanted, _ms(ttl_s)])
        return None if int(written) < 0 else int(written)

    async def append(self, key: str, item: bytes, *, ttl_s: float | None = None) -> int:
        return int(await self._client.script(APPEND, [key], [item, _ms(ttl_s)]))

    async def items(self, key: str) -> list[bytes]:
        try:
            listed: list[Any] = await self._client.call("LRANGE", key, 0, -1)
        except RespError as exc:
            if str(exc).startswith("WRONGTYPE"):
                return []
            raise
        return [bytes(item) for item in listed]

    async def delete(self, key: str) -> bool:
        return bool(await self._client.call("DEL", key))

    async def create_and_read(
        self, key: str, value: bytes, *, ttl_s: float | None, list_key: str
    ) -> list[bytes] | None:
        read = await self._client.script(CREATE_AND_READ, [key, list_key], [value, _ms(ttl_s)])
        return None if read is None else [bytes(item) for item in read]

    async def append_and_delete(
        self, key: str, item: bytes, *, ttl_s: float | None, delete_key: str
    ) -> int:
        keys = [key, delete_key]
        return int(await self._client.script(APPEND_AND_DELETE, keys, [item, _ms(ttl_s)]))

    async def aclose(self) -> None:
        await self._client.aclose()
