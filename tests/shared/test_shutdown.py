"""SHUTDOWN_GRACE_S: how long a stopping worker waits for the requests under way (the
orchestrator's served tests, tests/orchestrator/test_process.py, show it at work)."""

from __future__ import annotations

import pytest

from shared import entry, server
from shared.errors import ConfigError


def test_the_grace_defaults_below_cloud_runs_ten_seconds() -> None:
    assert server.ServerSettings.load({}).shutdown_grace_s == 8.0
    assert server.ServerSettings.load({"SHUTDOWN_GRACE_S": "2.5"}).shutdown_grace_s == 2.5


@pytest.mark.parametrize("raw", ["0", "-1", "soon", "31"])
def test_a_grace_uvicorn_or_gunicorn_cannot_keep_stops_start_up(raw: str) -> None:
    with pytest.raises(ConfigError, match="SHUTDOWN_GRACE_S"):
        server.ServerSettings.load({"SHUTDOWN_GRACE_S": raw})


def test_installing_gives_the_server_the_grace() -> None:
    # shared.serve's one process (the images, the emulator)
    saved = server._installed
    try:
        server.install(server.ServerSettings.load({"SHUTDOWN_GRACE_S": "3"}))
        assert server.uvicorn_options()["timeout_graceful_shutdown"] == 3.0
    finally:
        server._installed = saved


def test_installing_gives_functions_frameworks_workers_the_grace(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from uvicorn_worker import UvicornWorker

    monkeypatch.setattr(entry, "under_functions_framework", lambda: True)
    saved, installed = UvicornWorker.CONFIG_KWARGS, server._installed
    try:
        server.install(server.ServerSettings.load({"SHUTDOWN_GRACE_S": "3"}))
        assert UvicornWorker.CONFIG_KWARGS["timeout_graceful_shutdown"] == 3.0
    finally:
        UvicornWorker.CONFIG_KWARGS, server._installed = saved, installed
