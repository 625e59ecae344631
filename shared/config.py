"""Load a YAML config file into a pydantic model, with environment variables on top.

A bad file stops the function at start-up with a message naming the file, the key and the
problem, e.g. ``config/gateway.yaml: routes.default.0.timeout_s: Input should be a valid number``.

Config files are found in one folder: ``$CONFIG_DIR`` when set (a bundle or an image with its
own layout), else the repository's ``config/``. A file's own variable (``GATEWAY_CONFIG``...)
names a file anywhere and wins over both.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import yaml

from shared.errors import ConfigError, validation_problems

if TYPE_CHECKING:
    from pydantic import BaseModel

ModelT = TypeVar("ModelT", bound="BaseModel")

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_CONFIG_DIR = REPO_ROOT / "config"
CONFIG_DIR_VARIABLE = "CONFIG_DIR"


def read_yaml(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read config file: {exc.strerror or exc}") from exc
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the top level must be a mapping, got {type(data).__name__}")
    return data


def _set_dotted(data: dict[str, Any], dotted: str, value: str) -> None:
    node = data
    *parents, leaf = dotted.split(".")
    for key in parents:
        child = node.get(key)
        if not isinstance(child, dict):
            child = {}
            node[key] = child
        node = child
    node[leaf] = value


def load_config(
    model: type[ModelT],
    path: Path,
    *,
    env_overrides: Mapping[str, str] | None = None,
    environ: Mapping[str, str] | None = None,
) -> ModelT:
    """Read ``path``, apply ``env_overrides`` (variable name -> dotted key), validate.

    Values from the environment are strings; pydantic coerces them to the field's type.
    """
    # Here, not at the top: ``agentorch`` reads settings from this module (gateway_client_key)
    # and starts faster without pydantic.
    from pydantic import ValidationError

    environ = os.environ if environ is None else environ
    data = read_yaml(path)
    applied: dict[str, str] = {}
    for variable, dotted in (env_overrides or {}).items():
        value = environ.get(variable)
        if value not in (None, ""):
            _set_dotted(data, dotted, str(value))
            applied[dotted] = variable
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        problems = []
        for key, problem in validation_problems(exc, "(top level)"):
            source = f" (from ${applied[key]})" if key in applied else ""
            problems.append(f"{path}: {key}{source}: {problem}")
        raise ConfigError("; ".join(problems)) from exc


def config_dir(environ: Mapping[str, str] | None = None) -> Path:
    """The folder config files are read from: ``$CONFIG_DIR``, else the repository's ``config/``."""
    environ = os.environ if environ is None else environ
    value = environ.get(CONFIG_DIR_VARIABLE)
    if not value:
        return DEFAULT_CONFIG_DIR
    folder = Path(value)
    if not folder.is_dir():
        raise ConfigError(f"${CONFIG_DIR_VARIABLE}={value}: not a folder")
    return folder


def config_path(variable: str, default_name: str, environ: Mapping[str, str] | None = None) -> Path:
    """The config file named by ``variable`` if set, else ``<config_dir()>/<default_name>``."""
    environ = os.environ if environ is None else environ
    value = environ.get(variable)
    return Path(value) if value else config_dir(environ) / default_name


def env_number(
    name: str, default: float, environ: Mapping[str, str] | None = None, *, minimum: float = 0
) -> float:
    """A positive number from ``$name`` (``default`` when unset or empty); anything else
    stops start-up with the variable and the problem named."""
    environ = os.environ if environ is None else environ
    raw = environ.get(name) or ""
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"${name}={raw[:40]!r}: not a number") from None
    if not value > minimum:
        raise ConfigError(f"${name}={raw[:40]}: must be greater than {minimum:g}")
    return value


def gateway_keys(environ: Mapping[str, str] | None = None) -> tuple[str, ...]:
    """The keys the gateway accepts: ``$GATEWAY_API_KEYS``, comma-separated, in their order."""
    environ = os.environ if environ is None else environ
    return tuple(k.strip() for k in environ.get("GATEWAY_API_KEYS", "").split(",") if k.strip())


def gateway_client_key(environ: Mapping[str, str] | None = None) -> str | None:
    """The key a client of the gateway (the orchestrator, ``agentorch``) presents:
    ``$GATEWAY_API_KEY`` when set, else the first of ``$GATEWAY_API_KEYS``. So the one setting
    that turns keys on (``GATEWAY_API_KEYS`` in ``.env``) also gives its own stack a key."""
    environ = os.environ if environ is None else environ
    explicit = environ.get("GATEWAY_API_KEY", "").strip()
    return explicit or next(iter(gateway_keys(environ)), None)
