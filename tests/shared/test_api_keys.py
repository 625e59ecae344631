"""``shared.api_keys``: the one key check the gateway and the orchestrator share."""

from __future__ import annotations

import asyncio

import pytest

from shared.api_keys import ApiKeys
from shared.errors import Unauthorized
from shared.http import Call, Reply

KEYS = ApiKeys(["key-one-0123456789", "key-two-0123456789"], "orchestrator")


def call(headers: dict[str, str]) -> Call:
    return Call(method="POST", path="/", headers=headers, body=b"", request_id="r1")


@pytest.mark.parametrize(
    "headers",
    [
        {"x-api-key": "key-two-0123456789"},
        {"authorization": "Bearer key-one-0123456789"},
        {"authorization": "bearer  key-one-0123456789 "},
        {"x-api-key": "key-one-0123456789", "authorization": "Bearer an-id-token"},
    ],
)
def test_a_key_is_accepted_as_x_api_key_or_bearer(headers: dict[str, str]) -> None:
    KEYS.check(headers)


@pytest.mark.parametrize(
    ("headers", "says"),
    [
        ({}, "an API key is required: send it as x-api-key or Bearer token"),
        ({"authorization": "Basic a2V5"}, "an API key is required"),
        ({"x-api-key": "key-one-012345678"}, "the API key is not valid for this orchestrator"),
        ({"authorization": "Bearer key-three"}, "the API key is not valid for this orchestrator"),
    ],
)
def test_a_call_without_an_accepted_key_is_refused_401(headers: dict[str, str], says: str) -> None:
    with pytest.raises(Unauthorized) as caught:
        KEYS.check(headers)
    assert caught.value.status_code == 401 and says in str(caught.value)


def test_without_keys_every_call_is_let_in_and_handlers_stay_as_they_are() -> None:
    async def handler(call: Call) -> Reply:
        return Reply({"ok": True})

    open_keys = ApiKeys([], "gateway")
    assert not open_keys.required and open_keys.guarding(handler) is handler
    open_keys.check({})


def test_a_guarded_handler_answers_only_a_call_with_a_key() -> None:
    reached: list[Call] = []

    async def handler(call: Call) -> Reply:
        reached.append(call)
        return Reply({"ok": True})

    guarded = KEYS.guarding(handler)

    async def answer(headers: dict[str, str]) -> Reply:
        return await guarded(call(headers))

    with pytest.raises(Unauthorized):
        asyncio.run(answer({}))
    asyncio.run(answer({"x-api-key": "key-one-0123456789"}))
    assert len(reached) == 1
