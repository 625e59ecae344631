"""Every function's main.py prepares its process (shared/runtime.py), and building an app does not.

A function whose main.py skipped ``prepare()`` would still answer, so nothing else notices: its
workers would count metrics apart and parse request heads without bounds. Here each function of
the manifest (functions.yaml) is loaded, in one fresh interpreter, as ``shared.serve`` loads it
(the protocol for its server, the metrics folder, and neither Flask nor gunicorn imported) and as
functions-framework loads it (the workers' protocol, the metrics folder set before a fork, and
the target registered for functions-framework's ASGI path).
"""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import pytest

from emulator.compose import REPO_ROOT
from emulator.process import function_environment
from shared.manifest import load_manifest

pytestmark = pytest.mark.processes  # one worker for the module's processes

FUNCTIONS = {function.target: function.main for function in load_manifest().functions}

LOAD_EACH = """
import json, os, sys
from shared import server
from shared.entry import load_target
from shared.metrics import FOLDER_VARIABLE
from shared.server import BoundedHttpToolsProtocol

found = {}
for target, source in json.loads(sys.argv[1]).items():
    server._installed = None
    os.environ.pop(FOLDER_VARIABLE, None)
    load_target(source, target)  # as shared.serve loads it
    found[target] = {
        "protocol": server._installed is not None
        and server.uvicorn_options()["http"] is BoundedHttpToolsProtocol,
        "metrics_folder": bool(os.environ.get(FOLDER_VARIABLE)),
    }
found["flask_or_gunicorn_loaded"] = sorted({"flask", "gunicorn"} & set(sys.modules))
print(json.dumps(found))
"""

UNDER_FUNCTIONS_FRAMEWORK = """
import json, os, runpy, sys
import functions_framework  # as its command does, before it loads a main.py
from functions_framework import _function_registry
from uvicorn_worker import UvicornWorker
from shared.metrics import FOLDER_VARIABLE
from shared.server import BoundedHttpToolsProtocol

untouched = dict(UvicornWorker.CONFIG_KWARGS)
found = {}
for target, source in json.loads(sys.argv[1]).items():
    UvicornWorker.CONFIG_KWARGS = dict(untouched)
    os.environ.pop(FOLDER_VARIABLE, None)
    runpy.run_path(source, run_name=f"main_{target}")
    found[target] = {
        "protocol": UvicornWorker.CONFIG_KWARGS.get("http") is BoundedHttpToolsProtocol,
        "metrics_folder": bool(os.environ.get(FOLDER_VARIABLE)),
        "asgi": target in _function_registry.ASGI_FUNCTIONS,
    }
print(json.dumps(found))
"""

BUILD_ONLY = """
import json, os
from uvicorn_worker import UvicornWorker
from shared.agent import AgentResult, AgentSpec, agent_app
from shared.metrics import FOLDER_VARIABLE
from pydantic import BaseModel

class Empty(BaseModel):
    pass

before = dict(UvicornWorker.CONFIG_KWARGS)
import functions_framework  # the workers' settings would be changed where it serves, if at all
agent_app(AgentSpec("empty", "Does nothing.", Empty, lambda _: AgentResult(None)))
print(json.dumps({
    "worker_settings_changed": UvicornWorker.CONFIG_KWARGS != before,
    "metrics_folder": FOLDER_VARIABLE in os.environ,
}))
"""


def run_python(code: str, *args: str) -> Any:
    done = subprocess.run(
        [sys.executable, "-c", code, *args],
        cwd=REPO_ROOT,
        env=function_environment(0),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def loaded() -> dict[str, dict[str, bool]]:
    result: dict[str, Any] = run_python(LOAD_EACH, json.dumps(FUNCTIONS))
    return result


@pytest.fixture(scope="module")
def under_functions_framework() -> dict[str, dict[str, bool]]:
    result: dict[str, dict[str, bool]] = run_python(
        UNDER_FUNCTIONS_FRAMEWORK, json.dumps(FUNCTIONS)
    )
    return result


@pytest.mark.parametrize("target", sorted(FUNCTIONS))
def test_a_function_main_prepares_its_process(target: str, loaded: dict[str, Any]) -> None:
    assert loaded[target] == {"protocol": True, "metrics_folder": True}, (
        f"{FUNCTIONS[target]} does not call shared.runtime.prepare() before building its app"
    )


def test_served_by_shared_serve_no_function_loads_flask_or_gunicorn(loaded: dict[str, Any]) -> None:
    # 0.25 s of CPU at every cold start (shared/entry.py): a main.py that imports
    # functions_framework (or a module it imports that does) brings it back.
    assert loaded["flask_or_gunicorn_loaded"] == []


@pytest.mark.parametrize("target", sorted(FUNCTIONS))
def test_under_functions_framework_a_function_is_its_asgi_target_with_bounded_workers(
    target: str, under_functions_framework: dict[str, dict[str, bool]]
) -> None:
    # What Cloud Functions and a Cloud Run source deploy run: functions-framework --target T.
    assert under_functions_framework[target] == {
        "protocol": True,
        "metrics_folder": True,
        "asgi": True,
    }


def test_building_an_app_leaves_the_process_as_it_was() -> None:
    assert run_python(BUILD_ONLY) == {"worker_settings_changed": False, "metrics_folder": False}
