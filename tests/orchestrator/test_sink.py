"""The event sink against hostile and slow sinks: its answer is read only so far, never
decoded; a delivery that cannot be made is one ERROR line naming the run."""

from __future__ import annotations

import asyncio
import json
import struct
import threading
import time
import tracemalloc
import zlib
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest

from functions.orchestrator.config import OrchestratorConfig, SinkSettings
from functions.orchestrator.runs import RunRegistry
from functions.orchestrator.service import OrchestratorService
from functions.orchestrator.sink import ANSWER_KEPT_BYTES, EventSink, shown_url
from shared.aio import AsyncHttp
from shared.http import Call
from tests.fakes.provider import FakeTime
from tests.fakes.server import Exchange, FakeServer, RecordedRequest
from tests.orchestrator.fakes import FakeAgents, FakeEndpoint, ScriptedModel, directory, text

pytestmark = pytest.mark.anyio
MiB = 1024 * 1024
GiB = 1024 * MiB
Logged = Callable[[], list[dict[str, Any]]]
SETTINGS = SinkSettings(max_attempts=1, base_delay_s=0.0, timeout_s=5.0)


def gzip_bomb(expanded_mib: int) -> bytes:
    """A gzip body of ~1 KB per MiB it expands to: full-flushed deflate segments of zeros do
    not depend on what came before, so one is made and repeated."""
    zeros = bytes(MiB)
    segment = zlib.compressobj(9, zlib.DEFLATED, -15)
    piece = segment.compress(zeros) + segment.flush(zlib.Z_FULL_FLUSH)
    crc = 0
    for _ in range(expanded_mib):
        crc = zlib.crc32(zeros, crc)
    end = zlib.compressobj(9, zlib.DEFLATED, -15).flush()
    trailer = struct.pack("<II", crc, (expanded_mib * MiB) & 0xFFFFFFFF)
    return b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff" + piece * expanded_mib + end + trailer


class HostileSink(FakeServer):
    """Answers 202 with ``body`` (repeated up to ``declared`` bytes), counting the bytes it
    got onto the socket before the client went away."""

    def __init__(self, body: bytes, declared: int, headers: dict[str, str]) -> None:
        super().__init__()
        self.body, self.declared, self.headers = body, declared, headers
        self.written = 0
        self.done = threading.Event()

    def answer(self, request: RecordedRequest, exchange: Exchange) -> None:
        exchange.start_body(202, {**self.headers, "connection": "close"}, self.declared)
        body, piece = memoryview(self.body), 64 * 1024  # no copies to blur the measure
        while self.written < self.declared:
            start = self.written % len(body)
            chunk = body[start : start + min(piece, self.declared - self.written)]
            if not exchange.write(chunk):
                break
            self.written += len(chunk)
        self.done.set()


@pytest.fixture
def result() -> dict[str, Any]:
    return {"run_id": "run_hostile", "status": "completed", "answer": "4"}


async def deliver_measured(sink: HostileSink, result: dict[str, Any]) -> tuple[bool, int]:
    """The delivery's outcome and the peak of memory allocated while it ran."""
    http = AsyncHttp()
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        before = tracemalloc.get_traced_memory()[0]
        async with asyncio.timeout(10):
            delivered = await EventSink(http, sink.url, SETTINGS).deliver(result)
        peak = tracemalloc.get_traced_memory()[1] - before
    finally:
        tracemalloc.stop()
        await http.close()
    return delivered, peak


@pytest.fixture
def bomb_sink() -> Iterator[HostileSink]:
    bomb = gzip_bomb(1024)  # ~1 MB expanding to 1 GiB
    headers = {"content-type": "application/json", "content-encoding": "gzip"}
    with HostileSink(bomb, len(bomb), headers) as sink:
        yield sink


@pytest.fixture
def endless_sink() -> Iterator[HostileSink]:
    with HostileSink(bytes(MiB), GiB, {"content-type": "application/json"}) as sink:
        yield sink


async def test_a_gzip_bomb_from_the_sink_is_never_decompressed(
    bomb_sink: HostileSink, result: dict[str, Any]
) -> None:
    delivered, peak = await deliver_measured(bomb_sink, result)
    assert delivered  # a 202 is taken
    assert peak < 8 * MiB, f"{peak / MiB:.1f} MiB allocated to read a 1 MB answer"
    [request] = bomb_sink.requests
    assert request.headers["accept-encoding"] == "identity"


async def test_a_1_gib_answer_from_the_sink_is_not_read(
    endless_sink: HostileSink, result: dict[str, Any]
) -> None:
    started = time.monotonic()
    delivered, peak = await deliver_measured(endless_sink, result)
    assert delivered
    assert time.monotonic() - started < SETTINGS.timeout_s  # not the timeout that ended it
    # The client hung up (once its loop ran the close): the sink could write no more.
    assert await asyncio.to_thread(endless_sink.done.wait, 5)
    # What the sink got onto the socket is what the kernel's buffers took, plus what the
    # client read before it hung up: a few MiB at most, of the 1 GiB it declared.
    assert endless_sink.written < 32 * MiB, f"{endless_sink.written / MiB:.0f} MiB written"
    assert peak < 8 * MiB


class RefusingSink(FakeServer):
    def answer(self, request: RecordedRequest, exchange: Exchange) -> None:
        exchange.send_json(400, {"error": "x" * 100_000})


