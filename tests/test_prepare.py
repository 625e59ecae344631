"""Every function's main.py prepares its process (shared/runtime.py), and building an app does not.

A function whose main.py skipped ``prepare()`` would still answer, so nothing else notices: its
workers would count metrics apart and parse request heads without bounds. Here each function of
the manifest (functions.yaml) is loaded as functions-framework loads it, in one fresh
interpreter, and must leave the workers' protocol and the metrics folder set before a fork.
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
import json, os, runpy, sys
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
    result: dict[str, dict[str, bool]] = run_python(LOAD_EACH, json.dumps(FUNCTIONS))
    return result


@pytest.mark.parametrize("target", sorted(FUNCTIONS))
def test_a_function_main_prepares_its_process(
    target: str, loaded: dict[str, dict[str, bool]]
) -> None:
    assert loaded[target] == {"protocol": True, "metrics_folder": True}, (
        f"{FUNCTIONS[target]} does not call shared.runtime.prepare() before building its app"
    )


def test_building_an_app_leaves_the_process_as_it_was() -> None:
    assert run_python(BUILD_ONLY) == {"worker_settings_changed": False, "metrics_folder": False}
