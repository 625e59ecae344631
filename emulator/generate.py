"""The files written from the manifest, ``functions.yaml``: ``make manifest``.

Each generated part of a file sits between two marker lines that keep everything around them
as written by hand (comments, anchors, the gateway's and the orchestrator's own settings):

    # >>> functions.yaml: agent-services (make manifest writes this part; do not edit it)
    ...
    # <<< functions.yaml: agent-services

The part takes the marker's indentation (in Markdown the markers are HTML comments). The
deploy definitions in ``deploy/`` (``emulator/definitions.py``) are generated whole. ``stale()``
lists the files that differ from what the manifest gives; tests/test_manifest.py fails on any,
naming the command.
"""

from __future__ import annotations

import json
import re
import shlex
from collections.abc import Callable
from pathlib import Path, PurePosixPath

from emulator import definitions
from emulator.contract import env_table
from shared.errors import ConfigError
from shared.manifest import Function, Manifest, load_manifest, manifest_path

COMMAND = "make manifest"
_BEGIN = "# >>> functions.yaml: {name} (make manifest writes this part; do not edit it)"
_END = "# <<< functions.yaml: {name}"
_BLOCK = re.compile(
    r"^(?P<indent>[ \t]*)# >>> functions\.yaml: (?P<name>[a-z-]+)[^\n]*\n"
    r"(?P<body>.*?)"
    r"^[ \t]*# <<< functions\.yaml: (?P=name)[ \t]*$",
    re.MULTILINE | re.DOTALL,
)

Block = Callable[[Manifest], list[str]]


def core_requirements(manifest: Manifest) -> list[str]:
    return [
        f"COPY {f.source}/requirements.txt /tmp/req/{f.name}.txt"
        for f in manifest.functions
        if f.extra
    ]


def agent_stages(manifest: Manifest) -> list[str]:
    lines: list[str] = []
    for agent in manifest.agents:
        lines += ["", *_stage(agent)]
    return lines[1:]


def _stage(agent: Function) -> list[str]:
    lines = [f"FROM core AS {agent.target}"]
    if agent.extra:
        lines += [
            f"COPY {agent.source}/requirements.txt /tmp/requirements.txt",
            "RUN pip --python /opt/venv/bin/python install -r /tmp/requirements.txt"
            " && rm /tmp/requirements.txt",
        ]
    for package in reversed(PurePosixPath(agent.source).parents[:-1]):
        lines.append(f"COPY {package}/__init__.py {package}/__init__.py")
    lines += [f"COPY {path} {path}" for path in agent.config]
    lines += [
        "COPY shared/ shared/",
        f"COPY {agent.source}/ {agent.source}/",
        "RUN python -m compileall -q shared functions",
        "USER app",
        f"ENV PORT={agent.container_port} WORKERS=1",
        f"EXPOSE {agent.container_port}",
        'CMD ["python", "-m", "shared.serve", '
        f'"--source", "{agent.main}", "--target", "{agent.target}"]',
    ]
    return lines


def agent_services(manifest: Manifest) -> list[str]:
    lines: list[str] = []
    for agent in manifest.agents:
        lines += ["", *_service(agent)]
    return lines[1:]


def _service(agent: Function) -> list[str]:
    port = agent.container_port
    probe = (
        "import urllib.request; "
        f"urllib.request.urlopen('http://localhost:{port}/health', timeout=2)"
    )
    environment = [f"  {key}: {json.dumps(value)}" for key, value in agent.environment.items()]
    return [
        f"{agent.service}:",
        "  build:",
        "    context: .",
        "    dockerfile: Dockerfile",
        f"    target: {agent.target}",
        f"  image: {agent.image}:${{TAG:-latest}}",
        "  x-function:",
        f"    source: {agent.main}",
        f"    target: {agent.target}",
        f"    port: {agent.port}",
        "  environment:",
        f'    PORT: "{port}"',
        "    <<: *server-environment",
        *(f"  {line}" for line in environment),
        "  healthcheck:",
        f'    test: ["CMD", "python", "-c", "{probe}"]',
        "    interval: 10s",
        "    timeout: 3s",
        "    retries: 3",
        "    start_period: 10s",
        "  restart: unless-stopped",
        "  networks:",
        "    - agent-orchestrator-network",
    ]


def agent_urls(manifest: Manifest) -> list[str]:
    return [f"{a.url_variable}: ${{{a.url_variable}:-{a.service_url}}}" for a in manifest.agents]


def agent_dependencies(manifest: Manifest) -> list[str]:
    lines = []
    for agent in manifest.agents:
        lines += [f"{agent.service}:", "  condition: service_healthy"]
    return lines


def production_limits(manifest: Manifest) -> list[str]:
    lines: list[str] = []
    for function in manifest.functions:
        limits = manifest.limits(function)
        lines += [
            "",
            f"{function.service}:",
            "  <<: *hardened",
            "  deploy:",
            "    resources:",
            f'      limits: {{cpus: "{limits.cpus}", memory: {limits.memory}}}',
        ]
    return lines[1:]


def env_template(manifest: Manifest) -> list[str]:
    return [f"{agent.url_variable}=" for agent in manifest.agents]


