"""The life cycle commands: ``up`` (foreground or ``-d``), ``down``, ``status``, ``restart``.

``up`` runs the supervisor in this process; ``up -d`` starts the same ``up`` as a detached
process (its own session, output in ``.agentorch/supervisor.log``) and returns once the stack
is healthy or has failed. ``down`` asks the supervisor to stop (SIGTERM) and then kills any
process group it left behind, so that nothing survives it.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from types import FrameType
from typing import Any

from emulator import reload
from emulator.compose import REPO_ROOT, Project
from emulator.errors import NotRunning, StartFailed
from emulator.logs import Prefixer
from emulator.network import Address, dns_table, require_free
from emulator.process import health_answer, signal_group
from emulator.state import ServiceState, StackState, StateFolder, alive, group_alive
from emulator.supervisor import Supervisor

DETACH_TIMEOUT_S = 120.0
DOWN_TIMEOUT_S = 20.0
POLL_S = 0.05
Handler = Callable[[int, FrameType | None], Any] | int | None


@dataclass
class UpOptions:
    reload: bool = False
    start_timeout_s: float | None = None
    quiet: bool = False
    """Do not echo the services' output (the detached supervisor: it is in the log files)."""


def running_state(folder: StateFolder) -> StackState | None:
    """The state of a stack whose supervisor still runs, else None."""
    state = folder.read()
    return state if state is not None and alive(state.supervisor_pid) else None


def service_alive(service: ServiceState) -> bool:
    """Whether the service's process, or anything left in its process group, still runs."""
    pid = service.pid
    return pid is not None and pid > 0 and (alive(pid) or group_alive(pid))


def orphans(state: StackState) -> list[str]:
    """Services that still run though their supervisor is gone (it was killed)."""
    if alive(state.supervisor_pid):
        return []
    return [name for name, service in state.services.items() if service_alive(service)]


def live_state(folder: StateFolder) -> StackState | None:
    """The recorded stack while its supervisor or any of its services still runs, else None."""
    state = folder.read()
    if state is None:
        return None
    return state if alive(state.supervisor_pid) or orphans(state) else None


def refuse_second_stack(folder: StateFolder) -> None:
    state = live_state(folder)
    if state is not None:
        whose = (
            f"supervisor PID {state.supervisor_pid}"
            if alive(state.supervisor_pid)
            else f"its supervisor is gone, {len(orphans(state))} services still run"
        )
        raise StartFailed(
            f"a stack already runs from {folder.root} ({whose}): "
            "`agentorch down` first, or pass another --state-dir"
        )


def up(
    project: Project,
    addresses: Mapping[str, Address],
    folder: StateFolder,
    options: UpOptions,
    say: Callable[[str], None],
) -> None:
    """Start the stack here and supervise it until Ctrl-C, SIGTERM (``down``) or a failure."""
    refuse_second_stack(folder)
    require_free(addresses)
    prefixer = Prefixer(project.services, sys.stdout, color=sys.stdout.isatty())
    supervisor = Supervisor(
        project,
        addresses,
        folder,
        supervisor_pid=os.getpid(),
        echo=None if options.quiet else prefixer.line,
        start_timeout_s=options.start_timeout_s,
    )
    previous = _route_signals(supervisor)
    try:
        for name, url in dns_table(supervisor.order, addresses):
            say(f"{name:<22} {url}")
        seconds = supervisor.up()
        say(f"all {len(supervisor.running)} services healthy in {seconds:.2f} s; Ctrl-C stops them")
        watch = (
            (lambda: reload.watch(project, supervisor.request_restart)) if options.reload else None
        )
        supervisor.serve(watch)
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    folder.clear()  # a failed start-up keeps its state: `up -d` reads the error from it


def _route_signals(supervisor: Supervisor) -> dict[signal.Signals, Handler]:
    def stop(signum: int, frame: FrameType | None) -> None:
        supervisor.request_stop()

    def requests(signum: int, frame: FrameType | None) -> None:
        supervisor.events.put(("requests", ""))

    previous: dict[signal.Signals, Handler] = {}
    for signum, handler in (
        (signal.SIGINT, stop),
        (signal.SIGTERM, stop),
        (signal.SIGUSR1, requests),
    ):
        previous[signum] = signal.signal(signum, handler)
    return previous


