"""What shared/server.py relies on in uvicorn, uvicorn-worker and httptools is still there.

``BoundedHttpToolsProtocol`` subclasses uvicorn's ``HttpToolsProtocol`` (overriding its parser
callbacks and reading its per-connection state) and ``install()`` sets ``UvicornWorker``'s
``CONFIG_KWARGS``. None of that is a promise those packages make: when a new version (``make
lock``) renames or drops one of these hooks, these tests fail naming it, before the served tests
(test_server_limits.py, test_hostile_edges.py) fail in ways that hide why.
"""

from __future__ import annotations

import asyncio
import inspect
import os
from collections.abc import Iterator
from typing import Any

import httptools
import pytest
import uvicorn
from gunicorn.config import Config as GunicornConfig
from gunicorn.glogging import Logger
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol, RequestResponseCycle
from uvicorn.server import ServerState
from uvicorn_worker import UvicornWorker

from shared import entry, server
from shared.server import BoundedHttpToolsProtocol

PROTOCOL_STATE = (
    "loop",
    "transport",
    "timeout_keep_alive_task",
    "cycle",
    "scope",
    "url",
    "headers",
)
"""HttpToolsProtocol's attributes the bounded protocol reads (after ``on_message_begin``)."""


def overridden() -> list[str]:
    """The methods BoundedHttpToolsProtocol overrides: its public ones and ``__init__``."""
    return [
        name
        for name, member in vars(BoundedHttpToolsProtocol).items()
        if inspect.isfunction(member) and (name == "__init__" or not name.startswith("_"))
    ]


@pytest.mark.parametrize("name", overridden())
def test_every_method_the_protocol_overrides_is_still_uvicorns(name: str) -> None:
    theirs = getattr(HttpToolsProtocol, name, None)
    assert callable(theirs), (
        f"uvicorn {uvicorn.__version__}: HttpToolsProtocol.{name} is gone, so "
        f"BoundedHttpToolsProtocol.{name} is never called (see shared/server.py)"
    )
    ours = inspect.signature(getattr(BoundedHttpToolsProtocol, name))
    if name != "__init__":  # ours passes *args, **kwargs through
        assert list(inspect.signature(theirs).parameters) == list(ours.parameters), (
            f"uvicorn {uvicorn.__version__}: HttpToolsProtocol.{name} now takes "
            f"{inspect.signature(theirs)}, BoundedHttpToolsProtocol.{name} {ours}"
        )


def test_the_connection_state_the_protocol_reads_is_still_there() -> None:
    config = uvicorn.Config(app=_app, http=BoundedHttpToolsProtocol, log_level="error")
    loop = asyncio.new_event_loop()
    try:
        protocol = HttpToolsProtocol(config, ServerState(), {}, _loop=loop)
        protocol.on_message_begin()
        missing = [name for name in PROTOCOL_STATE if not hasattr(protocol, name)]
        assert not missing, f"uvicorn {uvicorn.__version__}: HttpToolsProtocol lacks {missing}"
    finally:
        loop.close()
    unset: dict[str, Any] = dict.fromkeys(inspect.signature(RequestResponseCycle).parameters)
    cycle = RequestResponseCycle(**unset)
    assert hasattr(cycle, "response_complete"), (
        f"uvicorn {uvicorn.__version__}: RequestResponseCycle.response_complete is gone "
        "(the bounded protocol asks it whether a connection is idle)"
    )


def test_a_refusal_raised_in_a_parser_callback_is_a_parser_error() -> None:
    # on_headers_complete refuses a head by raising; uvicorn's data_received turns an
    # HttpParserError into send_400_response, where the refusal is answered.
    assert issubclass(httptools.HttpParserCallbackError, httptools.HttpParserError)


@pytest.fixture
def worker_settings(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """As where functions-framework serves (its gunicorn workers), the workers' settings
    restored after."""
    monkeypatch.setattr(entry, "under_functions_framework", lambda: True)
    saved = UvicornWorker.CONFIG_KWARGS
    yield
    UvicornWorker.CONFIG_KWARGS = saved


@pytest.mark.usefixtures("worker_settings")
def test_a_worker_gunicorn_builds_after_install_speaks_the_bounded_protocol() -> None:
    assert isinstance(vars(UvicornWorker).get("CONFIG_KWARGS"), dict), (
        "uvicorn-worker: UvicornWorker.CONFIG_KWARGS is no longer a dict class attribute, "
        "which shared.server.install() sets"
    )
    server.install(server.ServerSettings.load({"SHUTDOWN_GRACE_S": "3"}))
    cfg = GunicornConfig()
    worker = UvicornWorker(
        age=0, ppid=os.getpid(), sockets=[], app=None, timeout=30, cfg=cfg, log=Logger(cfg)
    )
    try:
        assert worker.config.http is BoundedHttpToolsProtocol, (
            "uvicorn-worker: a worker no longer takes its protocol from CONFIG_KWARGS['http']"
        )
        assert worker.config.timeout_graceful_shutdown == 3.0, (
            "uvicorn-worker: a worker no longer takes CONFIG_KWARGS['timeout_graceful_shutdown']"
        )
    finally:
        worker.tmp.close()


async def _app(scope: Any, receive: Any, send: Any) -> None:
    """An ASGI app for uvicorn's Config to load; never called."""
