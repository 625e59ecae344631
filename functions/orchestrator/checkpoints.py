"""A run's checkpoints in the store: its status, the request that started it, and every step
as it finishes, so that ``GET /runs/{id}`` answers from any instance sharing the store
(``STORE_URL`` sqlite:// or redis://), while the run goes and after it ended.

Two keys per run, both kept ``ttl_s`` after the run's last write:

- ``runstate:<id>``: ``{"run_id", "status", "request", "started_at"}`` while it runs
  (``status`` ``running``, or ``accepted`` before an async run starts); the result's JSON
  (``RunResult.to_json``) once it ended;
- ``runsteps:<id>``: a list, one item per finished step (``Step.to_json``), appended as each
  finishes, with what the run needs to go on from there (the model's whole reply, an agent's
  whole ``tool_result``), under ``"resume"``.

One owner at a time: a run is held by a lease, ``runlease:<id>``, taken with a compare-and-set
on its absence and renewed by a heartbeat every third of ``lease_s``. An instance that dies
stops renewing it; once it expired another instance may take the run over (``resume.py``).
A run that ends gives its lease back; one cancelled (its worker stopping) keeps it until it
expires, as one whose process was killed does. An owner that loses its lease (another took
the run over, or it could not renew it for ``lease_s``: a long pause, the store away) stops at
the run's next step boundary (``Lease.check`` raises ``LeaseLost`` before a step starts; a
call under way finishes and is recorded), so two owners never both advance a run.

A checkpoint that cannot be written (the store is down) is logged and the run goes on: its
result still reaches the caller and the sink; only its trace from elsewhere is stale.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from functions.orchestrator.trace import RunResult, Step
from shared.errors import BadRequest, Conflict, StoreUnavailable
from shared.http import json_text
from shared.logs import get_logger
from shared.store import Store

log = get_logger("orchestrator.checkpoints")

STATE_PREFIX = "runstate:"
STEPS_PREFIX = "runsteps:"
LEASE_PREFIX = "runlease:"
APPROVAL_PREFIX = "runapproval:"
WAITING = "waiting_approval"
RUNNING = "running"
ACCEPTED = "accepted"
RUN_ID = re.compile(r"run_[0-9a-f]{24}")


def check_run_id(run_id: str) -> str:
    if not RUN_ID.fullmatch(run_id):
        raise BadRequest(f"run id {run_id[:80]!r}: expected run_ and 24 hex digits")
    return run_id


class RunHeld(Conflict):
    """The run is held by a live instance (its lease is renewed): it is not taken over."""


class LeaseLost(RunHeld):
    """This instance lost the run's lease: another owner goes on with it."""


@dataclass
class Lease:
    """A run's lease as its owner holds it: ``lost`` once a renewal failed."""

    run_id: str
    lost: bool = False
    renewed_at: float = 0.0
    """When it was last taken or renewed (``RunJournal.clock``): no one else can hold it
    before ``renewed_at + lease_s``."""

    def check(self) -> None:
        """Raises ``LeaseLost`` once the lease is lost: called at each step boundary."""
        if self.lost:
            raise LeaseLost(
                f"run {self.run_id}: this instance lost its lease; ask GET /runs/{self.run_id}"
            )


