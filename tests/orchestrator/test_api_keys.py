"""``ORCHESTRATOR_API_KEYS``: an orchestrator exposed directly answers its task routes only to
a caller with one of its keys (as the gateway does with ``GATEWAY_API_KEYS``); ``/health``
stays open, and no key shows in an answer or a log line."""

from __future__ import annotations

import base64
import json
from typing import Any

import aiohttp
import pytest

from tests.orchestrator.fakes import FakeEndpoint
from tests.orchestrator.serving import serve_orchestrator

KEYS = ("orch-key-one-0123456789", "orch-key-two-0123456789")
DONE = {
    "type": "message",
    "content": [{"type": "text", "text": "Done."}],
    "stop_reason": "end_turn",
    "usage": {"input_tokens": 3, "output_tokens": 1},
}

PUBLISHED = "google.cloud.pubsub.topic.v1.messagePublished"
CE = {"ce-specversion": "1.0", "ce-id": "e-1", "ce-source": "//pubsub.googleapis.com/t"}
PUSH: dict[str, Any] = {
    "message": {"data": base64.b64encode(b'{"task": "Hello?"}').decode(), "messageId": "m-1"},
    "subscription": "projects/p/subscriptions/agentorch-tasks",
}


@pytest.mark.anyio
async def test_task_routes_need_a_key_and_health_does_not(
    monkeypatch: pytest.MonkeyPatch, logged: Any
) -> None:
    gateway = await FakeEndpoint("/v1/messages").start()
    gateway.enqueue((200, DONE), (200, DONE))
    monkeypatch.setenv("GATEWAY_URL", gateway.url)
    monkeypatch.setenv("ORCHESTRATOR_API_KEYS", f" {KEYS[0]} , {KEYS[1]}")
    answers: list[tuple[str, int, str]] = []
    try:
        async with serve_orchestrator() as url, aiohttp.ClientSession() as client:
            for what, method, path, headers in [
                ("no key", "POST", "/", {}),
                ("a wrong key", "POST", "/", {"x-api-key": KEYS[0][:-1]}),
                ("the second key", "POST", "/", {"x-api-key": KEYS[1]}),
                ("a bearer key", "POST", "/", {"authorization": f"Bearer {KEYS[0]}"}),
                ("agents, no key", "GET", "/agents", {}),
                ("metrics, no key", "GET", "/metrics", {}),
                ("health, no key", "GET", "/health", {}),
                # What Pub/Sub push and Eventarc send: no x-api-key, only their own OIDC
                # token (which Cloud Run checks, not this code): refused, then redelivered
                # until the dead-letter topic (DEPLOY.md, "Service-to-service auth").
                ("a Pub/Sub push", "POST", "/pubsub", {"authorization": "Bearer oidc.x.y"}),
                ("an Eventarc event", "POST", "/", {"ce-type": PUBLISHED, **CE}),
            ]:
                body: dict[str, Any] | None = {"task": "Hello?"} if method == "POST" else None
                if path == "/pubsub" or "ce-type" in headers:
                    body = PUSH
                async with client.request(method, url + path, json=body, headers=headers) as r:
                    answers.append((what, r.status, await r.text()))
    finally:
        await gateway.close()
    statuses = {what: status for what, status, _ in answers}
    assert statuses == {
        "no key": 401,
        "a wrong key": 401,
        "the second key": 200,
        "a bearer key": 200,
        "agents, no key": 401,
        "metrics, no key": 401,
        "health, no key": 200,
        "a Pub/Sub push": 401,
        "an Eventarc event": 401,
    }
    refused = json.loads(answers[1][2])["error"]
    assert refused == {
        "type": "authentication_error",
        "message": "the API key is not valid for this orchestrator",
    }
    health = next(body for what, _, body in answers if what == "health, no key")
    assert json.loads(health)["auth"] is True
    assert len(gateway.received) == 2  # refused tasks (and events) never reached the model
    for text in [str(logged()), *(body for _, _, body in answers)]:
        assert KEYS[0][:-1] not in text and KEYS[1] not in text
