"""The supervisor with probe functions: start order, health waits, failures, deaths, clean stops."""

from __future__ import annotations

import json
import os
import signal
import threading
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from emulator.compose import load_project
from emulator.errors import StartFailed
from emulator.network import assign_addresses
from emulator.state import StateFolder
from emulator.supervisor import Supervisor
from tests.emulator.support import group_alive, probe_service, write_compose
from tests.waiting import wait_until

pytestmark = pytest.mark.processes


def get_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=5) as reply:
        return json.loads(reply.read())


@pytest.fixture
def make_supervisor(tmp_path: Path) -> Iterator[Any]:
    made: list[Supervisor] = []

    def make(services: dict[str, Any], **options: Any) -> Supervisor:
        project = load_project(write_compose(tmp_path, services), environ={})
        addresses = assign_addresses(project.services.values(), any_port=True)
        supervisor = Supervisor(
            project,
            addresses,
            StateFolder(tmp_path / "state"),
            supervisor_pid=os.getpid(),
            **options,
        )
        made.append(supervisor)
        return supervisor

    yield make
    for supervisor in made:
        supervisor.stop()


def test_dependencies_start_first_and_urls_reach_them(make_supervisor: Any) -> None:
    supervisor = make_supervisor(
        {
            "app": probe_service(
                depends_on={"backend": {"condition": "service_healthy"}},
                environment={"UPSTREAM_URL": "http://backend:8080", "SHOW": "UPSTREAM_URL,PORT"},
            ),
            "backend": probe_service(),
        }
    )
    supervisor.up()

    app = supervisor.running["app"]
    backend_url = supervisor.running["backend"].address.url
    seen = get_json(app.address.url + "/env")
    assert seen["env"] == {"UPSTREAM_URL": backend_url, "PORT": str(app.address.port)}
    assert seen["upstream"] == 200  # the backend was healthy before the app started
    state = StateFolder(supervisor.folder.root).read()
    assert state is not None and state.status == "running"
    assert {s.state for s in state.services.values()} == {"healthy"}


def test_a_service_that_exits_stops_the_start_up_with_its_last_lines(make_supervisor: Any) -> None:
    supervisor = make_supervisor(
        {
            "broken": probe_service(
                environment={"PROBE_SAY": "missing setting FOO", "PROBE_EXIT": "3"}
            ),
            "after": probe_service(depends_on={"broken": {"condition": "service_healthy"}}),
        }
    )
    with pytest.raises(StartFailed) as failure:
        supervisor.up()
    message = str(failure.value)
    assert message.startswith("broken ") and "code" in message
    assert "broken | missing setting FOO" in message
    assert supervisor.running["after"].process is None  # never started
    assert StateFolder(supervisor.folder.root).read().status == "failed"  # type: ignore[union-attr]


def test_a_service_never_healthy_fails_at_its_deadline(make_supervisor: Any) -> None:
    supervisor = make_supervisor(
        {"sick": probe_service(environment={"UNHEALTHY": "1"})}, start_timeout_s=1.5
    )
    with pytest.raises(
        StartFailed, match=r"sick not healthy at http://127\.0\.0\.1:\d+/health within 1\.5 s"
    ):
        supervisor.up()
    pid = supervisor.running["sick"].state.pid
    assert pid is not None and not group_alive(pid)


def test_a_dying_service_is_reported_and_restarted_by_policy(make_supervisor: Any) -> None:
    supervisor = make_supervisor(
        {"kept": probe_service(restart="always"), "let-go": probe_service(restart="no")}
    )
    supervisor.up()
    serving = threading.Thread(target=supervisor.serve, daemon=True)
    serving.start()
    kept, let_go = supervisor.running["kept"], supervisor.running["let-go"]
    first_pid, gone_pid = kept.state.pid, let_go.state.pid
    os.kill(first_pid, signal.SIGKILL)
    os.kill(gone_pid, signal.SIGKILL)

    wait_until(
        lambda: kept.state.state == "healthy" and kept.state.pid != first_pid,
        timeout_s=20,
        what="restart",
    )
    assert get_json(kept.address.url + "/")["pid"] != first_pid
    wait_until(lambda: let_go.state.state == "exited", 20, what="let-go reported")
    assert kept.state.restarts == 1 and let_go.state.restarts == 0
    log = supervisor.folder.log_file("let-go").read_text()
    assert "exited with code -9" in log and "restarting" not in log
    wait_until(lambda: not group_alive(gone_pid), 20, what="its orphaned workers gone too")

    supervisor.request_stop()
    serving.join(timeout=30)
    assert not serving.is_alive()


def test_stop_leaves_no_process_behind(make_supervisor: Any) -> None:
    supervisor = make_supervisor(
        {"one": probe_service(environment={"WORKERS": "2"}), "two": probe_service()}
    )
    supervisor.up()
    groups = [r.state.pid for r in supervisor.running.values()]
    assert all(groups) and all(group_alive(g) for g in groups)
    supervisor.stop()
    assert not any(group_alive(g) for g in groups)
    assert {r.state.state for r in supervisor.running.values()} == {"stopped"}
