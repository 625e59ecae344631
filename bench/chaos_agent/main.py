"""The chaos proof's calculator (``bench/chaos.py``): the real calculator agent, served by
``python -m shared.serve --source bench/chaos_agent/main.py --target counted``, that counts what
it receives and what it executes, by ``Idempotency-Key``.

``POST /`` is the calculator's own (``shared.agent``, which honours ``Idempotency-Key``); each
execution of its ``run`` waits ``CHAOS_AGENT_DELAY_S`` first (so that instances are killed with
calls in flight) and is counted under the call's key. ``GET /counts`` answers
``{"received": {key: n}, "executed": {key: n}}``: a key executed twice is a duplicate.
"""

from __future__ import annotations

import contextvars
import dataclasses
import os
import time
from collections import Counter

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from functions.agents.calculator.agent import SPEC, CalculatorInput
from shared.agent import AgentResult, agent_app
from shared.entry import http
from shared.idempotency import HEADER

DELAY_S = float(os.environ.get("CHAOS_AGENT_DELAY_S", "0.2"))
KEY: contextvars.ContextVar[str] = contextvars.ContextVar("key", default="")
received: Counter[str] = Counter()
executed: Counter[str] = Counter()


def counted_run(agent_input: CalculatorInput) -> AgentResult:
    time.sleep(DELAY_S)  # on the agent's worker thread, as a slow side effect would be
    executed[KEY.get()] += 1
    result = SPEC.run(agent_input)
    assert isinstance(result, AgentResult)
    return result


_app = agent_app(dataclasses.replace(SPEC, run=counted_run))


@http
async def counted(request: Request) -> Response:
    if request.method == "GET" and request.url.path == "/counts":
        return JSONResponse({"received": received, "executed": executed})
    key = request.headers.get(HEADER, "")
    if request.method == "POST" and request.url.path == "/":
        received[key] += 1
    KEY.set(key)  # copied into the worker thread that runs counted_run
    return await _app(request)
