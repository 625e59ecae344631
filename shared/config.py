"""Where config files are, how one is read, and the gateway's and the orchestrator's keys.
Nothing here imports pydantic: ``agentorch`` reads its keys from here and starts faster without
it. A function's settings are read through ``shared.settings``.

Config files are found in one folder: ``$CONFIG_DIR`` when set (a bundle or an image with its
own layout), else the repository's ``config/``. A file's own variable (``GATEWAY_CONFIG``...)
names a file anywhere and wins over both.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from shared.errors import ConfigError

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_CONFIG_DIR = REPO_ROOT / "config"
CONFIG_DIR_VARIABLE = "CONFIG_DIR"


def yaml_loader() -> Any:
    """PyYAML's safe loader, on libyaml's parser where PyYAML was built with it: the same safe
    constructor, several times faster than the pure-Python parser.

    yaml is imported here, not at the top: compiling its resolver's patterns is a good part of a
    small function's start, and a function that reads no file never needs it (bench/RESULTS.md,
    "Cold start")."""
    import yaml

    return getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def read_yaml(path: Path) -> dict[str, Any]:
    """The mapping at the top of ``path``; an unreadable file, bad YAML or another shape
    raises ``ConfigError`` naming the file."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read config file: {exc.strerror or exc}") from exc
    import yaml

    try:
        data = yaml.load(text, Loader=yaml_loader())
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the top level must be a mapping, got {type(data).__name__}")
    return data


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


def accepted_keys(service: str, environ: Mapping[str, str] | None = None) -> tuple[str, ...]:
    """The keys ``service`` (``GATEWAY``, ``ORCHESTRATOR``) accepts: ``$<SERVICE>_API_KEYS``,
    comma-separated, in their order."""
    environ = os.environ if environ is None else environ
    raw = environ.get(f"{service}_API_KEYS", "")
    return tuple(k.strip() for k in raw.split(",") if k.strip())


def client_key(service: str, environ: Mapping[str, str] | None = None) -> str | None:
    """The key a client of ``service`` presents: ``$<SERVICE>_API_KEY`` when set, else the
    first of ``$<SERVICE>_API_KEYS``. So the one setting that turns keys on (in ``.env``) also
    gives its own stack and ``agentorch`` a key."""
    environ = os.environ if environ is None else environ
    explicit = environ.get(f"{service}_API_KEY", "").strip()
    return explicit or next(iter(accepted_keys(service, environ)), None)


def gateway_keys(environ: Mapping[str, str] | None = None) -> tuple[str, ...]:
    """The keys the gateway accepts: ``$GATEWAY_API_KEYS``."""
    return accepted_keys("GATEWAY", environ)


def gateway_client_key(environ: Mapping[str, str] | None = None) -> str | None:
    """The key a client of the gateway (the orchestrator, ``agentorch``) presents."""
    return client_key("GATEWAY", environ)


def orchestrator_client_key(environ: Mapping[str, str] | None = None) -> str | None:
    """The key a client of the orchestrator (``agentorch ask``) presents:
    ``$ORCHESTRATOR_API_KEY``, else the first of ``$ORCHESTRATOR_API_KEYS``."""
    return client_key("ORCHESTRATOR", environ)
