"""``agentorch new agent NAME``: a new agent's folder, its test, its manifest entry.

    created = new_agent(REPO_ROOT, "weather")

writes ``functions/agents/weather/`` (``main.py``, ``agent.py``, ``README.md``), a test in
``tests/agents/weather/``, appends the agent to ``functions.yaml`` on the next free port, and
rewrites the files generated from the manifest (``emulator.generate``). With nothing else
edited the emulator (``make up``), Compose, ``docker build --target weather`` and the
orchestrator (``GET /agents``, the tools offered to the model) pick it up.
"""

from __future__ import annotations

import keyword
import re
from pathlib import Path
from string import Template

import yaml

from emulator.generate import planned, write_plan
from shared.config import read_yaml
from shared.errors import ConfigError
from shared.manifest import (
    AGENT_NAME,
    AGENT_NAME_RULE,
    Manifest,
    load_manifest,
    manifest_path,
    parse_manifest,
)

PACKAGE_NAME = re.compile(r"[a-z][a-z0-9_]*")
"""A local agent is also a Python package (``functions.agents.<name>``) and a target."""
FIRST_AGENT_PORT = 8081
_STAGE = re.compile(r"^FROM\s+\S+\s+AS\s+(\S+)", re.MULTILINE | re.IGNORECASE)
COMPOSE_FILES = ("docker-compose.yml", "docker-compose.prod.yml")


def check_name(name: str, manifest: Manifest, root: Path) -> None:
    """Refuses, with the reason, a name the orchestrator or Python would not take, or one taken."""
    if not AGENT_NAME.fullmatch(name):
        raise ConfigError(f"agent name {name!r}: {AGENT_NAME_RULE}")
    if not PACKAGE_NAME.fullmatch(name) or keyword.iskeyword(name):
        raise ConfigError(
            f"agent name {name!r}: a local agent is a Python package too: start with a "
            "lower-case letter, then lower-case letters, digits or _ (weather, geo_v2), "
            "and not a Python keyword"
        )
    taken = {f.name for f in manifest.functions} | {f.target for f in manifest.functions}
    if name in taken or manifest_service(name) in {f.service for f in manifest.functions}:
        raise ConfigError(f"agent name {name!r}: functions.yaml already has a function {name!r}")
    stages, services, images = built_names(root)
    if name in stages:
        raise ConfigError(f"agent name {name!r}: the Dockerfile already has a stage {name!r}")
    if manifest_service(name) in services or manifest_image(name) in images:
        raise ConfigError(
            f"agent name {name!r}: the compose files already have the service "
            f"{manifest_service(name)!r} or the image {manifest_image(name)!r}"
        )
    for path in (
        Path("functions", "agents", name),
        Path("functions", "agents", f"{name}.py"),
        Path("tests", "agents", name),
        Path("tests", "agents", f"{name}.py"),
    ):
        if (root / path).exists():
            raise ConfigError(f"agent name {name!r}: {path.as_posix()} already exists")


def built_names(root: Path) -> tuple[set[str], set[str], set[str]]:
    """The Dockerfile's stages, the compose files' services and their images (without tag)."""
    dockerfile = root / "Dockerfile"
    text = dockerfile.read_text(encoding="utf-8") if dockerfile.is_file() else ""
    stages = set(_STAGE.findall(text))
    services: set[str] = set()
    images: set[str] = set()
    for file in COMPOSE_FILES:
        found = read_yaml(root / file).get("services") if (root / file).is_file() else None
        for service, body in (found or {}).items():
            services.add(str(service))
            if isinstance(body, dict) and isinstance(body.get("image"), str):
                images.add(body["image"].partition(":")[0])
    return stages, services, images


def manifest_service(name: str) -> str:
    return f"{name.replace('_', '-')}-agent"


def manifest_image(name: str) -> str:
    return f"agentorch/{name.replace('_', '-')}"


def next_port(manifest: Manifest) -> int:
    """One above the highest agent port, past any port a function has."""
    used = {f.port for f in manifest.functions}
    port = max((a.port for a in manifest.agents), default=FIRST_AGENT_PORT - 1) + 1
    while port in used:
        port += 1
    return port


def new_agent(root: Path, name: str) -> list[Path]:
    """Scaffold agent ``name`` in the repository at ``root``; the files written or changed.
    Everything is checked and rendered first: a refused name writes nothing."""
    path = manifest_path({}, root)
    manifest = load_manifest(path)
    check_name(name, manifest, root)
    port = next_port(manifest)
    values = {
        "name": name,
        "title": name.replace("_", " ").capitalize(),
        "model": "".join(part.capitalize() for part in name.split("_")) + "Input",
        "port": str(port),
        "service": manifest_service(name),
        "image": manifest_image(name),
    }
    texts: dict[Path, str] = {}
    for relative, template in FILES.items():
        target = root / Template(relative).substitute(values)
        texts[target] = Template(template).substitute(values)
        if target.suffix == ".py":
            compile(texts[target], str(target), "exec")  # a SyntaxError is a bug here
    original = path.read_text(encoding="utf-8")
    appended = original.rstrip("\n") + "\n" + Template(ENTRY).substitute(values)
    grown = parse_manifest(yaml.safe_load(appended), path)
    plan = planned(root, grown)
    for target, text in texts.items():
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text, encoding="utf-8")
    path.write_text(appended, encoding="utf-8")
    return [*texts, path, *write_plan(plan)]