async def test_a_refusal_is_logged_quoting_a_bounded_part_of_it(
    result: dict[str, Any], logged: Logged
) -> None:
    http = AsyncHttp()
    try:
        with RefusingSink() as sink:
            url = sink.url.replace("http://", "http://user:secret@") + "/in?token=t0k"
            assert not await EventSink(http, url, SETTINGS).deliver(result)
    finally:
        await http.close()
    [line] = logged()
    assert line["severity"] == "ERROR" and line["run_id"] == "run_hostile"
    assert line["problem"].startswith("answered 400: ") and len(line["problem"]) < 300
    assert "secret" not in json.dumps(line) and "t0k" not in json.dumps(line)
    assert line["sink"] == shown_url(url) == sink.url + "/in"


async def test_a_refused_delivery_is_retried_after_a_jittered_backoff(
    result: dict[str, Any], logged: Logged
) -> None:
    endpoint = await FakeEndpoint().start()
    endpoint.enqueue((503, {}), (500, {}), (202, {}))
    time, drawn = FakeTime(), list[tuple[float, float]]()

    def rng(low: float, high: float) -> float:
        drawn.append((low, high))
        return high / 4

    settings = SinkSettings(max_attempts=3, base_delay_s=0.5, timeout_s=5.0)
    http = AsyncHttp()
    try:
        sink = EventSink(http, endpoint.url, settings, sleep=time.sleep, rng=rng)
        assert await sink.deliver(result)
    finally:
        await http.close()
        await endpoint.close()
    assert len(endpoint.received) == 3
    assert drawn == [(0.0, 0.5), (0.0, 1.0)]  # the pause doubles, drawn by the injected rng
    assert time.slept == [0.125, 0.25]
    assert logged() == []


async def test_a_sink_that_keeps_refusing_is_logged_once_with_its_attempts(
    result: dict[str, Any], logged: Logged
) -> None:
    endpoint = await FakeEndpoint().start()
    endpoint.enqueue((503, {}), (503, {}))
    settings = SinkSettings(max_attempts=2, base_delay_s=0.5, timeout_s=5.0)
    http = AsyncHttp()
    try:
        assert not await EventSink(http, endpoint.url, settings, sleep=FakeTime().sleep).deliver(
            result
        )
    finally:
        await http.close()
        await endpoint.close()
    [line] = logged()
    assert line["attempts"] == 2 and line["problem"].startswith("answered 503")


def test_what_is_kept_of_an_answer_is_small() -> None:
    assert ANSWER_KEPT_BYTES <= 4096


@pytest.fixture
async def slow_endpoint() -> AsyncIterator[FakeEndpoint]:
    endpoint = await FakeEndpoint().start()
    endpoint.delay_s = 0.3
    yield endpoint
    await endpoint.close()


def orchestrator(
    fake_agents: FakeAgents, http: AsyncHttp, endpoint: FakeEndpoint, turns: int
) -> OrchestratorService:
    config = OrchestratorConfig.model_validate({"gateway": {"url": "http://gateway.invalid"}})
    sink = EventSink(http, endpoint.url, SETTINGS)
    model = ScriptedModel().enqueue(*(text(f"answer {n}") for n in range(turns)))
    agents = directory(fake_agents, http)
    return OrchestratorService(config, model, agents, sink, RunRegistry(0))


def task(body: dict[str, Any]) -> Call:
    headers = {"content-type": "application/json"}
    return Call("POST", "/", headers, json.dumps(body).encode(), "req-1")


@pytest.mark.parametrize("stream", [False, True])
async def test_a_reply_waits_for_its_delivery_once_it_is_sent(
    fake_agents: FakeAgents, http: AsyncHttp, slow_endpoint: FakeEndpoint, stream: bool
) -> None:
    service = orchestrator(fake_agents, http, slow_endpoint, 1)
    assert service.sink is not None
    reply = await service.submit(task({"task": "hi", "stream": stream}))
    if stream:
        assert b"event: result" in b"".join([chunk async for chunk in reply.body])
    assert service.sink.pending == 1  # the answer is whole; its delivery is under way
    assert reply.after is not None
    await reply.after()  # what the edge runs after sending the answer
    assert service.sink.pending == 0 and len(slow_endpoint.received) == 1


async def test_a_delivery_cut_by_a_stopping_worker_is_logged_with_its_run(
    fake_agents: FakeAgents, http: AsyncHttp, slow_endpoint: FakeEndpoint, logged: Logged
) -> None:
    slow_endpoint.delay_s = 30.0  # the grace runs out first
    service = orchestrator(fake_agents, http, slow_endpoint, 1)
    reply = await service.submit(task({"task": "hi"}))
    assert reply.after is not None
    waiting = asyncio.ensure_future(reply.after())
    await slow_endpoint.wait_for(1)
    waiting.cancel()  # as uvicorn does when SHUTDOWN_GRACE_S has passed
    with pytest.raises(asyncio.CancelledError):
        await waiting
    assert service.sink is not None and service.sink.pending == 0
    [line] = [line for line in logged() if line["msg"] == "sink did not take the result"]
    assert line["severity"] == "ERROR" and line["run_id"] == reply.body["run_id"]
    assert line["problem"] == "the worker stopped before the sink took it"
