"""What ``agentorch`` prints: live steps, the answer with its steps table, health and status.

On a terminal a run shows a spinner with the step in progress; piped, each step is one plain
line, so logs and CI output stay readable.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

from rich.console import Console
from rich.status import Status
from rich.table import Table
from rich.text import Text

from emulator.client import Health

INPUT_WIDTH = 48


def brief(value: Any, width: int = INPUT_WIDTH) -> str:
    """A value on one line, cut to ``width``."""
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"


def input_text(step: Mapping[str, Any], width: int = INPUT_WIDTH) -> str:
    """An agent's arguments; for a model call, the last message it was given."""
    value = step.get("input", "")
    if step.get("kind") == "model" and isinstance(value, dict):
        last = value.get("last")
        value = last.get("content", last) if isinstance(last, dict) else value
    return brief(value, width)


def outcome_text(step: Mapping[str, Any], width: int = INPUT_WIDTH) -> str:
    """An agent's result; for a model call, the tools it asked for or what it said."""
    if step.get("error"):
        error = step["error"]
        message = error.get("message", error) if isinstance(error, dict) else error
        return "error: " + brief(message, width)
    outcome = step.get("outcome", "")
    if isinstance(outcome, dict) and step.get("kind") == "model":
        calls = outcome.get("tool_calls") or []
        if calls:
            return "→ " + ", ".join(f"{c.get('name')} {brief(c.get('input'), 32)}" for c in calls)
        return brief(outcome.get("text", outcome), width)
    if isinstance(outcome, dict) and "result" in outcome:
        return brief(outcome["result"], width)
    return brief(outcome, width)


class StepProgress:
    """Receives the orchestrator's events and shows them as they come."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self._status: Status | None = None

    def __enter__(self) -> StepProgress:
        if self.console.is_terminal:
            self._status = self.console.status("sending the task…")
            self._status.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._status is not None:
            self._status.stop()

    def __call__(self, event: str, data: dict[str, Any]) -> None:
        label = f"{data.get('kind', 'step')} {data.get('name', '')}".strip()
        number = int(data.get("index", 0)) + 1 if "index" in data else "·"
        if event == "step_started":
            line = f"step {number}: {label} ← {input_text(data)}"
            if self._status is not None:
                self._status.update(line)
            else:
                self.console.print(line, markup=False, highlight=False)
        elif event == "step_finished":
            mark = "✗" if data.get("error") else "✓"
            line = f"step {number}: {label} {mark} {outcome_text(data)}"
            self.console.print(line, markup=False, highlight=False)


def print_result(console: Console, result: Mapping[str, Any]) -> None:
    status = result.get("status", "?")
    answer = result.get("answer") or "(no answer)"
    console.print()
    console.print(Text("answer: ", style="bold") + Text(str(answer)))
    if status != "completed":
        reason = result.get("stop_reason") or ""
        console.print(Text(f"status: {status} {reason}".rstrip(), style="yellow"))
    steps = list(result.get("steps") or [])
    if steps:
        console.print(steps_table(steps))
    console.print(totals(result), markup=False, highlight=False)
    if result.get("trace_id"):  # tracing on (OTEL_*): find the run in Jaeger, Tempo...
        console.print(f"trace: {result['trace_id']}", markup=False, highlight=False)


def steps_table(steps: Iterable[Mapping[str, Any]]) -> Table:
    table = Table(show_edge=False, pad_edge=False, header_style="bold")
    for column in ("#", "agent", "input", "outcome", "provider"):
        table.add_column(column, overflow="fold")
    table.add_column("ms", justify="right")
    for number, step in enumerate(steps, start=1):
        name = str(step.get("name", ""))
        agent = name if step.get("kind") != "model" else f"model:{name}"
        latency = step.get("latency_ms")
        cells = (
            str(number),
            agent,
            input_text(step, 32),
            outcome_text(step, 40),
            str(step.get("provider") or ""),
            f"{latency:.0f}" if isinstance(latency, int | float) else "",
        )
        table.add_row(*map(Text, cells))  # Text: "[local model]" is not markup
    return table


def totals(result: Mapping[str, Any]) -> str:
    usage = result.get("usage") or {}
    parts = [
        f"{usage.get('model_calls', 0)} model calls",
        f"{usage.get('agent_calls', 0)} agent calls",
        f"{usage.get('input_tokens', 0)} in / {usage.get('output_tokens', 0)} out tokens",
    ]
    if result.get("duration_ms") is not None:
        parts.append(f"{float(result['duration_ms']):.0f} ms")
    return "total: " + ", ".join(parts)


def health_table(rows: Iterable[Health]) -> Table:
    table = Table(show_edge=False, pad_edge=False, header_style="bold")
    for column in ("service", "url", "health", "ms"):
        table.add_column(column)
    for row in rows:
        mark = Text("healthy", style="green") if row.healthy else Text(row.detail, style="red")
        ms = f"{row.latency_ms:.0f}" if row.latency_ms is not None else ""
        table.add_row(Text(row.service), Text(row.url), mark, ms)
    return table


def providers_table(deployments: Iterable[Mapping[str, Any]]) -> Table:
    table = Table(show_edge=False, pad_edge=False, header_style="bold")
    for column in ("deployment", "provider", "configured", "circuit", "ok", "failed", "last error"):
        table.add_column(column, overflow="fold")
    for item in deployments:
        cells = (
            str(item.get("name", "")),
            str(item.get("provider", "")),
            "yes" if item.get("configured") else "no",
            str(item.get("circuit", "")),
            str(item.get("successes", "")),
            str(item.get("failures", "")),
            brief(item.get("last_error") or "", 40),
        )
        table.add_row(*map(Text, cells))
    return table


def status_table(rows: Iterable[tuple[str, str, str, str, str]]) -> Table:
    table = Table(show_edge=False, pad_edge=False, header_style="bold")
    for column in ("service", "url", "pid", "state", "health"):
        table.add_column(column)
    for row in rows:
        table.add_row(*map(Text, row))
    return table
