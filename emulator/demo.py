"""``make demo``: the whole stack on the emulator, offline, answering a few tasks.

Every function of ``docker-compose.yml`` starts as a local process (on free ports, with a state
folder of its own, so a stack you already run is left alone); three tasks that need different
agents go to the orchestrator, each printed with its steps as they happen; then it all stops.
The gateway answers from its offline ``local`` model unless real keys are in the environment.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from pathlib import Path

from rich.console import Console

from emulator import client, render
from emulator.compose import load_project
from emulator.network import assign_addresses
from emulator.state import StateFolder
from emulator.supervisor import Supervisor
from shared.errors import AgentOrchestratorError

ROWS = [
    {"region": "north", "product": "tea", "amount": 120},
    {"region": "south", "product": "tea", "amount": 80},
    {"region": "north", "product": "coffee", "amount": 200},
]
TASKS: list[tuple[str, object]] = [
    ("What is 17 * 23 - 4?", None),
    ("Search the knowledge base for the circuit breaker", None),
    ("What is the total amount per region?", ROWS),
]


def run(console: Console) -> None:
    began = time.monotonic()
    project = load_project()
    addresses = assign_addresses(project.services.values(), any_port=True)
    with tempfile.TemporaryDirectory(prefix="agentorch-demo-") as folder:
        supervisor = Supervisor(
            project, addresses, StateFolder(Path(folder)), supervisor_pid=os.getpid()
        )
        try:
            seconds = supervisor.up()
            console.print(f"{len(addresses)} functions healthy in {seconds:.1f} s:", markup=False)
            for name, address in addresses.items():
                console.print(f"  {name:<22} {address.url}", markup=False)
            orchestrator = addresses[project.by_target("orchestrator").name].url
            for number, (task, data) in enumerate(TASKS, start=1):
                console.rule(f"task {number}: {task}")
                if data is not None:
                    console.print("data: " + json.dumps(data), markup=False)
                with render.StepProgress(console) as progress:
                    result = client.ask(orchestrator, task, data, on_event=progress)
                render.print_result(console, result)
                if number == 1:
                    first = time.monotonic() - began
                    console.print(f"(first answer {first:.1f} s after start)", markup=False)
        finally:
            supervisor.stop()
    console.print('\nstack stopped. Next: `make up`, then `agentorch ask "..."`.', markup=False)


def main() -> int:
    console = Console(highlight=False)
    try:
        run(console)
    except AgentOrchestratorError as exc:
        print(f"demo: {exc.message}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
