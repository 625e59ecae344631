"""Compose's variable substitution and env files, for the emulator to read the file as Compose does.

``${VAR}``, ``$VAR``, ``${VAR:-default}`` (unset or empty), ``${VAR-default}`` (unset),
``${VAR:?message}`` / ``${VAR?message}`` (required), ``${VAR:+other}`` / ``${VAR+other}``,
and ``$$`` for a literal ``$``. An unset variable without a default becomes empty, as in Compose.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from shared.errors import ConfigError

_REFERENCE = re.compile(r"\$(?:(\$)|\{([^}]*)\}|([A-Za-z_][A-Za-z0-9_]*))")
_BRACED = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?+])(.*))?", re.DOTALL)


def interpolate(text: str, variables: Mapping[str, str], where: str = "") -> str:
    def substitute(match: re.Match[str]) -> str:
        escaped, braced, bare = match.groups()
        if escaped:
            return "$"
        if bare:
            return variables.get(bare, "")
        return _braced(braced, variables, where)

    return _REFERENCE.sub(substitute, text)


def _braced(expression: str, variables: Mapping[str, str], where: str) -> str:
    parsed = _BRACED.fullmatch(expression)
    if not parsed:
        raise ConfigError(f"{where}: invalid variable reference ${{{expression}}}")
    name, operator, argument = parsed.groups()
    value = variables.get(name)
    present = value is not None if operator and not operator.startswith(":") else bool(value)
    if operator in ("-", ":-"):
        return value if present and value is not None else interpolate(argument, variables, where)
    if operator in ("?", ":?"):
        if not present:
            raise ConfigError(f"{where}: variable {name} is required: {argument or 'not set'}")
        return value or ""
    if operator in ("+", ":+"):
        return interpolate(argument, variables, where) if present else ""
    return value or ""


def interpolate_tree(node: Any, variables: Mapping[str, str], where: str = "") -> Any:
    """Every string in a parsed YAML document, substituted."""
    if isinstance(node, str):
        return interpolate(node, variables, where)
    if isinstance(node, list):
        return [interpolate_tree(item, variables, where) for item in node]
    if isinstance(node, dict):
        return {k: interpolate_tree(v, variables, where) for k, v in node.items()}
    return node


def read_env_file(path: Path) -> dict[str, str]:
    """``KEY=VALUE`` lines; ``#`` comments, blank lines and quotes as Compose reads them."""
    values: dict[str, str] = {}
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        stripped = stripped.removeprefix("export ").strip()
        key, separator, value = stripped.partition("=")
        if not separator or not key.strip():
            raise ConfigError(f"{path}: line {number}: expected KEY=VALUE")
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        values[key.strip()] = value
    return values
