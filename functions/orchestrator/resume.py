"""Going on with a run from its checkpoints (``checkpoints.py``) on whichever instance resumes it.

The steps a run recorded rebuild where it was: each model turn that asked for tools (its whole
reply, kept under ``resume``) and the results of the calls it made. Agent steps are numbered
in the order their turn asked for them (turn ``m``'s call ``i`` is step ``m + 1 + i``), so the
calls of the last turn that have no finished step are the ones in flight when the run stopped:
they are made again, under the same step number and so the same ``Idempotency-Key``. A
finished call, failed or not, is never made again. A last model turn that asked for no tools
(an answer the run did not get to give) is dropped: the model is asked again, which has no
side effect. (A turn that repaired an answer invalid against ``output_schema`` is not rebuilt:
the model is asked again from before it.)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from functions.orchestrator.trace import Step, Usage


@dataclass
class Restored:
    steps: list[Step] = field(default_factory=list)
    """The finished steps kept, by index."""
    messages: list[dict[str, Any]] = field(default_factory=list)
    """The conversation after the task's message: assistant turns and tool results."""
    usage: Usage = field(default_factory=Usage)
    pending: list[tuple[int, dict[str, Any]]] = field(default_factory=list)
    """The last turn's calls to make again: ``(step index, tool_use block)``."""
    answered: list[tuple[int, dict[str, Any]]] = field(default_factory=list)
    """The last turn's calls that finished: ``(step index, tool_result block)``."""
    decisions: dict[int, dict[str, Any]] = field(default_factory=dict)
    """A person's answers to calls that needed approval, by step: ``{"approve", "note"}``."""


def restore(items: list[dict[str, Any]]) -> Restored:
    """Where the run that recorded ``items`` (``RunJournal.steps``) was."""
    by_index = {item["index"]: item for item in items}
    restored = Restored()
    index = 0
    while index in by_index:
        item = by_index[index]
        content = (item.get("resume") or {}).get("content")
        if item["kind"] != "model" or item.get("error") or not isinstance(content, list):
            break
        calls = [block for block in content if block.get("type") == "tool_use"]
        if not calls:
            break  # an answer never given: asked again
        restored.steps.append(_step(item))
        _count(restored.usage, item.get("outcome"))
        restored.messages.append({"role": "assistant", "content": content})
        results: list[tuple[int, dict[str, Any]]] = []
        for offset, call in enumerate(calls):
            at = index + 1 + offset
            done = by_index.get(at)
            result = (done or {}).get("resume", {}).get("result")
            if done is None or done["kind"] != "agent" or not isinstance(result, dict):
                restored.pending.append((at, call))
                continue
            restored.steps.append(_step(done))
            restored.usage.agent_calls += 1
            results.append((at, result))
        index += 1 + len(calls)
        if restored.pending:
            restored.answered = results
            break
        restored.messages.append({"role": "user", "content": [r for _, r in results]})
    return restored


def _step(item: dict[str, Any]) -> Step:
    return Step(**{k: v for k, v in item.items() if k != "resume"})


def _count(usage: Usage, outcome: Any) -> None:
    usage.model_calls += 1
    used = outcome.get("usage") if isinstance(outcome, dict) else None
    if isinstance(used, dict):
        usage.input_tokens += int(used.get("input_tokens") or 0)
        usage.output_tokens += int(used.get("output_tokens") or 0)
