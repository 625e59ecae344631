"""Issue 21's chaos proof, small: 10 runs on three orchestrator processes sharing a real
redis-server, orchestrators SIGKILLed and started again while the runs go, the events
delivered again to another instance when a delivery fails (``bench/chaos.py``; ``make
bench-chaos`` runs it with 100 runs)."""

from __future__ import annotations

import pytest

from tests.fakes.redis_server import require_redis_server

pytestmark = pytest.mark.processes


def test_every_run_completes_and_no_finished_call_runs_twice_while_instances_die() -> None:
    from bench import chaos  # aiohttp and the harness: not at every worker's collection

    require_redis_server()
    args = chaos.parse(
        ["--runs", "10", "--concurrency", "2", "--kill-every", "1", "--agent-delay", "0.5"]
    )
    args.give_up_after = 45.0
    figures = chaos.prove(args)
    assert figures["kills"] >= 2, figures
    assert figures["completed"] == 10 and figures["lost"] == 0 and figures["wrong"] == 0, figures
    assert figures["agent_calls"] >= 10 and figures["calls_without_key"] == 0, figures
    assert figures["duplicate_executions"] == 0, figures
