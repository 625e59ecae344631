"""The routes of runs that outlive a request (``checkpoints.py``, ``resume.py``):
``POST /`` answered ``202`` at once (``Prefer: respond-async``), ``GET /runs/{id}``, and
``POST /runs/{id}/resume`` (also what a redelivered event whose owner died comes to)."""

from __future__ import annotations

import asyncio
import dataclasses
from functools import partial
from typing import TYPE_CHECKING, Any

from functions.orchestrator.checkpoints import ACCEPTED, RUNNING, WAITING, check_run_id
from functions.orchestrator.loop import Progress, Task
from functions.orchestrator.run_store import StoreRuns
from functions.orchestrator.trace import RunResult
from shared.errors import BadRequest, Conflict, NotFound
from shared.http import Call, Reply
from shared.inbound import Inbound, require_object
from shared.logs import get_logger

if TYPE_CHECKING:
    from functions.orchestrator.service import OrchestratorService

log = get_logger("orchestrator.runs")

REPLAYED_HEADER = "x-run-replayed"
"""``true`` on the answer to a redelivered CloudEvent: the earlier delivery's run, not a new one."""
RUNS_PREFIX = "/runs/"
RUN_ROUTE = RUNS_PREFIX + "{id}"
RESUME_ROUTE = RUN_ROUTE + "/resume"
APPROVAL_SUFFIX = "/approval"
APPROVAL_ROUTE = RUN_ROUTE + APPROVAL_SUFFIX
MAX_NOTE_CHARS = 2000
APPROVAL_EVENT = "dev.agentorch.run.approval"
"""The CloudEvent type of a person's answer to a paused run."""
RESPOND_ASYNC = "respond-async"
"""``Prefer: respond-async`` (RFC 7240): answer 202 at once, the run going on."""


async def accept(service: OrchestratorService, task: Task, run_id: str, inbound: Inbound) -> Reply:
    """``202 Accepted`` with ``Location: /runs/{id}`` at once; the run goes on beside the
    answer (a stopping worker waits for it as for a sink delivery), its result to
    ``GET /runs/{id}`` and the sink. A busy session is still a 409 first."""
    turn = await service.claim(task)
    try:  # recorded before the answer, so that GET /runs/{id} knows it at once
        await service.journal.begin(run_id, inbound.data, status=ACCEPTED, only_new=True)
    except BaseException:
        if turn is not None:
            await turn.release()
        raise

    async def go_on() -> None:
        try:
            await service.run(task, run_id, inbound, None, turn)
        except Exception:
            log.exception("async run raised", extra={"run_id": run_id})
        finally:
            if service.sink is not None:
                await service.sink.settle(run_id)

    # Started now, not after the answer: an answer that could not be sent (the client left)
    # is never followed by ``after``, and the run would hold its session until the lease
    # ended. ``after`` still waits for it, so that a stopping worker does too.
    going = asyncio.ensure_future(go_on())

    async def after() -> None:
        await asyncio.shield(going)

    location = RUNS_PREFIX + run_id
    body = {"run_id": run_id, "status": ACCEPTED, "location": location}
    return Reply(body, status=202, headers={"location": location}, after=after)


async def resume(
    service: OrchestratorService,
    run_id: str,
    progress: Progress | None,
    *,
    approved: bool = False,
) -> RunResult:
    """Go on with ``run_id`` from its last checkpoint, here (``resume.py``); a run that
    ended answers its result (``replayed``), as one waiting for approval does unless it was
    just given (``approved``). Raises ``RunHeld`` while its owner lives."""
    state = await service.journal.state(run_id)
    if state is None:
        raise NotFound(f"no run {run_id!r} (never started, or forgotten)")
    going_on = (RUNNING, ACCEPTED, WAITING) if approved else (RUNNING, ACCEPTED)
    if state["status"] not in going_on:
        return dataclasses.replace(RunResult.from_json(state), replayed=True)
    task, _ = service.parse(state["request"])
    turn = await service.claim(task)
    try:
        result = await service.execute(task, run_id, progress, turn, resuming=True)
    finally:
        if turn is not None:
            await turn.release()
    if isinstance(service.runs, StoreRuns):
        await service.runs.keep(run_id, result)
    return result


