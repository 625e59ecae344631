"""The orchestrator's functions-framework app served as every app under test is
(``tests.served.ServedApp``), its outbound client closed in the loop that made it. Other
functions run as processes through ``emulator.process.start_function``, which finds them in
the manifest."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from functions.orchestrator.config import OrchestratorConfig
from shared.entry import function_app
from tests.served import ServedApp, refused_url

REPO_ROOT = Path(__file__).resolve().parents[2]
ORCHESTRATOR_SOURCE = str(REPO_ROOT / "functions/orchestrator/main.py")
AGENTS = {
    "CALCULATOR_URL": "calculator",
    "SEARCH_URL": "search",
    "DATA_PROCESSOR_URL": "data_processor",
}
"""The local agents a served stack starts: the orchestrator's variable -> the function."""
SERVER = {"WORKERS": "1", "LOG_LEVEL": "WARNING"}
"""Every served function's environment in tests: one worker, quiet logs."""


@asynccontextmanager
async def serve_orchestrator() -> AsyncIterator[str]:
    """The orchestrator built from the current environment as production builds it, served
    on 127.0.0.1 (its URL is yielded). Its outbound client is closed in its own loop.

    With the default config file, the gateway and agents the environment does not name are
    pinned to a refused address: that file's URLs are the stack's ports (8080-8085, 8585),
    which another running stack may serve. (A test's own config file names its own URLs.)"""
    if not os.environ.get("ORCHESTRATOR_CONFIG"):
        for variable in OrchestratorConfig.env:  # the services' URLs (not the store's)
            service = variable.endswith("_URL") and variable != "STORE_URL"
            if service and not os.environ.get(variable):
                os.environ[variable] = refused_url()  # the test's environment is restored after
    app = function_app(ORCHESTRATOR_SOURCE, "orchestrator")
    service = sys.modules["main"].service  # the module functions-framework just loaded
    # Started and stopped off the test's loop, which stays free: fakes' async responders run on it.
    served = await asyncio.to_thread(ServedApp, app, aclose=service.aclose)
    try:
        yield served.url
    finally:
        await asyncio.to_thread(served.stop)
