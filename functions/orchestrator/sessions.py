"""Sessions: a conversation that outlives one task, kept in the shared store so that any
instance can answer its next turn.

A task with ``session_id`` runs with the session's earlier turns before it: each turn is the
task as the model saw it, the model's replies (tool calls included), the tools' results and the
final answer, as Anthropic messages. What the model is shown is bounded by ``max_tokens``
(estimated at four characters a token): whole turns are dropped, oldest first, so a tool call
is never parted from its result. The new turn is appended when its run ends (completed or
stopped; a failed run adds nothing, so that sending it again is a clean retry). A session is
forgotten ``ttl_s`` after its last turn, or at once by ``DELETE /sessions/{id}``.

One task at a time per session. A second task while one is under way is refused with 409
(``SessionBusy``) rather than queued: a turn must see the previous answer, so the second could
only wait, holding a connection (and an instance) for as long as the first runs, with nothing
to bound that wait on another instance but polling the store. Two tasks on one session at
once are nearly always a double submission; the client that meant it sends it again once the
first has answered. The claim is a compare-and-set in the store with a lease (the task's time
budget and a margin), so an instance that dies mid-turn frees its session when the lease ends.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from functions.orchestrator.trace import RunResult, Status
from shared.errors import BadRequest, Conflict, NotFound, StoreUnavailable
from shared.http import json_text
from shared.logs import get_logger
from shared.store import Store

log = get_logger("orchestrator.sessions")

SESSION_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$")
SESSION_ID_RULE = "1-128 characters: letters, digits and . _ : - (a letter or digit first)"
CHARS_PER_TOKEN = 4
LEASE_MARGIN_S = 30.0

Message = dict[str, Any]


class SessionBusy(Conflict):
    """Another task of the session is under way."""


def check_session_id(session_id: str) -> str:
    if not SESSION_ID.fullmatch(session_id):
        raise BadRequest(f"session_id: {session_id[:40]!r} is not a session id: {SESSION_ID_RULE}")
    return session_id


@dataclass(frozen=True)
class Turn:
    """One task of a session and what it led to."""

    run_id: str
    task: str
    answer: str
    status: str
    at: float
    """When it ended (seconds since the epoch)."""
    messages: tuple[Message, ...]

    def tokens(self) -> int:
        return len(json_text(list(self.messages))) // CHARS_PER_TOKEN + 1

    def to_json(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "task": self.task,
            "answer": self.answer,
            "status": self.status,
            "at": self.at,
            "messages": list(self.messages),
        }

    @classmethod
    def from_json(cls, body: dict[str, Any]) -> Turn:
        return cls(
            body["run_id"],
            body["task"],
            body["answer"],
            body["status"],
            body["at"],
            tuple(body["messages"]),
        )


def recent(turns: Sequence[Turn], max_tokens: int) -> list[Message]:
    """The messages of the newest turns that fit in ``max_tokens``, oldest first."""
    kept: list[Turn] = []
    spent = 0
    for turn in reversed(turns):
        spent += turn.tokens()
        if spent > max_tokens:
            break
        kept.append(turn)
    return [message for turn in reversed(kept) for message in turn.messages]


def closed(messages: Sequence[Message], answer: str) -> tuple[Message, ...]:
    """A run's messages as a turn the next may follow: a last tool call that got no result
    (the run stopped first) is left out, and a turn that does not end with the model's words
    ends with the run's answer."""
    kept = list(messages)
    if kept and kept[-1].get("role") == "assistant" and _calls_tools(kept[-1]):
        kept.pop()
    if not kept or kept[-1].get("role") != "assistant":
        kept.append({"role": "assistant", "content": [{"type": "text", "text": answer}]})
    return tuple(kept)


def _calls_tools(message: Message) -> bool:
    content = message.get("content")
    return isinstance(content, list) and any(
        isinstance(b, dict) and b.get("type") == "tool_use" for b in content
    )