async def get_run(service: OrchestratorService, call: Call) -> Reply:
    """``GET /runs/{id}``: a run's status and its steps so far; its result once it ended."""
    run_id = check_run_id(call.path.removeprefix(RUNS_PREFIX))
    view = await service.journal.view(run_id)
    if view is None:
        raise NotFound(f"no run {run_id!r} (never started here, or forgotten)")
    return Reply(view)


async def resume_run(service: OrchestratorService, call: Call) -> Reply:
    """``POST /runs/{id}/resume``: go on with a run whose owner stopped, here (409 while
    its owner lives; a run that ended answers its result)."""
    run_id = check_run_id(call.path.removeprefix(RUNS_PREFIX).removesuffix("/resume"))
    result = await resume(service, run_id, None)
    after = partial(service.sink.settle, run_id) if service.sink is not None else None
    headers = {REPLAYED_HEADER: "true"} if result.replayed else {}
    return Reply(result.to_json(), headers=headers, after=after)


async def approve_run(service: OrchestratorService, call: Call) -> Reply:
    """``POST /runs/{id}/approval`` ``{"approve": true|false, "note": "..."}``: a person's
    answer to the calls a paused run proposed; the run goes on here. Approved, the calls are
    made; refused, the model is told so (with the note) and goes on without them."""
    run_id = check_run_id(call.path.removeprefix(RUNS_PREFIX).removesuffix(APPROVAL_SUFFIX))
    result = await approve(service, run_id, require_object(call.inbound().data))
    after = partial(service.sink.settle, run_id) if service.sink is not None else None
    return Reply(result.to_json(), after=after)


async def approval_event(service: OrchestratorService, inbound: Inbound) -> Reply:
    """The same answer as a CloudEvent (``APPROVAL_EVENT``, ``{"run_id", "approve", "note"}``).
    Delivered again once the run went on, it is answered with the run as it is (acknowledged),
    not refused: a broker would send it again and again."""
    data = require_object(inbound.data)
    run_id = data.get("run_id")
    if not isinstance(run_id, str):
        raise BadRequest("run_id: the run waiting for approval (a string)")
    check_run_id(run_id)
    try:
        result = await approve(service, run_id, data)
    except Conflict:
        view = await service.journal.view(run_id)
        return Reply({**(view or {}), "replayed": True}, headers={REPLAYED_HEADER: "true"})
    after = partial(service.sink.settle, run_id) if service.sink is not None else None
    return Reply(result.to_json(), after=after)


async def approve(service: OrchestratorService, run_id: str, data: dict[str, Any]) -> RunResult:
    approve, note = data.get("approve"), data.get("note")
    if not isinstance(approve, bool):
        raise BadRequest("approve: must be true or false")
    if note is not None and (not isinstance(note, str) or len(note) > MAX_NOTE_CHARS):
        raise BadRequest(f"note: must be a string of at most {MAX_NOTE_CHARS} characters")
    state = await service.journal.state(run_id)
    if state is None:
        raise NotFound(f"no run {run_id!r} (never started, or forgotten)")
    if state["status"] != WAITING:
        raise Conflict(f"run {run_id} is {state['status']}, not waiting for approval")
    decision = {"approve": approve, "note": note}
    steps = [int(p["step"]) for p in state.get("pending_approval") or []]
    await service.journal.decide(run_id, dict.fromkeys(steps, decision))
    return await resume(service, run_id, None, approved=True)


def wants_async(data: Any, prefer: str | None) -> bool:
    """``"async": true`` in the task, or ``Prefer: respond-async``."""
    if isinstance(data, dict) and data.get("async") is True:
        return True
    wanted = (part.split(";")[0].strip().lower() for part in (prefer or "").split(","))
    return RESPOND_ASYNC in wanted
