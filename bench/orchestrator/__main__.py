"""``python -m bench.orchestrator``: the benchmark's command line, and the entry point of its
own subprocesses (``fakes PORT DELAY``, ``in-process URL TASKS SIZE``)."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

import bench.orchestrator
from bench.orchestrator.fakes import serve_fakes
from bench.orchestrator.in_process import in_process, in_process_cpu
from bench.orchestrator.load import held_at_once, model_clients, overhead
from bench.orchestrator.processes import (
    cold_start_s,
    import_seconds,
    start_fakes,
    start_orchestrator,
)
from bench.orchestrator.report import HEADING, render
from bench.results import write_under_heading
from bench.tools import run, stop


def measure(args: argparse.Namespace) -> dict[str, Any]:
    measured: dict[str, Any] = {}
    instant, instant_url = start_fakes(0.0)
    try:
        measured["start_s"] = cold_start_s(instant_url)
        orchestrator, url = start_orchestrator(instant_url)
        try:
            measured["overhead"] = run(overhead(url, args.overhead_tasks))
        finally:
            stop(orchestrator)
        measured["clients"] = run(model_clients(instant_url, 300))
        measured["in_process"] = in_process_cpu(instant_url)
    finally:
        stop(instant)
    measured["imports"] = {m: import_seconds(m) for m in ("anthropic", "shared.aio")}
    bursts = [held_at_once(args.tasks, 1.0) for _ in range(args.runs)]
    measured["cold"] = [cold for cold, _ in bursts]
    measured["warm"] = [warm for _, warm in bursts]
    # The same load with a slower model: if the 1 s figure is short of ideal because the
    # machine's CPU is spent (not because tasks wait on each other), this one is near ideal.
    measured["slower"] = held_at_once(args.tasks, 5.0)
    return measured


def main() -> None:
    parser = argparse.ArgumentParser(
        prog="python -m bench.orchestrator",
        description=(bench.orchestrator.__doc__ or "").split("\n")[0],
    )
    parser.add_argument("--tasks", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=3, help="instances for the 1 s bursts")
    parser.add_argument("--overhead-tasks", type=int, default=300)
    parser.add_argument("--no-write", action="store_true")
    parser.add_argument(
        "--profile",
        action="store_true",
        help="only the in-process CPU per task (the steadiest figure on a shared machine)",
    )
    args = parser.parse_args()
    if args.profile:
        fakes, url = start_fakes(0.0)
        try:
            print(json.dumps(in_process_cpu(url)))
        finally:
            stop(fakes)
        return
    section = render(measure(args))
    print(section)
    if not args.no_write:
        write_under_heading(section, HEADING)


if __name__ == "__main__":
    if sys.argv[1:2] == ["fakes"]:
        run(serve_fakes(int(sys.argv[2]), float(sys.argv[3])))
    elif sys.argv[1:2] == ["in-process"]:
        measured = run(in_process(sys.argv[2], int(sys.argv[3]), int(sys.argv[4])))
        print(json.dumps(measured))
    else:
        main()