ENTRY = """
  - name: $name
    kind: agent
    source: functions/agents/$name
    target: $name
    port: $port
    service: $service
    image: $image
"""

MAIN = '''"""The agent's entry point (ASGI): HTTP in, agent.SPEC runs, JSON out."""

from starlette.requests import Request
from starlette.responses import Response

from functions.agents.$name.agent import SPEC
from shared.agent import agent_app
from shared.entry import http
from shared.lambda_http import lambda_handler
from shared.runtime import prepare

prepare()  # before the app is built and gunicorn forks: see shared/runtime.py
_app = agent_app(SPEC)


@http  # functions-framework's ASGI target, without Flask: shared/entry.py
async def $name(request: Request) -> Response:
    return await _app(request)


# AWS Lambda's entry point (a Function URL, API Gateway): shared/lambda_http.py
handler = lambda_handler(__name__, "$name")
'''

AGENT = '''"""The agent: its input model, its description for the planning model, and ``run``.

``run`` is plain Python: it knows nothing of HTTP, runs off the event loop, and is what the
tests call. Replace the example (it counts the words of a text) with the agent's own work.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from shared.agent import AgentResult, AgentSpec

DESCRIPTION = (
    "Counts the words of a text. "  # say what it does, when to use it, and when not to
    "Do NOT use it for arithmetic (use calculator)."
)


class $model(BaseModel):
    model_config = ConfigDict(extra="forbid")

    text: str = Field(min_length=1, max_length=10_000, description="The text to count.")


def run(agent_input: $model) -> AgentResult:
    words = agent_input.text.split()
    return AgentResult(result={"words": len(words)}, meta={"characters": len(agent_input.text)})


SPEC: AgentSpec[$model] = AgentSpec(
    name="$name",
    description=DESCRIPTION,
    input_model=$model,
    run=run,
    example={"text": "one two three"},
)
'''

README = """# $title agent

An agent of the orchestrator: `GET /schema` describes its tool, `POST /` runs it
(`{"result": ..., "meta": {...}}`; a 400 naming the field for bad input).

| file | holds |
| --- | --- |
| `agent.py` | the input model, the description the planning model reads, `run` (plain Python) |
| `main.py` | the functions-framework entry point: `prepare()`, then `agent_app(SPEC)` |

Its entry in `functions.yaml` gives it port $port on the emulator and the Compose service
`$service`. Its own dependencies, if it needs any: an extra `$name = [...]` in
`pyproject.toml` (and in the `dev` extra's list), `extra: $name` in its manifest entry, then
`make lock manifest`. It is an MCP server too (`POST /mcp`) where the `mcp` SDK is installed:
start its extra with `"agent-orchestrator[mcp]"`, as the shipped agents' do.

    .venv/bin/python -m pytest tests/agents/$name       # its test
    make up && curl -s localhost:8080/agents            # the orchestrator lists it
    .venv/bin/agentorch invoke $service --data '{"text": "one two"}'
"""

TEST = '''"""The agent, in process and through functions-framework."""

from __future__ import annotations

from functions.agents.$name.agent import SPEC
from tests.agents.support import function_client, invalid_request_message


def test_run_answers_the_example() -> None:
    assert SPEC.example is not None
    assert SPEC.run(SPEC.input_model.model_validate(SPEC.example)).result == {"words": 3}


def test_the_function_serves_its_schema_and_runs() -> None:
    client = function_client("$name")
    schema = client.get("/schema").get_json()
    assert schema["name"] == "$name"
    assert schema["input_schema"]["examples"] == [SPEC.example]
    answer = client.post("/", json=SPEC.example)
    assert answer.status_code == 200 and answer.get_json()["result"] == {"words": 3}
    assert "text" in invalid_request_message(client.post("/", json={}))
'''

FILES = {
    "functions/agents/$name/__init__.py": "",
    "functions/agents/$name/main.py": MAIN,
    "functions/agents/$name/agent.py": AGENT,
    "functions/agents/$name/README.md": README,
    "tests/agents/$name/__init__.py": "",
    "tests/agents/$name/test_agent.py": TEST,
}
"""Each file of a new agent (its path and its text are templates of ``$name`` and the rest)."""
