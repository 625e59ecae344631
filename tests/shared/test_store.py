"""One contract for every store (``shared.store``): memory, SQLite and a real Redis; then what
only a server can do to us: restart under us, or accept and never answer."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path

import pytest

from shared import metrics
from shared.errors import ConfigError, StoreUnavailable
from shared.store import Store, open_store
from shared.store.guard import GuardedStore
from tests.fakes.redis_server import RedisServer, SilentServer, redis_server

pytestmark = [pytest.mark.anyio, pytest.mark.processes]  # redis-server

SHORT_TTL_S = 0.05


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="module")
def redis() -> Iterator[RedisServer]:
    with redis_server() as server:
        yield server


@pytest.fixture(params=["memory", "sqlite", "redis"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    if request.param == "memory":
        url = "memory://"
    elif request.param == "sqlite":
        url = f"sqlite:///{tmp_path}/state.db"
    else:
        url = request.getfixturevalue("redis").url
    opened = open_store(url, timeout_s=2)
    yield opened
    if request.param == "redis":  # one server for the module: leave it empty
        for key in ("k", "list", "counter", "other"):
            await opened.delete(key)
    await opened.aclose()


async def eventually(check: Callable[[], Awaitable[bool]], timeout_s: float = 5) -> None:
    deadline = time.monotonic() + timeout_s
    while not await check():
        assert time.monotonic() < deadline, "not within the deadline"
        await asyncio.sleep(0.01)


# ---- the contract ---------------------------------------------------------------------------


async def test_a_value_is_read_back_with_its_version(store: Store) -> None:
    assert await store.get("k") is None
    assert await store.put("k", b"\x00one\xff") == 1
    entry = await store.get("k")
    assert entry is not None and (entry.value, entry.version) == (b"\x00one\xff", 1)
    assert await store.put("k", b"two") == 2


async def test_put_compares_and_sets_on_the_version(store: Store) -> None:
    assert await store.put("k", b"a", version=1) is None  # absent: it is at version 0
    assert await store.put("k", b"a", version=0) == 1
    assert await store.put("k", b"b", version=0) is None  # present now
    assert await store.put("k", b"b", version=1) == 2
    assert await store.put("k", b"c", version=1) is None  # stale
    entry = await store.get("k")
    assert entry is not None and entry.value == b"b"


async def test_one_of_many_creators_wins(store: Store) -> None:
    won = await asyncio.gather(*(store.put("k", str(i).encode(), version=0) for i in range(10)))
    assert sorted(won, key=str) == [1] + [None] * 9


async def test_compare_and_set_loses_no_increment(store: Store) -> None:
    async def increment() -> None:
        while True:
            entry = await store.get("counter")
            count, version = (int(entry.value), entry.version) if entry else (0, 0)
            if await store.put("counter", str(count + 1).encode(), version=version):
                return

    await asyncio.gather(*(increment() for _ in range(20)))
    entry = await store.get("counter")
    assert entry is not None and entry.value == b"20"


async def test_a_value_expires_after_its_ttl(store: Store) -> None:
    await store.put("k", b"brief", ttl_s=SHORT_TTL_S)
    await store.put("other", b"kept", ttl_s=60)
    await eventually(lambda: _absent(store, "k"))
    assert await store.put("k", b"again", version=0) == 1  # expired is absent: versions restart
    kept = await store.get("other")
    assert kept is not None and kept.value == b"kept"


async def test_a_put_without_ttl_keeps_the_value(store: Store) -> None:
    await store.put("k", b"brief", ttl_s=SHORT_TTL_S)
    await store.put("k", b"lasting")
    await store.put("other", b"x", ttl_s=SHORT_TTL_S)
    await eventually(lambda: _absent(store, "other"))
    assert await store.get("k") is not None


async def test_a_list_is_appended_to_in_order(store: Store) -> None:
    assert await store.items("list") == []
    for index in range(5):
        assert await store.append("list", f"item {index}".encode(), ttl_s=60) == index + 1
    assert await store.items("list") == [f"item {i}".encode() for i in range(5)]
    assert await store.get("list") is None  # a list is not a value


async def test_a_list_expires_whole_and_starts_again(store: Store) -> None:
    await store.append("list", b"old", ttl_s=SHORT_TTL_S)
    await eventually(lambda: _empty(store, "list"))
    assert await store.append("list", b"new") == 1
    assert await store.items("list") == [b"new"]


async def test_concurrent_appends_keep_every_item(store: Store) -> None:
    await asyncio.gather(*(store.append("list", str(i).encode()) for i in range(30)))
    assert sorted(int(item) for item in await store.items("list")) == list(range(30))


async def test_delete_forgets_values_and_lists(store: Store) -> None:
    await store.put("k", b"v")
    await store.append("list", b"i")
    assert await store.delete("k") is True
    assert await store.delete("list") is True
    assert await store.delete("k") is False
    assert await store.get("k") is None and await store.items("list") == []


async def test_a_put_replaces_a_list_and_an_append_a_value(store: Store) -> None:
    await store.append("list", b"i")
    assert await store.put("list", b"v") == 1
    assert await store.append("list", b"j") == 1
    assert await store.items("list") == [b"j"]


async def test_create_and_read_creates_only_once_and_reads_the_list(store: Store) -> None:
    assert await store.create_and_read("k", b"mine", ttl_s=60, list_key="list") == []
    assert await store.create_and_read("k", b"theirs", ttl_s=60, list_key="list") is None
    entry = await store.get("k")
    assert entry is not None and (entry.value, entry.version) == (b"mine", 1)
    await store.delete("k")
    await store.append("list", b"a")
    await store.append("list", b"b")
    assert await store.create_and_read("k", b"next", ttl_s=60, list_key="list") == [b"a", b"b"]


async def test_create_and_read_waits_out_an_expired_key(store: Store) -> None:
    await store.create_and_read("k", b"lease", ttl_s=SHORT_TTL_S, list_key="list")
    await eventually(lambda: _absent(store, "k"))
    assert await store.create_and_read("k", b"again", ttl_s=None, list_key="list") == []


async def test_append_and_delete_keeps_the_item_and_forgets_the_other(store: Store) -> None:
    await store.put("k", b"lease")
    await store.append("list", b"a")
    assert await store.append_and_delete("list", b"b", ttl_s=60, delete_key="k") == 2
    assert await store.items("list") == [b"a", b"b"]
    assert await store.get("k") is None
    assert await store.append_and_delete("list", b"c", ttl_s=None, delete_key="k") == 3


async def _absent(store: Store, key: str) -> bool:
    return await store.get(key) is None


async def _empty(store: Store, key: str) -> bool:
    return await store.items(key) == []


# ---- each backend's own ---------------------------------------------------------------------


def test_an_unknown_url_is_refused_naming_the_variable_without_its_password() -> None:
    with pytest.raises(ConfigError, match=r"STORE_URL.*unknown scheme 'mongodb'") as caught:
        open_store("mongodb://user:secret@db:27017")
    assert "secret" not in caught.value.message
    with pytest.raises(ConfigError, match="name the file"):
        open_store("sqlite://")


async def test_sqlite_is_shared_by_every_store_on_the_file(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/nested/state.db"
    first, second = open_store(url), open_store(url)
    try:
        assert await first.put("k", b"mine", version=0) == 1
        assert await second.put("k", b"yours", version=0) is None
        await second.append("list", b"from the second")
        assert await first.items("list") == [b"from the second"]
    finally:
        await first.aclose()
        await second.aclose()


async def test_redis_restarted_mid_run_is_unavailable_then_serves_again(
    redis: RedisServer,
) -> None:
    store = open_store(redis.url, timeout_s=2)
    assert isinstance(store, GuardedStore)
    try:
        await store.put("k", b"before")
        redis.stop()
        with pytest.raises(StoreUnavailable, match="redis store is unavailable"):
            await store.get("k")
        assert store.health()["ok"] is False and store.health()["failures"] == 1
        payload, _ = metrics.render()
        assert b'agentorch_store_errors_total{backend="redis",kind="error",operation="get"}' in (
            payload
        )
        redis.start()
        assert await store.put("k", b"after") == 1  # in memory only: the restart lost "before"
        entry = await store.get("k")
        assert entry is not None and entry.value == b"after"
        assert store.health()["ok"] is True
    finally:
        await store.delete("k")
        await store.aclose()


async def test_redis_restarted_between_calls_is_invisible(redis: RedisServer) -> None:
    store = open_store(redis.url, timeout_s=2)
    try:
        await store.put("k", b"v")  # a pooled connection, broken by the restart
        redis.restart()
        assert await store.put("k", b"w", version=0) == 1  # reconnected at once, script reloaded
    finally:
        await store.delete("k")
        await store.aclose()


async def test_a_store_that_never_answers_is_unavailable_within_its_timeout() -> None:
    silent = SilentServer()
    store = open_store(silent.url, timeout_s=0.2)
    try:
        started = time.monotonic()
        for operation in (store.get("k"), store.put("k", b"v"), store.append("l", b"i")):
            with pytest.raises(StoreUnavailable, match="no answer in 0.2 s"):
                await operation
        assert time.monotonic() - started < 5  # bounded, not a hang (generously)
    finally:
        await store.aclose()
        silent.close()


def test_the_emulators_store_is_a_file_in_its_state_folder(tmp_path: Path) -> None:
    from emulator.state import StateFolder
    from shared.store.sqlite_store import sqlite_path

    assert sqlite_path(StateFolder(tmp_path).store_url) == tmp_path.resolve() / "state.db"
    assert sqlite_path("sqlite:///./here.db") == Path("./here.db")


async def test_redis_takes_its_password_and_database_from_the_url(redis: RedisServer) -> None:
    from shared.store.resp import RespClient

    admin = RespClient(redis.url, connect_timeout_s=2)
    await admin.call("CONFIG", "SET", "requirepass", "s3cret:/@")
    url = redis.url.replace("://", "://default:s3cret%3A%2F%40@").removesuffix("/0") + "/2"
    store, other = open_store(url, timeout_s=2), open_store(url.removesuffix("/2"), timeout_s=2)
    stranger = open_store(redis.url, timeout_s=2)
    try:
        assert await store.put("k", b"in db 2") == 1
        assert await other.get("k") is None  # db 0: not there
        with pytest.raises(StoreUnavailable, match="NOAUTH"):
            await stranger.get("k")
    finally:
        await store.delete("k")
        await admin.call("CONFIG", "SET", "requirepass", "")
        for opened in (store, other, stranger):
            await opened.aclose()
        await admin.aclose()


async def test_a_reply_that_came_too_late_is_dropped_in_its_place(redis: RedisServer) -> None:
    # One pipelined connection: the reply of a call its caller gave up on still arrives, and
    # must not be taken for the next call's.
    from shared.store.resp import RespClient

    client = RespClient(redis.url, connect_timeout_s=2)
    try:
        await client.call("SET", "k", "mine")
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.05):
                await client.call("BLPOP", "list", "0.2")  # the server answers nil in 0.2 s
        assert await client.call("GET", "k") == b"mine"
        assert await client.call("DEL", "k") == 1
    finally:
        await client.aclose()


def _self_signed(folder: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 and its key, the certificate its own authority."""
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=1))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    cert, private = folder / "cert.pem", folder / "key.pem"
    cert.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    private.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert, private


