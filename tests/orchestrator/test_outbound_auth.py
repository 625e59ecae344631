"""The orchestrator calls a private gateway and private agents with its platform identity
(``OUTBOUND_AUTH=google``): each gets an ID token for its own origin, from a fake metadata
server; an agent with headers of its own gets those, never the orchestrator's token."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import aiohttp
import pytest

from tests.fakes.metadata_server import FakeMetadata, claims_of
from tests.orchestrator.fakes import FakeAgents, FakeEndpoint, schema_of
from tests.orchestrator.serving import serve_orchestrator
from tests.served import refused_url

PLACE = schema_of("wx", {"city": {"type": "string"}}, ["city"])
OWN = "Bearer geo-own-token-0123456789"


@pytest.fixture
def metadata() -> Iterator[FakeMetadata]:
    with FakeMetadata() as fake:
        yield fake


def message(*content: dict[str, Any]) -> dict[str, Any]:
    stop = "tool_use" if any(b["type"] == "tool_use" for b in content) else "end_turn"
    usage = {"input_tokens": 5, "output_tokens": 2}
    return {"type": "message", "content": list(content), "stop_reason": stop, "usage": usage}


def call(call_id: str, name: str) -> dict[str, Any]:
    return {"type": "tool_use", "id": call_id, "name": name, "input": {"city": "Oslo"}}


def audience(headers: dict[str, str]) -> str:
    scheme, _, token = headers["authorization"].partition(" ")
    assert scheme == "Bearer"
    return str(claims_of(token)["aud"])


@pytest.mark.anyio
async def test_the_gateway_and_agents_get_an_id_token_for_their_own_origin(
    fake_agents: FakeAgents,
    metadata: FakeMetadata,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    wx = fake_agents.add("wx", lambda arguments: (200, {"result": "sunny"}), PLACE)
    geo = fake_agents.add("geo", lambda arguments: (200, {"result": "59.9N"}), PLACE)
    gateway = await FakeEndpoint("/v1/messages").start()
    gateway.enqueue(
        (200, message(call("t1", "wx"), call("t2", "geo"))),
        (200, message({"type": "text", "text": "Sunny at 59.9N."})),
    )
    sink = await FakeEndpoint("/").start()
    for name, value in {
        "OUTBOUND_AUTH": "google",
        "GCE_METADATA_HOST": metadata.host,
        "GATEWAY_URL": gateway.url,
        "GATEWAY_API_KEY": "gw-key-0123456789",
        "AGENTS": f"wx={fake_agents.url('wx')},geo={fake_agents.url('geo')}",
        "AGENT_GEO_HEADERS": f"authorization={OWN}",
        "K_SINK": sink.url,
        "SEARCH_URL": refused_url(),
    }.items():
        monkeypatch.setenv(name, value)
    try:
        async with serve_orchestrator() as url, aiohttp.ClientSession() as client:
            task = {"task": "Weather?", "agents": ["wx", "geo"]}
            async with client.post(url, json=task) as reply:
                run = json.loads(await reply.text())
        delivered = await sink.wait_for(1)
    finally:
        await gateway.close()
        await sink.close()
    assert run["status"] == "completed", run
    for received in gateway.received:  # the token beside the gateway's own key
        assert audience(received.headers) == gateway.url
        assert received.headers["x-api-key"] == "gw-key-0123456789"
    assert wx.headers and all(audience(h) == fake_agents.base_url for h in wx.headers)
    assert geo.headers and all(h["authorization"] == OWN for h in geo.headers)
    assert "authorization" not in delivered[0].headers  # the sink: never
    asked = {r.path.split("audience=")[1].split("&")[0] for r in metadata.identity_requests()}
    assert len(asked) == 2  # one token per audience, kept for the next calls
    assert len(metadata.identity_requests()) == 2


@pytest.mark.anyio
async def test_a_metadata_server_that_is_down_gives_a_503_naming_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    gateway = await FakeEndpoint("/v1/messages").start()
    down = refused_url().removeprefix("http://")
    monkeypatch.setenv("OUTBOUND_AUTH", "google")
    monkeypatch.setenv("GCE_METADATA_HOST", down)
    monkeypatch.setenv("GATEWAY_URL", gateway.url)
    try:
        async with (
            serve_orchestrator() as url,
            aiohttp.ClientSession() as client,
            client.post(url, json={"task": "Hello?"}) as reply,
        ):
            status, body = reply.status, await reply.json()
    finally:
        await gateway.close()
    assert status == 503
    message = body["error"]["message"]
    assert f"the metadata server at {down} is unreachable" in message, message
    assert not gateway.received