class Sessions:
    def __init__(self, store: Store, *, ttl_s: float, max_tokens: int, max_turns: int) -> None:
        self.store = store
        self.ttl_s = ttl_s
        self.max_tokens = max_tokens
        self.max_turns = max_turns

    async def claim(self, session_id: str, lease_s: float) -> SessionTurn:
        """The session's next turn, held until ``release``, with the turns before it (read
        in the same call as the claim: one store round trip, not two); ``SessionBusy`` (409)
        when another task of the session is under way."""
        held = json_text({"since": time.time()}).encode()
        items = await self.store.create_and_read(
            _busy_key(session_id),
            held,
            ttl_s=lease_s + LEASE_MARGIN_S,
            list_key=_turns_key(session_id),
        )
        if items is None:
            raise SessionBusy(
                f"session {session_id!r} has a task under way; send this one when it has answered",
                headers={"retry-after": "1"},
            )
        return SessionTurn(self, session_id, self._parsed(items), stored=len(items))

    async def turns(self, session_id: str) -> list[Turn]:
        return self._parsed(await self.store.items(_turns_key(session_id)))

    def _parsed(self, items: list[bytes]) -> list[Turn]:
        return [Turn.from_json(json.loads(item)) for item in items[-self.max_turns :]]

    async def history(self, session_id: str) -> dict[str, Any]:
        """``GET /sessions/{id}``: its turns, oldest first; ``NotFound`` when there are none."""
        turns = await self.turns(session_id)
        if not turns:
            raise NotFound(f"no session {session_id!r} (never used, expired or deleted)")
        return {"session_id": session_id, "turns": [turn.to_json() for turn in turns]}

    async def forget(self, session_id: str) -> bool:
        """``DELETE /sessions/{id}``: whether there was one."""
        return await self.store.delete(_turns_key(session_id))

    async def append(self, session_id: str, turn: Turn, *, release: bool = False) -> None:
        """Add ``turn``; with ``release``, free the session in the same call (only when the
        list will not be rewritten: that must happen while the session is held)."""
        key = _turns_key(session_id)
        item = json_text(turn.to_json()).encode()
        if release:
            length = await self.store.append_and_delete(
                key, item, ttl_s=self.ttl_s, delete_key=_busy_key(session_id)
            )
        else:
            length = await self.store.append(key, item, ttl_s=self.ttl_s)
        if length > 2 * self.max_turns:  # rewritten now and then, not at every turn
            kept = (await self.store.items(key))[-self.max_turns :]
            await self.store.delete(key)
            for kept_item in kept:
                await self.store.append(key, kept_item, ttl_s=self.ttl_s)


class SessionTurn:
    """A claimed session: its history for the run, then the run's turn recorded and the
    session released (in one store call when the turn is kept)."""

    def __init__(
        self, sessions: Sessions, session_id: str, turns: list[Turn], *, stored: int
    ) -> None:
        self.sessions = sessions
        self.session_id = session_id
        self.turns = turns
        """The turns before this one, as read when it was claimed."""
        self.stored = stored
        """How many turns the store held then (more than ``turns`` before a rewrite)."""
        self.released = False

    def history(self) -> list[Message]:
        return recent(self.turns, self.sessions.max_tokens)

    async def record(self, task: str, result: RunResult) -> dict[str, Any]:
        """Keep the run's turn and release the session; what the answer says of it
        (``RunResult.session``). A store that fails now does not take the answer away: the
        run is done, and the answer says that its turn was not kept (never a silent loss)."""
        if result.status is Status.FAILED:
            return {"id": self.session_id, "saved": False}
        messages = closed(result.messages, result.answer)
        turn = Turn(result.run_id, task, result.answer, result.status.value, time.time(), messages)
        # The list is rewritten past twice its bound: then the release is a call of its own.
        release = self.stored + 1 <= 2 * self.sessions.max_turns
        try:
            await self.sessions.append(self.session_id, turn, release=release)
        except StoreUnavailable as exc:
            log.error("session turn not kept", extra={"session_id": self.session_id})
            return {"id": self.session_id, "saved": False, "error": exc.message}
        self.released = release
        return {"id": self.session_id, "saved": True}

    async def release(self) -> None:
        """Free the session unless ``record`` did already."""
        if self.released:
            return
        try:
            await self.sessions.store.delete(_busy_key(self.session_id))
        except Exception:  # the lease ends it anyway
            log.warning("session not released", extra={"session_id": self.session_id})
        self.released = True


def _turns_key(session_id: str) -> str:
    return f"session:{session_id}:turns"


def _busy_key(session_id: str) -> str:
    return f"session:{session_id}:busy"