async def test_rediss_speaks_tls_to_a_server_it_trusts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import socket
    import subprocess

    from emulator.network import free_port
    from tests.fakes.redis_server import require_redis_server
    from tests.waiting import wait_until

    cert, key = _self_signed(tmp_path)
    port = free_port()
    command = [require_redis_server(), "--port", "0", "--tls-port", str(port)]
    command += ["--bind", "127.0.0.1", "--tls-cert-file", str(cert), "--tls-key-file", str(key)]
    command += ["--tls-auth-clients", "no", "--save", "", "--appendonly", "no"]
    server = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def listening() -> bool:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 1):
            return True
        return False

    monkeypatch.setenv("SSL_CERT_FILE", str(cert))  # the system's authorities, for this test
    store = open_store(f"rediss://127.0.0.1:{port}/0", timeout_s=2)
    try:
        wait_until(listening, 10, "redis-server with TLS")
        assert await store.put("k", b"over TLS") == 1
        entry = await store.get("k")
        assert entry is not None and entry.value == b"over TLS"
        plain = open_store(f"redis://127.0.0.1:{port}/0", timeout_s=0.5)
        with pytest.raises(StoreUnavailable):  # a TLS port: plain text is not answered
            await plain.get("k")
        await plain.aclose()
    finally:
        await store.aclose()
        server.terminate()
        server.wait(5)
