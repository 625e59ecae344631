"""The environment contract: per function, the variables it reads, what each sets, its default
and whether it is a secret. One source for the deploy definitions (``emulator/definitions.py``),
``agentorch deploy`` and DEPLOY.md's table, so none of them lists a variable by hand.

Most variables come from the settings classes: every ``FunctionSettings`` subclass found in a
function's folder gives its ``env`` (variable -> dotted key), its ``file``'s variable, its
defaults and its ``secret`` set; ``shared.server.ServerSettings`` gives every function's. The
few read outside a settings class (provider credentials, the gateway's keys, the variables the
platforms and functions-framework set) are ``READ_ELSEWHERE`` below; tests/deploy_defs checks
that every variable the code reads is in the contract.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from shared.config import REPO_ROOT
from shared.manifest import Function, Manifest
from shared.server import ServerSettings
from shared.settings import FunctionSettings
from shared.transport import PROXY_VARIABLES

EVERY_FUNCTION = "(every function)"


@dataclass(frozen=True)
class Variable:
    """One environment variable a function reads."""

    name: str
    sets: str
    """What it sets: a settings key (``retry.max_attempts``) or, read elsewhere, its purpose."""
    default: str = ""
    """Its default, as text; empty: none (unset means off, or it is required)."""
    secret: bool = False
    """Kept in a secret store, never written into a definition."""
    wired: str | None = None
    """The function whose URL a deployment puts here (the orchestrator's ``<NAME>_URL``)."""
    optional: bool = False
    """A secret the Cloud Run and Cloud Functions definitions reference only when asked
    (``agentorch deploy --secret``): a second provider's, or a feature that is off unset."""


def _var(
    name: str, sets: str, default: str = "", secret: bool = False, optional: bool = False
) -> Variable:
    return Variable(name, sets, default, secret, optional=optional)


_PLATFORM = (
    _var("PORT", "the port to listen on (the platform sets it)", "8080"),
    _var("HOST", "the address to listen on", "0.0.0.0"),
    _var(
        "WORKERS",
        "worker processes: 1 is one process (shared.serve), more are functions-framework's",
        "1",
    ),
    _var("FUNCTION_TARGET", "the function to serve, if --target is not given (the image gives it)"),
    _var("FUNCTION_SOURCE", "its file, if --source is not given", "main.py"),
    _var("LOG_LEVEL", "the log level of the JSON lines on stderr", "INFO"),
    _var("LOG_FILE", "also append the log lines to this file (under /tmp on a FaaS)"),
    _var("PROMETHEUS_MULTIPROC_DIR", "the workers' shared metrics folder", "a new one in /tmp"),
    _var("CONFIG_DIR", "the folder of the YAML files", "config/"),
    _var("XDG_RUNTIME_DIR", "where gunicorn's control socket goes", "$TMPDIR"),
    *(
        _var(name, "the function's name, for its traces' service.name (the platform sets it)")
        for name in ("K_SERVICE", "AWS_LAMBDA_FUNCTION_NAME", "FUNCTION_TARGET")
    ),
    # OpenTelemetry (shared/telemetry): off while no exporter or endpoint is set.
    _var("OTEL_EXPORTER_OTLP_ENDPOINT", "the OTLP/HTTP collector traces and metrics go to"),
    _var("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "the collector for traces alone"),
    _var("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT", "the collector for metrics alone"),
    _var("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf, or grpc with its exporter installed"),
    _var("OTEL_TRACES_EXPORTER", "otlp, console or none"),
    _var("OTEL_METRICS_EXPORTER", "none keeps metrics to /metrics"),
    _var("OTEL_SERVICE_NAME", "the traces' service.name", "the function's target"),
    _var("OTEL_RESOURCE_ATTRIBUTES", "more resource attributes (key=value,...)"),
    _var("OTEL_TRACES_SAMPLER", "which traces are kept", "parentbased_always_on"),
    _var("OTEL_SDK_DISABLED", "true turns OpenTelemetry off whatever else is set"),
    _var(
        "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT",
        "true puts messages and tool content on the spans",
        "false",
    ),
    *(
        _var(name, "the OTLP exporter's headers (a collector's key)", secret=True, optional=True)
        for name in (
            "OTEL_EXPORTER_OTLP_HEADERS",
            "OTEL_EXPORTER_OTLP_TRACES_HEADERS",
            "OTEL_EXPORTER_OTLP_METRICS_HEADERS",
        )
    ),
)
_OUTBOUND = (
    _var("OUTBOUND_TRANSPORT", "wire or httpx (httpx when a proxy variable is set)"),
    *(_var(name, "the proxy for its outbound calls") for name in PROXY_VARIABLES),
)
CLI = "(agentorch CLI)"
"""Not a function: the variables the ``agentorch`` command reads on the user's machine."""

READ_ELSEWHERE: dict[str, tuple[Variable, ...]] = {
    EVERY_FUNCTION: _PLATFORM,
    "gateway": (
        _var(
            "GATEWAY_API_KEYS",
            "the keys clients must present (comma-separated); none: open",
            secret=True,
        ),
        _var("ANTHROPIC_API_KEY", "the Anthropic provider's key", secret=True),
        _var(
            "ANTHROPIC_AUTH_TOKEN",
            "the Anthropic provider's bearer token",
            secret=True,
            optional=True,
        ),
        _var("ANTHROPIC_BASE_URL", "another Anthropic endpoint", "Anthropic's"),
        _var("AWS_REGION", "Bedrock's region (Lambda sets it)", "us-east-1"),
        _var("AWS_BEARER_TOKEN_BEDROCK", "a Bedrock API key", secret=True, optional=True),
        _var(
            "AWS_ACCESS_KEY_ID",
            "Bedrock credentials outside AWS (Lambda uses its role)",
            secret=True,
            optional=True,
        ),
        _var(
            "AWS_SECRET_ACCESS_KEY", "Bedrock credentials outside AWS", secret=True, optional=True
        ),
        _var(
            "AWS_SESSION_TOKEN", "their session token (Lambda sets it)", secret=True, optional=True
        ),
        _var("AWS_ENDPOINT_URL_BEDROCK_RUNTIME", "another Bedrock endpoint", "AWS's"),
        _var("AWS_ENDPOINT_URL", "another endpoint for every AWS service", "AWS's"),
        *_OUTBOUND,
    ),
    "orchestrator": (
        _var(
            "ORCHESTRATOR_API_KEYS",
            "the keys its callers must present (comma-separated); none: open",
            secret=True,
            optional=True,
        ),
        _var(
            "GATEWAY_API_KEY",
            "the key it presents to the gateway",
            "first of GATEWAY_API_KEYS",
            secret=True,
        ),
        _var("AGENTS", "more agents by URL: name=url,..."),
        _var("MCP_SERVERS", "MCP servers whose tools are agents: name=url,..."),
        _var("APPROVAL_REQUIRED", "tools whose calls wait for a person's approval: a,b,..."),
        _var("FUNCTIONS_MANIFEST", "another functions.yaml", "functions.yaml"),
        *_OUTBOUND,
    ),
    "tavily": _OUTBOUND,
    CLI: (
        _var(
            "ORCHESTRATOR_API_KEY",
            "the key it presents to the orchestrator (`--api-key` wins)",
            "first of ORCHESTRATOR_API_KEYS",
            secret=True,
        ),
    ),
}
"""Variables read outside a settings class, by function (``EVERY_FUNCTION``: all of them;
``CLI``: the command's)."""
PER_AGENT: dict[str, tuple[Variable, ...]] = {
    "orchestrator": (
        _var(
            "AGENT_<NAME>_HEADERS",
            "headers for agent NAME's calls (its own auth): name=value,...; "
            "an agent with them gets no OUTBOUND_AUTH",
            secret=True,
        ),
        _var(
            "MCP_<NAME>_HEADERS",
            "headers for MCP server NAME's calls (its own auth): name=value,...",
            secret=True,
        ),
    ),
}
"""Variables named per agent, by function: in the table, never set by a definition (a
deployment adds the ones it needs, as secrets)."""


def function_variables(function: Function, manifest: Manifest) -> tuple[Variable, ...]:
    """The variables ``function`` reads beyond every function's (``common_variables``)."""
    found: dict[str, Variable] = {}
    for settings in settings_classes(function):
        for variable in _from_settings(settings, manifest):
            found.setdefault(variable.name, variable)
    for variable in READ_ELSEWHERE.get(function.name, ()):
        found.setdefault(variable.name, variable)
    return tuple(found.values())


def common_variables() -> tuple[Variable, ...]:
    """What every function reads: its server's settings and the platform's variables."""
    return (*_from_settings(ServerSettings, None), *READ_ELSEWHERE[EVERY_FUNCTION])


def secrets(function: Function, manifest: Manifest) -> tuple[Variable, ...]:
    return tuple(v for v in function_variables(function, manifest) if v.secret)


def wired(function: Function, manifest: Manifest) -> tuple[Variable, ...]:
    """The variables a deployment sets to other functions' URLs (the orchestrator's)."""
    return tuple(v for v in function_variables(function, manifest) if v.wired)


def settings_classes(function: Function) -> list[type[FunctionSettings]]:
    """The ``FunctionSettings`` subclasses ``function``'s folder defines or imports (from
    ``shared``: the orchestrator's ``OutboundAuthSettings``), but every function's
    ``ServerSettings``. Only files that name a settings class are imported to find them."""
    found: list[type[FunctionSettings]] = []
    for path in sorted((REPO_ROOT / function.source).rglob("*.py")):
        if path.name == "main.py" or "Settings" not in path.read_text(encoding="utf-8"):
            continue
        module = importlib.import_module(_module_name(path))
        for value in vars(module).values():
            if (
                isinstance(value, type)
                and issubclass(value, FunctionSettings)
                and value not in (FunctionSettings, ServerSettings)
                and value not in found
            ):
                found.append(value)
    return found


def _module_name(path: Path) -> str:
    return ".".join(path.relative_to(REPO_ROOT).with_suffix("").parts)


def _from_settings(settings: type[FunctionSettings], manifest: Manifest | None) -> list[Variable]:
    variables = []
    if settings.file is not None:
        name = settings.file.variable
        variables.append(_var(name, "its YAML file", f"config/{settings.file.name}"))
    agent_urls = False
    for name, dotted in settings.env.items():
        if dotted.startswith("agents.") and dotted.endswith(".url"):
            agent_urls = True  # the manifest's agents, below: this deployment's, not the shipped
            continue
        wire_to = {"gateway.url": manifest.of_kind("gateway").name} if manifest else {}
        default = _default(settings, dotted)
        secret = name in settings.secret
        variables.append(
            Variable(
                name,
                dotted,
                default,
                secret=secret,
                wired=wire_to.get(dotted),
                # A secret with a default (STORE_URL: memory://) works unset: a definition
                # references it only when asked (`agentorch deploy --secret`).
                optional=secret and default != "",
            )
        )
    if agent_urls and manifest is not None:
        after_gateway = next((i + 1 for i, v in enumerate(variables) if v.wired), 0)
        variables[after_gateway:after_gateway] = [
            Variable(a.url_variable, f"agents.{a.name}.url", a.local_url, wired=a.name)
            for a in manifest.agents
        ]
    return variables


def _default(settings: type[BaseModel], dotted: str) -> str:
    """The default of ``dotted`` in ``settings`` as text; empty when it has none."""
    node: Any = settings
    for key in dotted.split("."):
        model: type[BaseModel] = node if isinstance(node, type) else type(node)
        fields = model.model_fields
        field = fields.get(key)
        if field is None:
            return ""
        value = (
            getattr(node, key)
            if not isinstance(node, type)
            else field.get_default(call_default_factory=True)
        )
        if value is None or value is Ellipsis or repr(value) == "PydanticUndefined":
            return ""
        node = value
    return str(node)


def env_table(manifest: Manifest) -> list[str]:
    """DEPLOY.md's table: per function, each variable, what it sets, its default, whether it
    is a secret, and which function's URL a deployment wires into it."""
    rows = [
        "| function | variable | sets | default | secret / wired |",
        "| --- | --- | --- | --- | --- |",
    ]
    groups = [(EVERY_FUNCTION, common_variables())]
    groups += [
        (f.name, (*function_variables(f, manifest), *PER_AGENT.get(f.name, ())))
        for f in manifest.functions
    ]
    groups.append((CLI, READ_ELSEWHERE[CLI]))
    for name, variables in groups:
        for variable in variables:
            role = "**secret**" if variable.secret else ""
            if variable.wired:
                role = f"wired: {variable.wired}'s URL"
            sets = variable.sets.replace("|", "\\|")
            default = f"`{variable.default}`" if variable.default else ""
            rows.append(f"| {name} | `{variable.name}` | {sets} | {default} | {role} |")
    return rows
