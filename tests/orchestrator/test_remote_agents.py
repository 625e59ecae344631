"""A remote agent is one line: ``AGENTS="name=url"`` adds any service in the agent contract, and
``AGENT_<NAME>_HEADERS`` gives it headers (its auth) that reach it and appear nowhere else."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml

from functions.orchestrator.agent_sources import agent_headers, agent_sources
from functions.orchestrator.config import load_orchestrator_config
from shared.errors import ConfigError
from shared.redact import Redactor
from tests.orchestrator.fakes import FakeAgents, FakeEndpoint, schema_of
from tests.orchestrator.serving import serve_orchestrator
from tests.served import refused_url

TOKEN = "wx-0123456789abcdef"
"""The remote agent's secret: in its header, it must show nowhere but at the agent."""
WEATHER = schema_of("wx-remote", {"city": {"type": "string", "minLength": 1}}, ["city"])
GATEWAY = {"GATEWAY_URL": "http://gateway.invalid"}


def message(*content: dict[str, Any]) -> dict[str, Any]:
    stop = "tool_use" if any(b["type"] == "tool_use" for b in content) else "end_turn"
    usage = {"input_tokens": 5, "output_tokens": 2}
    return {"type": "message", "content": list(content), "stop_reason": stop, "usage": usage}


def weather_call(call_id: str, city: str) -> dict[str, Any]:
    return {"type": "tool_use", "id": call_id, "name": "wx-remote", "input": {"city": city}}


# -- configuration ----------------------------------------------------------------------------


def test_agents_adds_agents_by_url_beside_the_files() -> None:
    config = load_orchestrator_config(
        {**GATEWAY, "AGENTS": " wx-remote=https://wx.example/api , geo-v2=http://127.0.0.1:9000"}
    )
    assert config.agents["wx-remote"].url == "https://wx.example/api"
    assert config.agents["geo-v2"].url == "http://127.0.0.1:9000"
    assert "calculator" in config.agents  # the file's agents stay


def test_an_agents_entry_repoints_a_files_agent_and_keeps_its_settings(tmp_path: Path) -> None:
    path = tmp_path / "orchestrator.yaml"
    config = {"gateway": {"url": "http://g.invalid"}, "agents": {"wx": {"url": "http://old"}}}
    path.write_text(
        yaml.safe_dump({**config, "agents": {"wx": {"url": "http://a", "timeout_s": 7}}})
    )
    loaded = load_orchestrator_config({"ORCHESTRATOR_CONFIG": str(path), "AGENTS": "wx=http://b"})
    assert loaded.agents["wx"].url == "http://b" and loaded.agents["wx"].timeout_s == 7


@pytest.mark.parametrize(
    ("value", "says"),
    [
        ("wx-remote=http://a,wx-remote=http://b", "entry 2: agent 'wx-remote' is named twice"),
        ("wx-remote=ftp://a", "entry 1 (wx-remote): 'ftp://a' is not an http(s) URL"),
        ("wx-remote=", "entry 1 'wx-remote': write it as name=http(s)://host[:port]"),
        ("wx-remote", "entry 1 'wx-remote': write it as name=http(s)://host[:port]"),
        ("a=http://a,,b=http://b", "entry 2: is empty"),
        ("the weather=http://a", "entry 1: name 'the weather': use 1 to 64 letters"),
        ("w.x=http://a", "name 'w.x'"),
        (f"{'w' * 65}=http://a", "use 1 to 64"),
        ("calculator=http://a", "$AGENTS and $CALCULATOR_URL both set agent 'calculator'"),
    ],
)
def test_a_bad_agents_entry_stops_start_up_naming_it(value: str, says: str) -> None:
    environ = {**GATEWAY, "AGENTS": value, "CALCULATOR_URL": "http://calc"}
    with pytest.raises(ConfigError, match="AGENTS") as caught:
        load_orchestrator_config(environ)
    assert says in str(caught.value)


def test_a_bad_agent_name_in_the_file_stops_start_up(tmp_path: Path) -> None:
    path = tmp_path / "orchestrator.yaml"
    bad = {"gateway": {"url": "http://g.invalid"}, "agents": {"my agent": {"url": "http://a"}}}
    path.write_text(yaml.safe_dump(bad))
    with pytest.raises(ConfigError, match="agent name 'my agent': use 1 to 64 letters"):
        load_orchestrator_config({"ORCHESTRATOR_CONFIG": str(path)})


def test_headers_come_from_agent_name_headers() -> None:
    environ = {"AGENT_GEO_V2_HEADERS": f"Authorization=Bearer {TOKEN}, x-team = blue"}
    assert agent_headers(["geo-v2", "calculator"], environ) == {
        "geo-v2": {"authorization": f"Bearer {TOKEN}", "x-team": "blue"}
    }