def up_detached(
    cli_args: Sequence[str],
    addresses: Mapping[str, Address],
    folder: StateFolder,
    timeout_s: float,
) -> StackState:
    """Start ``agentorch <cli_args> up`` in the background; its state once healthy."""
    refuse_second_stack(folder)
    require_free(addresses)  # here too, so a taken port fails before anything is started
    folder.prepare()
    folder.clear()
    with (folder.root / "supervisor.log").open("wb") as log:
        child = subprocess.Popen(
            [sys.executable, "-m", "emulator.cli", *cli_args],
            cwd=REPO_ROOT,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        state = folder.read()
        if state is not None and state.supervisor_pid == child.pid:
            if state.status == "running":
                return state
            if state.status in ("failed", "stopped"):
                child.wait(timeout=DOWN_TIMEOUT_S)
                folder.clear()
                raise StartFailed(state.error or "the stack stopped while starting")
        if child.poll() is not None:
            tail = (folder.root / "supervisor.log").read_text(errors="replace").strip()
            raise StartFailed(tail.splitlines()[-1] if tail else "the supervisor exited at once")
        time.sleep(POLL_S)  # another process's progress: its state file is the only signal
    down(folder)
    raise StartFailed(f"the stack was not healthy within {timeout_s:g} s; it was stopped")


def down(folder: StateFolder, timeout_s: float = DOWN_TIMEOUT_S) -> list[str]:
    """Stop the stack; the names of the services that were still running."""
    state = folder.read()
    if state is None:
        return []
    stopped = [name for name, s in state.services.items() if service_alive(s)]
    if alive(state.supervisor_pid):
        os.kill(state.supervisor_pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout_s
        while alive(state.supervisor_pid) and time.monotonic() < deadline:
            time.sleep(POLL_S)  # a process that is not our child: no wait() for it
    for service in state.services.values():
        if service.pid and group_alive(service.pid):
            signal_group(service.pid, signal.SIGKILL)  # whatever a dead supervisor left
    if alive(state.supervisor_pid):
        signal_group(state.supervisor_pid, signal.SIGKILL)
    folder.clear()
    return stopped


def status_rows(state: StackState) -> list[tuple[str, str, str, str, str]]:
    rows = []
    for name, service in state.services.items():
        pid = str(service.pid) if service_alive(service) else "-"
        answer = health_answer(f"{service.url}/health") if pid != "-" else None
        if answer is None:
            health = "unreachable"
        elif not answer.from_instance(service.instance or None):
            health = f"answers {answer.status}, but not from this process"
        else:
            health = "healthy" if answer.healthy else f"answers {answer.status}"
        state_text = service.state + (f" ({service.restarts} restarts)" if service.restarts else "")
        rows.append((name, service.url, pid, state_text, health))
    return rows


def restart(folder: StateFolder, service: str, timeout_s: float) -> StackState:
    """Ask the running supervisor to restart ``service``; the state once it is healthy again."""
    state = running_state(folder)
    if state is None:
        raise NotRunning(f"no stack runs from {folder.root}: start it with `agentorch up -d`")
    if service not in state.services:
        raise NotRunning(f"the stack has no service {service!r} ({', '.join(state.services)})")
    before = state.services[service].restarts
    folder.request_restart(service, state.supervisor_pid)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        current = folder.read()
        if current is None:
            raise NotRunning("the stack stopped while the service was restarting")
        now = current.services[service]
        if now.restarts > before and now.state == "healthy":
            return current
        if now.restarts > before and now.state in ("exited", "unhealthy"):
            raise StartFailed(
                f"{service} did not come back: {now.state}; `agentorch logs {service}`"
            )
        time.sleep(POLL_S)  # the supervisor reports through its state file
    raise StartFailed(f"{service} was not healthy again within {timeout_s:g} s")