@dataclass
class RunJournal:
    store: Store
    ttl_s: float
    lease_s: float = 30.0
    owner: str = field(default_factory=lambda: f"{os.getpid()}-{os.urandom(4).hex()}")
    """This instance, in the leases it holds."""
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep
    """Between heartbeats (tests drive it)."""
    approval_timeout_s: float = 24 * 3600.0
    clock: Callable[[], float] = time.time

    @asynccontextmanager
    async def held(self, run_id: str) -> AsyncIterator[Lease]:
        """The run's lease, renewed while the block runs; given back when it ends without
        being cancelled (unless lost). Raises ``RunHeld`` when another owner's lease is alive."""
        key = LEASE_PREFIX + run_id
        token = f"{self.owner}:{os.urandom(4).hex()}".encode()  # this take of it, no other
        taken_at = self.clock()
        version = await self.store.put(key, token, ttl_s=self.lease_s, version=0)
        if version is None:
            raise RunHeld(
                f"run {run_id} is held by a live instance; ask GET /runs/{run_id}",
                headers={"retry-after": str(max(1, round(self.lease_s / 3)))},
            )
        lease = Lease(run_id, renewed_at=taken_at)
        beat = asyncio.ensure_future(self._beat(key, token, lease))
        try:
            yield lease
        finally:
            beat.cancel()
        if lease.lost:  # another owner's now: not ours to give back
            return
        try:
            # Still within the lease it renewed: its own for sure (one store call less).
            ours = self.clock() - lease.renewed_at < self.lease_s * 0.9
            if not ours:
                entry = await self.store.get(key)
                ours = entry is not None and entry.value == token
            if ours:
                await self.store.delete(key)
        except StoreUnavailable:
            log.error("run's lease not given back; it expires", extra={"run_id": run_id})

    async def _beat(self, key: str, token: bytes, lease: Lease) -> None:
        """Renews the lease while it is still this take's (its ``token``): one that expired
        and was taken by another is lost, even when its version is the same again."""
        while True:
            await self.sleep(self.lease_s / 3)
            asked_at = self.clock()
            try:
                entry = await self.store.get(key)
                renewed = None
                if entry is not None and entry.value == token:
                    renewed = await self.store.put(
                        key, token, ttl_s=self.lease_s, version=entry.version
                    )
            except StoreUnavailable:
                if self.clock() - lease.renewed_at < self.lease_s:
                    continue  # the next beat tries again, within the lease
                renewed = None
            if renewed is None:
                log.error("run's lease lost: it stops at its next step", extra={"key": key})
                lease.lost = True
                return
            lease.renewed_at = asked_at

    async def begin(
        self, run_id: str, request: Any, *, status: str = RUNNING, only_new: bool = False
    ) -> bool:
        """Record the run as ``status``; with ``only_new``, only when it is not known (an
        async run's record before its answer). Whether it was written. Raises
        ``StoreUnavailable``: a run that cannot be recorded is refused before it starts."""
        record = {
            "run_id": run_id,
            "status": status,
            "request": request,
            "started_at": round(self.clock(), 3),
        }
        key = STATE_PREFIX + run_id
        version = 0 if only_new else None
        written = await self.store.put(key, _encoded(record), ttl_s=self.ttl_s, version=version)
        return written is not None

    async def step(self, run_id: str, step: Step, resume: dict[str, Any] | None) -> None:
        """Append a finished step. A model turn that asked for no tools is not: the run's
        end, which follows it, keeps it (one an ``output_schema`` repair follows shows from
        elsewhere only then), and a run resumed before its end asks the model again anyway
        (``resume.py``): one store call less a run."""
        if _is_answer(step, resume):
            return
        item = step.to_json()
        if resume is not None:
            item["resume"] = resume
        try:
            await self.store.append(STEPS_PREFIX + run_id, _encoded(item), ttl_s=self.ttl_s)
        except StoreUnavailable:
            log.error("step not checkpointed", extra={"run_id": run_id, "step": step.index})

    async def finish(self, run_id: str, result: RunResult) -> None:
        record = result.to_json()
        try:
            key = STATE_PREFIX + run_id
            if record["status"] == WAITING:  # it goes on later: keep what it was asked
                begun = await self.state(run_id)
                record["request"] = (begun or {}).get("request")
                record["waiting_since"] = round(self.clock(), 3)
            await self.store.put(key, _encoded(record), ttl_s=self.ttl_s)
        except StoreUnavailable:
            log.error("run's end not checkpointed", extra={"run_id": run_id})

    async def decide(self, run_id: str, decisions: dict[int, dict[str, Any]]) -> None:
        """Keep a person's answers to the calls of a paused run (by step); a call already
        decided (two answers at once) is a 409."""
        key = APPROVAL_PREFIX + run_id
        entry = await self.store.get(key)
        kept = json.loads(entry.value) if entry is not None else {}
        if any(str(step) in kept for step in decisions):
            raise Conflict(f"run {run_id}: this approval was already given")
        kept.update({str(step): decision for step, decision in decisions.items()})
        version = entry.version if entry is not None else 0
        if await self.store.put(key, _encoded(kept), ttl_s=self.ttl_s, version=version) is None:
            raise Conflict(f"run {run_id}: another approval came at the same time")

    async def decisions(self, run_id: str) -> dict[int, dict[str, Any]]:
        entry = await self.store.get(APPROVAL_PREFIX + run_id)
        kept = json.loads(entry.value) if entry is not None else {}
        return {int(step): decision for step, decision in kept.items()}

    async def steps(self, run_id: str) -> list[dict[str, Any]]:
        """The run's finished steps, in the order they finished (with their ``resume``)."""
        return [json.loads(item) for item in await self.store.items(STEPS_PREFIX + run_id)]

    async def state(self, run_id: str) -> dict[str, Any] | None:
        """The run's record; one that waited for approval too long, stopped (and kept so)."""
        entry = await self.store.get(STATE_PREFIX + run_id)
        if entry is None:
            return None
        state = dict(json.loads(entry.value))
        since = state.get("waiting_since")
        if (
            state["status"] == WAITING
            and isinstance(since, int | float)
            and since + self.approval_timeout_s <= self.clock()
        ):
            state.update(
                status="stopped",
                stop_reason="approval_timeout",
                answer=f"Stopped: no approval came within {self.approval_timeout_s:g} s.",
            )
            state.pop("request", None)
            try:
                key = STATE_PREFIX + run_id
                await self.store.put(key, _encoded(state), ttl_s=self.ttl_s, version=entry.version)
            except StoreUnavailable:
                log.error("run's approval timeout not recorded", extra={"run_id": run_id})
        return state

    async def view(self, run_id: str) -> dict[str, Any] | None:
        """What ``GET /runs/{id}`` answers: the result of a run that ended; else its status
        and the steps finished so far. None for a run not known (or long forgotten)."""
        state = await self.state(run_id)
        if state is None:
            return None
        if state["status"] not in (RUNNING, ACCEPTED):
            return {k: v for k, v in state.items() if k != "request"}
        steps = [
            {k: v for k, v in item.items() if k != "resume"} for item in await self.steps(run_id)
        ]
        return {
            "run_id": run_id,
            "status": state["status"],
            "started_at": state.get("started_at"),
            "steps": steps,
        }


def _is_answer(step: Step, resume: dict[str, Any] | None) -> bool:
    content = (resume or {}).get("content")
    return (
        step.kind == "model"
        and isinstance(content, list)
        and not any(block.get("type") == "tool_use" for block in content)
    )


def _encoded(value: Any) -> bytes:
    return json_text(value).encode("utf-8", "surrogatepass")
