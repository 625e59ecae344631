"""The function manifest, ``functions.yaml`` at the repository root: the one list of functions.

    manifest = load_manifest()
    [agent.name for agent in manifest.agents]   # ["calculator", "search", ...]
    manifest.function("gateway").port            # 8585, its host port under the emulator

Every reader imports this module (``shared/`` is in every image; the orchestrator's image also
carries ``functions.yaml``): the orchestrator for its built-in agents, ``tools/requirements.py``
for the functions' extras, ``emulator/generate.py`` for the files it writes (the Dockerfile's
stages, the compose files), the tests. A malformed file raises ``ConfigError`` naming the file,
the function and the key. ``$FUNCTIONS_MANIFEST`` names another file.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from shared.config import REPO_ROOT, read_yaml
from shared.errors import ConfigError, validation_problems

MANIFEST_FILE = "functions.yaml"
MANIFEST_VARIABLE = "FUNCTIONS_MANIFEST"
AGENT_CONTAINER_PORT = 8080
"""The port every agent and the orchestrator listen on inside their containers."""

AGENT_NAME = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")
"""An agent's name is its tool's name: the rule the model APIs accept for tool names."""
AGENT_NAME_RULE = "use 1 to 64 letters, digits, _ or - (the tool names model APIs accept)"

Kind = Literal["gateway", "orchestrator", "agent"]

# What the generated files (the Dockerfile's COPY lines, the compose files, docker/lib.sh's
# shell arrays, sourced by every docker/ script) may take as written: no shell or YAML syntax.
_SEGMENT = r"[A-Za-z0-9_][A-Za-z0-9_.-]*"
SOURCE_PATTERN = rf"^{_SEGMENT}(/{_SEGMENT})*$"
"""A folder relative to the repository: no ``..``, no leading ``/``, no spaces or quotes."""
CONFIG_PATTERN = rf"^{_SEGMENT}(/{_SEGMENT})*/?$"
IMAGE_PATTERN = r"^[a-z0-9][a-z0-9._/-]*$"
VARIABLE_PATTERN = r"^[A-Z_][A-Z0-9_]*$"
VALUE_PATTERN = r"^[^\x00-\x1f\x7f]*$"
"""An environment value is one line (Compose's ``${X:-}`` syntax is fine)."""

Variable = Annotated[str, Field(pattern=VARIABLE_PATTERN)]
Value = Annotated[str, Field(pattern=VALUE_PATTERN, max_length=1000)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ResourceLimits(_Strict):
    """A function's CPU and memory in production (Compose's ``deploy.resources.limits``)."""

    cpus: str = Field(pattern=r"^\d+(\.\d+)?$")
    memory: str = Field(pattern=r"^\d+[KMG]$")


class Function(_Strict):
    """One function of the stack."""

    name: str = Field(pattern=AGENT_NAME.pattern)
    kind: Kind
    source: str = Field(pattern=SOURCE_PATTERN)
    """Its folder, relative to the repository root; ``main.py`` there is loaded."""
    target: str = Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    """The function in ``main.py`` (functions-framework's ``--target``; the Dockerfile stage)."""
    port: int = Field(gt=0, lt=65536)
    """Its host port under the emulator (``http://localhost:<port>``)."""
    service: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]*$")
    """Its Compose service name, so its host name on the Compose network."""
    image: str = Field(pattern=IMAGE_PATTERN)
    config: tuple[Annotated[str, Field(pattern=CONFIG_PATTERN)], ...] = ()
    """Files (or folders, ending in ``/``) from ``config/`` that its image needs."""
    extra: str | None = None
    """Its extra in pyproject.toml; ``None``: it needs only the core dependencies."""
    limits: ResourceLimits | None = None
    """Its production limits; an agent without them gets the manifest's ``agent_limits``."""
    environment: dict[Variable, Value] = Field(default_factory=dict)
    """An agent's own variables, as Compose passes them (``${TAVILY_API_KEY:-}``)."""

    @property
    def main(self) -> str:
        """The file functions-framework loads: ``<source>/main.py``."""
        return f"{self.source}/main.py"

    @property
    def container_port(self) -> int:
        return self.port if self.kind == "gateway" else AGENT_CONTAINER_PORT

    @property
    def service_url(self) -> str:
        """Its URL on the Compose network, as the other services reach it."""
        return f"http://{self.service}:{self.container_port}"

    @property
    def local_url(self) -> str:
        """Its URL on this machine under the emulator (and in a plain local run)."""
        return f"http://localhost:{self.port}"

    @property
    def url_variable(self) -> str:
        """The orchestrator's variable that points it elsewhere: ``<NAME>_URL``."""
        return url_variable(self.name)


class Manifest(_Strict):
    version: Literal[1] = 1
    agent_limits: ResourceLimits = ResourceLimits(cpus="0.5", memory="256M")
    functions: tuple[Function, ...]

    @model_validator(mode="after")
    def _unique(self) -> Manifest:
        for key in ("name", "target", "port", "service", "image", "url_variable"):
            seen: set[object] = set()
            for function in self.functions:
                value = getattr(function, key)
                if value in seen:
                    raise ValueError(f"two functions have {key} {value!r}")
                seen.add(value)
        for kind in ("gateway", "orchestrator"):
            if sum(f.kind == kind for f in self.functions) != 1:
                raise ValueError(f"exactly one function must be of kind {kind!r}")
        return self

    @property
    def agents(self) -> tuple[Function, ...]:
        return tuple(f for f in self.functions if f.kind == "agent")

    def function(self, name: str) -> Function:
        for function in self.functions:
            if function.name == name:
                return function
        raise ConfigError(f"{MANIFEST_FILE}: no function {name!r}")

    def of_kind(self, kind: Kind) -> Function:
        return next(f for f in self.functions if f.kind == kind)

    def limits(self, function: Function) -> ResourceLimits:
        return function.limits or self.agent_limits


def url_variable(agent: str) -> str:
    """The variable that sets agent ``agent``'s URL: ``CALCULATOR_URL``, ``GEO_V2_URL``."""
    return f"{agent.upper().replace('-', '_')}_URL"


def manifest_path(environ: Mapping[str, str] | None = None, root: Path | None = None) -> Path:
    """``$FUNCTIONS_MANIFEST`` if set, else ``functions.yaml`` at ``root`` (the repository)."""
    environ = os.environ if environ is None else environ
    value = environ.get(MANIFEST_VARIABLE)
    return Path(value) if value else (root or REPO_ROOT) / MANIFEST_FILE


def load_manifest(path: Path | None = None) -> Manifest:
    """Read and validate the manifest (``manifest_path()`` by default)."""
    path = path or manifest_path()
    return parse_manifest(read_yaml(path), path)


def parse_manifest(data: dict[str, Any], path: Path) -> Manifest:
    """Validate ``data`` (the manifest's contents); problems name ``path``, function and key."""
    try:
        return Manifest.model_validate(data)
    except ValidationError as exc:
        problems = validation_problems(exc, "(top level)")
        raise ConfigError(
            "; ".join(f"{path}: {_where(data, where)}: {problem}" for where, problem in problems)
        ) from exc


def _where(data: dict[str, Any], dotted: str) -> str:
    """``functions.2.port`` as ``functions[calculator].port``, which a reader can find."""
    first, _, rest = dotted.partition(".")
    number, _, key = rest.partition(".")
    functions = data.get("functions")
    if first != "functions" or not number.isdigit() or not isinstance(functions, list):
        return dotted
    entry = functions[int(number)] if int(number) < len(functions) else None
    name = entry.get("name") if isinstance(entry, dict) else None
    return f"functions[{name or number}]" + (f".{key}" if key else "")