def shell_lists(manifest: Manifest) -> list[str]:
    """The lists the docker/ scripts loop over: Dockerfile targets, services, image names."""
    functions = manifest.functions

    def array(name: str, values: list[str]) -> str:
        return f"{name}=({' '.join(shlex.quote(value) for value in values)})"

    return [
        array("FUNCTION_TARGETS", [f.target for f in functions]),
        array("FUNCTION_SERVICES", [f.service for f in functions]),
        array("FUNCTION_IMAGES", [f.image.removeprefix("agentorch/") for f in functions]),
    ]


GENERATED: dict[str, dict[str, Block]] = {
    "Dockerfile": {"core-requirements": core_requirements, "agent-stages": agent_stages},
    "docker-compose.yml": {
        "agent-urls": agent_urls,
        "agent-dependencies": agent_dependencies,
        "agent-services": agent_services,
    },
    "docker-compose.prod.yml": {"production-limits": production_limits},
    ".env.docker": {"agent-urls": env_template},
    "docker/lib.sh": {"function-lists": shell_lists},
}
"""Each generated file (relative to the repository root) and its parts."""


def render(text: str, manifest: Manifest, blocks: dict[str, Block], file: str) -> str:
    """``text`` with each of ``blocks``' parts rewritten from ``manifest``."""
    found: set[str] = set()

    def replace(match: re.Match[str]) -> str:
        name, indent = match["name"], match["indent"]
        if name not in blocks:
            raise ConfigError(f"{file}: unknown generated part {name!r}")
        found.add(name)
        body = [f"{indent}{line}" if line else "" for line in blocks[name](manifest)]
        return "\n".join(
            [indent + _BEGIN.format(name=name), *body, indent + _END.format(name=name)]
        )

    rendered = _BLOCK.sub(replace, text)
    missing = set(blocks) - found
    if missing:
        raise ConfigError(f"{file}: no markers for the generated part(s) {sorted(missing)}")
    return rendered


DOCS: dict[str, dict[str, Block]] = {"DEPLOY.md": {"env-table": env_table}}
"""Markdown files with generated parts, between ``<!-- >>> functions.yaml: NAME ... -->`` and
``<!-- <<< functions.yaml: NAME -->`` lines."""
WHOLE_FOLDERS = ("deploy/cloudrun", "deploy/knative", "deploy/sam")
"""Folders whose files are all generated (``emulator/definitions.py``): one no longer planned,
a removed function's, is deleted."""


def render_markdown(text: str, manifest: Manifest, blocks: dict[str, Block], file: str) -> str:
    """``render`` for Markdown, whose markers are HTML comments (``#`` starts a heading)."""
    as_hash = _MD_BEGIN.sub(r"# >>> \1", _MD_END.sub(r"# <<< \1", text))
    rendered = render(as_hash, manifest, blocks, file)
    return _HASH_END.sub(r"<!-- <<< \1 -->", _HASH_BEGIN.sub(r"<!-- >>> \1 -->", rendered))


_MD_BEGIN = re.compile(r"^<!-- >>> (functions\.yaml: .*?) -->$", re.MULTILINE)
_MD_END = re.compile(r"^<!-- <<< (functions\.yaml: .*?) -->$", re.MULTILINE)
_HASH_BEGIN = re.compile(r"^# >>> (functions\.yaml: .*)$", re.MULTILINE)
_HASH_END = re.compile(r"^# <<< (functions\.yaml: .*)$", re.MULTILINE)


def planned(root: Path, manifest: Manifest | None = None) -> dict[Path, tuple[str, str | None]]:
    """Each generated file's current text and the text the manifest (``manifest``, else the
    one at ``root``) gives; None: the file should not exist."""
    manifest = manifest or load_manifest(manifest_path({}, root))
    plan: dict[Path, tuple[str, str | None]] = {}
    for file, blocks in GENERATED.items():
        path = root / file
        text = path.read_text(encoding="utf-8")
        plan[path] = (text, render(text, manifest, blocks, file))
    for file, blocks in DOCS.items():
        path = root / file
        text = path.read_text(encoding="utf-8")
        plan[path] = (text, render_markdown(text, manifest, blocks, file))
    for file, wanted in definitions.files(manifest).items():
        path = root / file
        plan[path] = (path.read_text(encoding="utf-8") if path.is_file() else "", wanted)
    for folder in WHOLE_FOLDERS:
        for path in sorted((root / folder).glob("*")):
            if path.is_file() and path not in plan:
                plan[path] = (path.read_text(encoding="utf-8"), None)
    return plan


def stale(root: Path) -> list[Path]:
    """The generated files that differ from what the manifest gives."""
    return [path for path, (now, wanted) in planned(root).items() if now != wanted]


def generate(root: Path) -> list[Path]:
    """Rewrite every generated file from the manifest; the files that changed."""
    return write_plan(planned(root))


def write_plan(plan: dict[Path, tuple[str, str | None]]) -> list[Path]:
    """Write (or delete) each file of ``plan`` whose text differs; the files that changed."""
    changed = []
    for path, (now, wanted) in plan.items():
        if wanted is None:
            path.unlink()
            changed.append(path)
        elif now != wanted:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(wanted, encoding="utf-8")
            changed.append(path)
    return changed
