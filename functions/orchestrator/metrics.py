"""The orchestrator's own Prometheus metrics: per task and per agent call (``/metrics``)."""

from __future__ import annotations

from shared.metrics import Counter, Histogram

TASKS = Counter(
    "orchestrator_tasks_total",
    "Runs ended, by status and stop reason.",
    ["status", "stop_reason"],
)
TASK_STEPS = Histogram(
    "orchestrator_task_steps",
    "Steps (model and agent calls) per run.",
    [],
    buckets=(1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 64),
)
TASK_TOKENS = Histogram(
    "orchestrator_task_tokens",
    "Tokens per run, by type (input or output).",
    ["token_type"],
    buckets=(16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576),
)
TASK_DURATION = Histogram(
    "orchestrator_task_duration_seconds",
    "Wall time of a run.",
    [],
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600),
)
AGENT_CALLS = Counter(
    "orchestrator_agent_calls_total",
    "Calls to agents, by agent and outcome (ok, or the class of the error).",
    ["agent", "outcome"],
)
