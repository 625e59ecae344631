"""The agent loop: ask the model what to do, call the agents it chose, give their results back,
repeat until it answers or a budget runs out. Plain Python: no web framework, no HTTP here; the
model and the agents come in through their protocols, so a scripted fake model and fake agents
drive it in tests.

Budgets end a run cleanly. Steps and tokens are checked before each model call (and steps
before a turn's tool calls); wall-clock time bounds the whole run, cancelling what is in
flight. Either way the result is ``stopped`` with what is known so far, never an exception.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from functions.orchestrator import metrics, structured
from functions.orchestrator.agent_types import AgentCallError, Agents
from functions.orchestrator.agents import IDEMPOTENCY_KEY
from functions.orchestrator.budgets import Budget, LoopSettings
from functions.orchestrator.checkpoints import LeaseLost
from functions.orchestrator.model import Model, ModelCallError, ModelReply, StreamingModel
from functions.orchestrator.prompt import system_prompt, task_message
from functions.orchestrator.resume import Restored
from functions.orchestrator.run_end import log_run, result_text, stopped_answer
from functions.orchestrator.tools import InvalidArguments, TaskData, Tool, make_tool
from functions.orchestrator.trace import (
    RunResult,
    Status,
    Step,
    StepKind,
    StopReason,
    Usage,
    bounded,
)
from shared import telemetry
from shared.logs import get_logger
from shared.redact import redact
from shared.telemetry import genai

Progress = Callable[[str, dict[str, Any]], Awaitable[None]]
"""Receives ``step_started`` / ``step_finished`` events as the run goes, and ``text_delta``
(the model's text as it is generated) between a model step's two."""

Checkpoint = Callable[[Step, "dict[str, Any] | None"], Awaitable[None]]
"""Receives each step as it finishes, with what a resumed run needs to go on from it (the
model's whole reply, an agent's whole ``tool_result``): ``checkpoints.RunJournal.step``."""

log = get_logger("orchestrator.loop")
CANCELLED = "not finished: the run's time budget ran out"
AGENT_NAME = "orchestrator"
"""``gen_ai.agent.name`` of a run's ``invoke_agent`` span."""


@dataclass(frozen=True)
class Task:
    text: str
    budget: Budget
    data: TaskData | None = None
    agents: tuple[str, ...] | None = None
    """Only these agents may be used; None for all."""
    session_id: str | None = None
    """The session the task belongs to (``sessions.py``)."""
    history: tuple[dict[str, Any], ...] = ()
    """The session's earlier messages, shown to the model before the task."""
    output_schema: dict[str, Any] | None = None
    """The answer must be JSON valid against it (``structured.py``)."""


async def run_task(
    task: Task,
    *,
    run_id: str,
    model: Model,
    agents: Agents,
    settings: LoopSettings,
    progress: Progress | None = None,
    checkpoint: Checkpoint | None = None,
    restored: Restored | None = None,
    guard: Callable[[], None] | None = None,
) -> RunResult:
    """Run ``task`` to its end; the result carries the whole trace. ``restored``: go on from
    where an earlier run of it stopped (``resume.py``). ``guard``: called before each step
    starts; what it raises (``LeaseLost``: another instance owns the run) ends the run
    there, with no result."""
    run = _Run(task, run_id, model, agents, settings, progress)
    run.checkpoint = checkpoint
    run.guard = guard
    run.restored = restored
    return await run.execute()


class _Run:
    def __init__(
        self,
        task: Task,
        run_id: str,
        model: Model,
        agents: Agents,
        settings: LoopSettings,
        progress: Progress | None,
    ) -> None:
        self.task = task
        self.run_id = run_id
        self.model = model
        self.agents = agents
        self.settings = settings
        self.progress = progress
        self.checkpoint: Checkpoint | None = None
        self.guard: Callable[[], None] | None = None
        self.restored: Restored | None = None
        self.pending_approval: list[dict[str, Any]] | None = None
        self.steps: list[Step] = []
        self.open: dict[int, tuple[Step, float]] = {}
        """Steps under way, with when they began."""
        self.usage = Usage()
        self.tools: dict[str, Tool] = {}
        self.agent_notes: dict[str, str] = {}
        self.last_text = ""
        self.messages: list[dict[str, Any]] = []
        self.output: Any = None
        self.repaired = False
        self.unavailable = False
        self.ending: tuple[Status, StopReason, str | None] | None = None
        self.started = time.perf_counter()

    async def execute(self) -> RunResult:
        """The run, as one ``invoke_agent`` span: the root of the task's trace (or a child of
        its caller's), the parent of each model and agent call's."""
        attributes = {
            "gen_ai.operation.name": "invoke_agent",
            "gen_ai.agent.name": AGENT_NAME,
            "gen_ai.request.model": self.model.route,
            "agentorch.run_id": self.run_id,
        }
        with telemetry.span(f"invoke_agent {AGENT_NAME}", attributes=attributes) as span:
            genai.record_content(span, {"gen_ai.input.messages": self.task.text})
            result = await self._execute()
            span.update(
                {
                    "gen_ai.usage.input_tokens": result.usage.input_tokens,
                    "gen_ai.usage.output_tokens": result.usage.output_tokens,
                    "agentorch.status": result.status.value,
                    "agentorch.stop_reason": result.stop_reason.value,
                    "agentorch.steps": len(result.steps),
                }
            )
            if result.status is Status.FAILED:
                span.fail(result.stop_reason.value)
            genai.record_content(span, {"gen_ai.output.messages": result.answer})
            return result

    async def _execute(self) -> RunResult:
        clock = asyncio.timeout(self.task.budget.timeout_s)
        try:
            async with clock:
                await self._loop()
        except TimeoutError:
            if not clock.expired():
                raise
            self._end(Status.STOPPED, StopReason.TIMEOUT)
        except asyncio.CancelledError:  # its caller went away, or the worker is stopping
            log.warning(
                "run cancelled before it finished",
                extra={"run_id": self.run_id, "steps": len(self.steps)},
            )
            raise
        except LeaseLost:
            log.warning("run given up: its lease was lost", extra={"run_id": self.run_id})
            raise
        except Exception as exc:  # a bug must still answer with the trace so far
            log.exception("run raised", extra={"run_id": self.run_id})
            self._end(Status.FAILED, StopReason.INTERNAL_ERROR, f"internal error: {exc}")
        for step, began in list(self.open.values()):  # cut short by the time budget
            step.error = step.error or CANCELLED
            step.latency_ms = (time.perf_counter() - began) * 1000
            await self._finish(step)
        result = self._result()
        log_run(result)
        return result

    async def _loop(self) -> None:
        await self._discover_tools()
        system = system_prompt(list(self.tools.values()), self._left_out())
        definitions = [tool.definition() for tool in self.tools.values()]
        text = task_message(self.task.text, self.task.data, self.settings.max_data_chars)
        messages = self.messages
        messages += [*self.task.history, {"role": "user", "content": text}]
        if self.restored is not None and await self._go_on(self.restored):
            return
        budget = self.task.budget
        while True:
            if len(self.steps) >= budget.max_steps:
                return self._end(Status.STOPPED, StopReason.MAX_STEPS)
            if self.usage.tokens >= budget.max_tokens:
                return self._end(Status.STOPPED, StopReason.MAX_TOKENS)
            reply = await self._model_step(system, definitions, messages)
            if reply is None:
                return
            messages.append({"role": "assistant", "content": reply.content})
            calls = [b for b in reply.content if b.get("type") == "tool_use"]
            if not calls:
                if reply.stop_reason == "max_tokens":
                    return self._end(Status.STOPPED, StopReason.MAX_TOKENS)
                if self._needs_repair(messages):
                    continue
                return self._end(Status.COMPLETED, StopReason.END_TURN)
            if len(self.steps) + len(calls) > budget.max_steps:
                return self._end(Status.STOPPED, StopReason.MAX_STEPS)
            first = len(self.steps)
            if self._wait_for_approval([(first + i, call) for i, call in enumerate(calls)]):
                return
            messages.append({"role": "user", "content": await self._agent_steps(calls)})

    async def _go_on(self, restored: Restored) -> bool:
        """Take up a run where it stopped: its finished steps kept, the calls that were in
        flight made again under their own step numbers. Whether it waits for approval."""
        self.steps.extend(restored.steps)
        self.usage = restored.usage
        self.messages.extend(restored.messages)
        if not restored.pending or self._wait_for_approval(restored.pending):
            return bool(restored.pending)
        indexes = [at for at, _ in restored.pending]
        made = await self._agent_steps([call for _, call in restored.pending], indexes)
        results = restored.answered + list(zip(indexes, made, strict=True))
        results.sort(key=lambda pair: pair[0])
        self.messages.append({"role": "user", "content": [result for _, result in results]})
        return False

    def _wait_for_approval(self, calls: list[tuple[int, dict[str, Any]]]) -> bool:
        """Whether the run pauses (``waiting_approval``) before ``calls`` (``(step, tool_use
        block)``): one of them needs a person's approval not given yet."""
        decided = self.restored.decisions if self.restored is not None else {}
        waiting = [
            {"step": at, "tool": call.get("name"), "arguments": call.get("input")}
            for at, call in calls
            if call.get("name") in self.settings.approval_required and at not in decided
        ]
        if not waiting:
            return False
        self.pending_approval = waiting
        self._end(Status.WAITING_APPROVAL, StopReason.APPROVAL_REQUIRED)
        return True

    def _refused(self, index: int) -> str | None:
        """Why a person refused the call of step ``index``; None when it was not refused."""
        decision = self.restored.decisions.get(index) if self.restored is not None else None
        if decision is None or decision.get("approve"):
            return None
        note = decision.get("note")
        return "a person refused this call" + (f": {note}" if note else "")

    def _needs_repair(self, messages: list[dict[str, Any]]) -> bool:
        """With an output schema: whether the answer gets its one repair turn (its problem
        added to ``messages``); a second invalid answer ends the run failed."""
        schema = self.task.output_schema
        if schema is None:
            return False
        self.output, problem = structured.parsed(self.last_text, schema)
        if problem is None:
            return False
        if self.repaired:
            why = f"the answer does not match output_schema after a repair turn: {problem}"
            self._end(Status.FAILED, StopReason.INVALID_OUTPUT, why)
            return False
        self.repaired = True
        messages.append(structured.repair_message(problem))
        return True

    async def _discover_tools(self) -> None:
        statuses = await self.agents.statuses(self.task.agents)
        for name, status in statuses.items():
            if status.spec is None:
                why = "not configured: " if status.not_configured else ""
                self.agent_notes[name] = f"left out: {why}{status.reason}"
                continue
            self.tools[name] = make_tool(status.spec, self.task.data)
            self.agent_notes[name] = "offered"

    def _left_out(self) -> dict[str, str]:
        return {
            name: note.removeprefix("left out: ")
            for name, note in self.agent_notes.items()
            if note != "offered"
        }

    # -- steps -----------------------------------------------------------------------------

    async def _start(
        self,
        kind: StepKind,
        name: str,
        payload: Any,
        tool_use_id: str | None,
        index: int | None = None,
    ) -> Step:
        if self.guard is not None:
            self.guard()
        index = len(self.steps) if index is None else index
        step = Step(index, kind, name, bounded(payload), tool_use_id=tool_use_id)
        self.steps.append(step)
        self.open[step.index] = (step, time.perf_counter())
        if self.progress is not None:
            await self.progress("step_started", step.started_json())
        return step

    async def _finish(self, step: Step, resume: dict[str, Any] | None = None) -> None:
        self.open.pop(step.index, None)
        if self.checkpoint is not None:
            await self.checkpoint(step, resume)
        if self.progress is not None:
            await self.progress("step_finished", step.to_json())

    async def _model_step(
        self, system: str, tools: list[dict[str, Any]], messages: list[dict[str, Any]]
    ) -> ModelReply | None:
        request: dict[str, Any] = {
            "max_tokens": self._call_tokens(),
            "system": system,
            "messages": messages,
        }
        if tools:
            request["tools"] = tools
        if self.task.output_schema is not None:
            request["output_config"] = structured.output_config(self.task.output_schema)
        summary = {"messages": len(messages), "tools": list(self.tools), "last": messages[-1]}
        step = await self._start("model", self.model.route, summary, None)
        route = self.model.route
        attributes = genai.chat_request(route, request)
        with telemetry.span(f"chat {route}", kind="client", attributes=attributes) as span:
            genai.record_content(
                span, {"gen_ai.system_instructions": system, "gen_ai.input.messages": messages}
            )
            reply, error_class = await self._model_call(step, request)
            if reply is None:
                span.fail(error_class or "ModelCallError")
            else:
                _describe_reply(span, reply)
        # The checkpoint keeps the reply's content: a resumed run goes on from it (resume.py).
        await self._finish(step, None if reply is None else {"content": reply.content})
        if reply is None:
            self._end(Status.FAILED, StopReason.GATEWAY_ERROR, step.error)
        return reply

    async def _model_call(
        self, step: Step, request: dict[str, Any]
    ) -> tuple[ModelReply | None, str | None]:
        """The model's reply, its usage counted and ``step`` filled in; or None and the class
        of the error that ended it."""
        began = time.perf_counter()
        try:
            timeout_s = min(self.settings.model_timeout_s, self._time_left())
            reply = await self._call_model(step, request, timeout_s)
        except ModelCallError as exc:
            # The gateway's text (an older one could leak): scrubbed before the run keeps it.
            step.error, step.attempts = redact(exc.error.message), exc.attempts
            error_class = type(exc.error).__name__
            self._log_failed(step, error_class)
            self.unavailable = exc.error.retryable
            step.latency_ms = (time.perf_counter() - began) * 1000
            return None, error_class
        step.latency_ms = (time.perf_counter() - began) * 1000
        step.attempts, step.provider = reply.attempts, reply.provider
        self.usage.model_calls += 1
        self.usage.input_tokens += reply.input_tokens
        self.usage.output_tokens += reply.output_tokens
        text = "\n".join(b.get("text", "") for b in reply.content if b.get("type") == "text")
        if text.strip():
            self.last_text = text.strip()
        calls = [
            {"id": b.get("id"), "name": b.get("name"), "input": b.get("input")}
            for b in reply.content
            if b.get("type") == "tool_use"
        ]
        step.outcome = bounded(
            {
                "stop_reason": reply.stop_reason,
                "text": text,
                "tool_calls": calls,
                "usage": {"input_tokens": reply.input_tokens, "output_tokens": reply.output_tokens},
            }
        )
        return reply, None

    async def _call_model(
        self, step: Step, request: dict[str, Any], timeout_s: float
    ) -> ModelReply:
        """The model's reply; in a streamed run, its text passed on as ``text_delta`` events
        as it is generated (``StreamingModel``)."""
        progress = self.progress
        if progress is None or not isinstance(self.model, StreamingModel):
            return await self.model.create(request, timeout_s=timeout_s)

        async def on_text(text: str) -> None:
            await progress("text_delta", {"index": step.index, "text": text})

        return await self.model.stream(request, timeout_s=timeout_s, on_text=on_text)

    def _call_tokens(self) -> int:
        left = self.task.budget.max_tokens - self.usage.tokens
        return max(1, min(self.settings.max_tokens_per_call, left))

    async def _agent_steps(
        self, calls: list[dict[str, Any]], indexes: list[int] | None = None
    ) -> list[dict[str, Any]]:
        """The turn's calls; step numbers follow the model's step in the calls' order
        (``indexes``: the numbers of calls made again, ``resume.py``)."""
        first = len(self.steps)
        at = indexes or list(range(first, first + len(calls)))
        if len(calls) == 1:  # the usual turn: no tasks to make and gather
            return [await self._agent_step(calls[0], at[0])]
        limit = asyncio.Semaphore(self.settings.max_parallel)

        async def one(block: dict[str, Any], index: int) -> dict[str, Any]:
            async with limit:
                return await self._agent_step(block, index)

        return list(await asyncio.gather(*(one(b, i) for b, i in zip(calls, at, strict=True))))

    async def _agent_step(self, block: dict[str, Any], index: int) -> dict[str, Any]:
        name, use_id = str(block.get("name")), str(block.get("id"))
        step = await self._start("agent", name, block.get("input"), use_id, index)
        attributes = {
            "gen_ai.operation.name": "execute_tool",
            "gen_ai.tool.name": name,
            "gen_ai.tool.call.id": use_id,
            "gen_ai.tool.type": "extension",  # an agent: a service the orchestrator calls
        }
        key = IDEMPOTENCY_KEY.set(f"{self.run_id}:{index}")  # sent with the call (resume.py)
        try:
            with telemetry.span(f"execute_tool {name}", attributes=attributes) as span:
                genai.record_content(span, {"gen_ai.tool.call.arguments": block.get("input")})
                content, error_class = await self._agent_call(step, name, block.get("input"))
                if error_class is not None:
                    span.fail(error_class)
                genai.record_content(span, {"gen_ai.tool.call.result": content})
        finally:
            IDEMPOTENCY_KEY.reset(key)
        result: dict[str, Any] = {"type": "tool_result", "tool_use_id": use_id, "content": content}
        if error_class is not None:
            result["is_error"] = True
        await self._finish(step, {"result": result})
        return result

    async def _agent_call(self, step: Step, name: str, arguments: Any) -> tuple[str, str | None]:
        """What goes back to the model, with ``step`` filled in; and the class of the error
        when the call failed."""
        began = time.perf_counter()
        content = self._refusal(name)
        error_class: str | None = "ToolNotAvailable"
        tool = self.tools.get(name)
        refused = self._refused(step.index)
        if refused is not None:
            content, tool = refused, None
        if tool is not None:
            try:
                prepared = tool.prepare(arguments, self.task.data)
                self.usage.agent_calls += 1
                answer = await self.agents.call(name, prepared, timeout_s=self._time_left())
            except InvalidArguments as exc:
                content, error_class = str(exc), type(exc).__name__
            except AgentCallError as exc:
                content, step.attempts, error_class = exc.message, exc.attempts, type(exc).__name__
            else:
                step.attempts, error_class = answer.attempts, None
                step.outcome = bounded(answer.result)
                content = result_text(answer.result, self.settings.max_result_chars)
        # A tool the model made up is not a label: only the agents this run knows are.
        agent = name if name in self.agent_notes else "unknown"
        metrics.AGENT_CALLS.labels(agent, error_class or "ok").inc()
        if error_class is not None:
            content = step.error = redact(content)  # to the trace, the sink and the model
            self._log_failed(step)
        step.latency_ms = (time.perf_counter() - began) * 1000
        return content, error_class

    def _log_failed(self, step: Step, error_class: str | None = None) -> None:
        fields = {
            "run_id": self.run_id,
            "step": step.index,
            "kind": step.kind,
            "step_name": step.name,
        }
        if error_class:
            fields["error_class"] = error_class
        log.warning(f"{step.kind} step failed", extra={**fields, "error": step.error})

    def _refusal(self, name: str) -> str:
        known = ", ".join(self.tools) or "none"
        if name in self.agent_notes:
            return f"tool {name} is not available now ({self.agent_notes[name]}); use: {known}"
        return f"there is no tool named {name!r}; the tools are: {known}"

    def _time_left(self) -> float:
        """The run's time left, plus a margin: the run's own budget must fire first, so that
        a call cut by it is reported as the run's timeout, not as the call's failure."""
        spent = time.perf_counter() - self.started
        return max(0.001, self.task.budget.timeout_s - spent) + 0.5

    # -- the end ---------------------------------------------------------------------------

    def _end(self, status: Status, reason: StopReason, error: str | None = None) -> None:
        if self.ending is None:
            self.ending = (status, reason, error)

    def _result(self) -> RunResult:
        status, reason, error = self.ending or (Status.FAILED, StopReason.INTERNAL_ERROR, None)
        return RunResult(
            trace_id=telemetry.trace_id(),
            run_id=self.run_id,
            status=status,
            answer=self._answer(status, reason, error),
            stop_reason=reason,
            steps=sorted(self.steps, key=lambda step: step.index),
            usage=self.usage,
            duration_ms=(time.perf_counter() - self.started) * 1000,
            agents=self.agent_notes,
            error=error,
            unavailable=self.unavailable,
            messages=self.messages[len(self.task.history) :],
            output=self.output if status is Status.COMPLETED else None,
            pending_approval=self.pending_approval,
        )

    def _answer(self, status: Status, reason: StopReason, error: str | None) -> str:
        if status is Status.COMPLETED:
            return self.last_text
        return stopped_answer(reason, self.task.budget, error, self.last_text, self.steps)


def _describe_reply(span: telemetry.Span, reply: ModelReply) -> None:
    """A model call's answer on its ``chat`` span (the GenAI conventions' response part)."""
    if not span.recording:
        return
    span.update(
        {
            "gen_ai.provider.name": genai.provider_name(reply.provider),
            "gen_ai.response.model": reply.model,
            "gen_ai.response.finish_reasons": [reply.stop_reason],
            "gen_ai.usage.input_tokens": reply.input_tokens,
            "gen_ai.usage.output_tokens": reply.output_tokens,
            "agentorch.attempts": reply.attempts,
        }
    )
    genai.record_content(
        span, {"gen_ai.output.messages": [{"role": "assistant", "content": reply.content}]}
    )
