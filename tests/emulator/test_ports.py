"""A port another server holds (issue 15, item 17): ``up`` fails at once naming the port and
the flags; a foreign answer to a health check is not taken for ours; ``--any-port`` still
works; ``status`` sees services whose supervisor was killed."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from emulator.compose import load_project
from emulator.errors import StartFailed
from emulator.network import Address, free_port
from emulator.stack import down, service_alive
from emulator.state import ServiceState, StackState, StateFolder, alive
from emulator.supervisor import Supervisor
from tests.emulator.support import agentorch as run_cli
from tests.emulator.support import group_alive, probe_service, write_compose
from tests.served import ServedApp
from tests.waiting import wait_until

pytestmark = pytest.mark.processes

UP_TIMEOUT_S = 60.0


def agentorch(compose: Path, state: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return run_cli("--file", str(compose), "--state-dir", str(state), *args)


@pytest.fixture
def listener() -> Iterator[int]:
    """A port held by a plain listening socket (another stack, as far as we know)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield int(sock.getsockname()[1])


async def foreign_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """Another stack's function: 200 ``{"status":"ok"}`` to anything, and not our token."""
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b'{"status":"ok"}'})


@pytest.fixture
def foreign() -> Iterator[ServedApp]:
    served = ServedApp(foreign_app)
    try:
        yield served
    finally:
        served.stop()


@pytest.fixture
def stacks(tmp_path: Path) -> Iterator[list[Path]]:
    """State folders whose stacks are brought down after the test, whatever it did."""
    made: list[Path] = []
    yield made
    for state in made:
        agentorch(tmp_path / "docker-compose.yml", state, "down")


def test_up_fails_at_once_naming_the_taken_port_and_the_flags(
    tmp_path: Path, listener: int
) -> None:
    compose = write_compose(tmp_path, {"probe": probe_service(listener)})
    for detach in (["-d"], []):
        began = time.monotonic()
        done = agentorch(compose, tmp_path / "state", "up", *detach)
        took = time.monotonic() - began
        assert done.returncode == 1, done.stdout + done.stderr
        [line] = done.stderr.strip().splitlines()
        assert f"probe: port {listener} on 127.0.0.1 is in use" in line
        assert "--port probe=PORT" in line and "--any-port" in line
        assert took < 10, took  # no process was started: nothing waited on a health check
        assert not (tmp_path / "state" / "logs" / "probe.log").exists()


def test_a_foreign_answer_on_the_port_is_not_taken_for_ours(
    tmp_path: Path, foreign: ServedApp
) -> None:
    # The port check is skipped (the Supervisor directly) to reach the health check itself:
    # the foreign server answers 200, but without the token our process was given.
    project = load_project(write_compose(tmp_path, {"probe": probe_service()}), environ={})
    supervisor = Supervisor(
        project,
        {"probe": Address("127.0.0.1", foreign.port)},
        StateFolder(tmp_path / "state"),
        supervisor_pid=os.getpid(),
    )
    began = time.monotonic()
    with pytest.raises(StartFailed, match=f"another server holds port {foreign.port}"):
        supervisor.up()
    assert time.monotonic() - began < 10  # at once, not at the health check's deadline


def test_any_port_works_while_the_default_ports_are_held(
    tmp_path: Path, listener: int, stacks: list[Path]
) -> None:
    compose = write_compose(tmp_path, {"probe": probe_service(listener)})
    state = tmp_path / "state"
    stacks.append(state)
    done = agentorch(compose, state, "up", "-d", "--any-port")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "all 1 services healthy" in done.stdout
    recorded = StateFolder(state).read()
    assert recorded is not None and recorded.services["probe"].url != f"http://127.0.0.1:{listener}"
    status = agentorch(compose, state, "status")
    assert status.returncode == 0 and "healthy" in status.stdout, status.stdout


def test_health_and_status_do_not_vouch_for_a_foreign_server(
    tmp_path: Path, foreign: ServedApp, stacks: list[Path]
) -> None:
    # A stack runs; its service is replaced on its port by another server (stopped, then the
    # port taken): status and health must not call that answer ours.
    port = free_port()
    compose = write_compose(tmp_path, {"probe": probe_service(port)})
    state = tmp_path / "state"
    stacks.append(state)
    assert agentorch(compose, state, "up", "-d").returncode == 0
    recorded = StateFolder(state).read()
    assert recorded is not None
    pid = recorded.services["probe"].pid
    assert pid is not None
    folder = StateFolder(state)
    # Point the record at the foreign server, as if it had taken the port after ours died.
    recorded.services["probe"].url = foreign.url
    folder.write(recorded)
    status = agentorch(compose, state, "status")
    assert "not from this process" in status.stdout, status.stdout
    health = agentorch(compose, state, "health")
    assert health.returncode == 1 and "not from this stack's process" in health.stdout


def test_status_after_the_supervisor_was_killed_sees_its_services(
    tmp_path: Path, stacks: list[Path]
) -> None:
    compose = write_compose(tmp_path, {"probe": probe_service(free_port())})
    state = tmp_path / "state"
    stacks.append(state)
    assert agentorch(compose, state, "up", "-d").returncode == 0
    recorded = StateFolder(state).read()
    assert recorded is not None
    service_pid = recorded.services["probe"].pid
    assert service_pid is not None
    os.kill(recorded.supervisor_pid, signal.SIGKILL)
    wait_until(lambda: not alive(recorded.supervisor_pid) or None, 10, "supervisor gone")

    status = agentorch(compose, state, "status")
    assert "not running" not in status.stdout, status.stdout
    assert "supervisor" in status.stdout and "is gone" in status.stdout
    assert "probe" in status.stdout and str(service_pid) in status.stdout
    assert status.returncode == 1
    again = agentorch(compose, state, "up", "-d")  # refused: its services still hold the state
    assert again.returncode == 1 and "agentorch down" in again.stderr
    down = agentorch(compose, state, "down")
    assert down.returncode == 0 and "probe" in down.stdout
    wait_until(lambda: not group_alive(service_pid) or None, 10, "the orphan stopped")


def test_a_recorded_group_now_anothers_is_neither_ours_nor_killed(tmp_path: Path) -> None:
    """After a reboot the recorded numbers may be another program's process group: `status`
    must not count it as our service, and `down` must not kill it."""
    foreign = subprocess.Popen(["sleep", "30"], start_new_session=True)  # its own group
    try:
        folder = StateFolder(tmp_path / "state")
        recorded = ServiceState(url="http://127.0.0.1:1", pid=foreign.pid, state="healthy")
        folder.write(
            StackState(supervisor_pid=foreign.pid, compose_file="x", services={"probe": recorded})
        )

        assert not service_alive(recorded)
        assert down(folder) == []
        assert foreign.poll() is None  # still running: not ours to stop
    finally:
        foreign.kill()
        foreign.wait(10)