@pytest.mark.parametrize(
    ("environ", "says"),
    [
        ({"AGENT_WEATHR_HEADERS": "a=b"}, "$AGENT_WEATHR_HEADERS: no agent is named for it"),
        ({"AGENT_WX_REMOTE_HEADERS": f"bad name={TOKEN}"}, "entry 1: write it as header-name=v"),
        ({"AGENT_WX_REMOTE_HEADERS": f"x-a={TOKEN},x-b"}, "entry 2 (x-b): the value is empty"),
        ({"AGENT_WX_REMOTE_HEADERS": f"host={TOKEN}"}, "entry 1: host is set by the client"),
        ({"AGENT_WX_REMOTE_HEADERS": f"x-a={TOKEN},X-A=1"}, "entry 2: X-A is named twice"),
    ],
)
def test_bad_headers_stop_start_up_without_quoting_a_value(
    environ: dict[str, str], says: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        agent_headers(["wx-remote"], environ)
    assert says in str(caught.value) and TOKEN not in str(caught.value)


def test_two_names_that_read_one_headers_variable_stop_start_up() -> None:
    with pytest.raises(ConfigError, match="'geo-v2' and 'geo_v2' would both read"):
        agent_headers(["geo-v2", "geo_v2"], {})


def test_where_each_agent_comes_from() -> None:
    environ = {"AGENTS": "wx-remote=http://a", "SEARCH_URL": "http://s"}
    assert agent_sources(["wx-remote", "search", "calculator"], environ, "orchestrator.yaml") == {
        "wx-remote": "$AGENTS",
        "search": "$SEARCH_URL",
        "calculator": "orchestrator.yaml",
    }


def test_the_redactor_knows_every_agents_header_values() -> None:
    scrub = Redactor.from_environ({"AGENT_WX_REMOTE_HEADERS": f"authorization=Bearer {TOKEN}"})
    assert TOKEN not in scrub(f"refused Bearer {TOKEN}; token {TOKEN[:12]}")


# -- served, end to end -----------------------------------------------------------------------


@pytest.mark.anyio
async def test_a_remote_agent_added_by_agents_alone_reaches_the_model(
    fake_agents: FakeAgents,
    monkeypatch: pytest.MonkeyPatch,
    logged: Any,
) -> None:
    weather = fake_agents.add(
        "wx-remote",
        lambda arguments: (
            (200, {"result": f"sunny in {arguments['city']}"})
            if arguments["city"] != "Oslo"  # this one refuses, quoting the token it was sent
            else (401, {"type": "error", "error": {"type": "auth", "message": f"bad {TOKEN}"}})
        ),
        WEATHER,
    )
    gateway = await FakeEndpoint("/v1/messages").start()
    gateway.enqueue(
        (200, message(weather_call("t1", "Paris"), weather_call("t2", "Oslo"))),
        (200, message({"type": "text", "text": "Sunny in Paris."})),
    )
    # Only the environment names it: the default file, which knows no wx-remote agent.
    monkeypatch.setenv("GATEWAY_URL", gateway.url)
    monkeypatch.setenv("AGENTS", f"wx-remote={fake_agents.url('wx-remote')}")
    monkeypatch.setenv("AGENT_WX_REMOTE_HEADERS", f"authorization=Bearer {TOKEN}")
    try:
        async with serve_orchestrator() as url, aiohttp.ClientSession() as client:
            async with client.post(url, json={"task": "Weather?", "agents": ["wx-remote"]}) as r:
                assert r.status == 200
                run = await r.text()
            async with client.get(f"{url}/agents") as r:
                listed = await r.text()
                agents = {a["name"]: a for a in (await r.json())["agents"]}
    finally:
        await gateway.close()
    body = json.loads(run)
    assert body["status"] == "completed" and body["answer"] == "Sunny in Paris."
    agent_steps = [(s["outcome"], s["error"]) for s in body["steps"] if s["kind"] == "agent"]
    assert agent_steps == [
        ({"result": "sunny in Paris"}, None),
        (None, "agent wx-remote answered 401: bad [redacted]"),  # the echoed token scrubbed
    ]
    offered = gateway.received[0].body["tools"]
    assert [tool["name"] for tool in offered] == ["wx-remote"]
    # Both calls, run at once: in whichever order they arrived.
    assert sorted(weather.calls, key=str) == [{"city": "Oslo"}, {"city": "Paris"}]
    # The header reached the agent on every request, schema included ...
    assert weather.headers and all(h["authorization"] == f"Bearer {TOKEN}" for h in weather.headers)
    # ... and nowhere else: not the run, not /agents, not a log line.
    assert agents["wx-remote"]["status"] == "available"
    assert agents["wx-remote"]["source"] == "$AGENTS"
    assert agents["wx-remote"]["url"] == fake_agents.url("wx-remote")
    assert agents["calculator"]["source"] == "$CALCULATOR_URL"  # pinned by serve_orchestrator
    to_model = json.dumps([received.body for received in gateway.received])
    for text in (run, listed, str(logged()), to_model):
        assert TOKEN not in text and TOKEN[:12] not in text


@pytest.mark.anyio
async def test_a_remote_agent_that_is_down_is_listed_unavailable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("GATEWAY_URL", refused_url())
    monkeypatch.setenv("AGENTS", f"wx-remote={refused_url()}/wx")
    async with (
        serve_orchestrator() as url,
        aiohttp.ClientSession() as client,
        client.get(f"{url}/agents") as r,
    ):
        agents = {a["name"]: a for a in (await r.json())["agents"]}
    assert agents["wx-remote"]["status"] == "unavailable"
    assert agents["wx-remote"]["source"] == "$AGENTS"
