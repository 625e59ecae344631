"""SHUTDOWN_GRACE_S: how long a stopping worker waits for the requests under way (the
orchestrator's served tests, tests/orchestrator/test_process.py, show it at work)."""

from __future__ import annotations

import pytest

from shared import server
from shared.errors import ConfigError


def test_the_grace_defaults_below_cloud_runs_ten_seconds() -> None:
    assert server.ServerSettings.load({}).shutdown_grace_s == 8.0
    assert server.ServerSettings.load({"SHUTDOWN_GRACE_S": "2.5"}).shutdown_grace_s == 2.5


@pytest.mark.parametrize("raw", ["0", "-1", "soon", "31"])
def test_a_grace_uvicorn_or_gunicorn_cannot_keep_stops_start_up(raw: str) -> None:
    with pytest.raises(ConfigError, match="SHUTDOWN_GRACE_S"):
        server.ServerSettings.load({"SHUTDOWN_GRACE_S": raw})


def test_installing_gives_the_workers_the_grace() -> None:
    from uvicorn_worker import UvicornWorker

    saved = UvicornWorker.CONFIG_KWARGS
    try:
        server.install(server.ServerSettings.load({"SHUTDOWN_GRACE_S": "3"}))
        assert UvicornWorker.CONFIG_KWARGS["timeout_graceful_shutdown"] == 3.0
    finally:
        UvicornWorker.CONFIG_KWARGS = saved
