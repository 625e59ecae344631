"""One way to configure a function: its defaults, then its YAML file, then the environment.

A function's settings are one pydantic model that subclasses ``FunctionSettings`` and says where
its values come from; ``load()`` reads them once, at start-up::

    class GatewayConfig(FunctionSettings):
        file = SettingsFile("GATEWAY_CONFIG", "gateway.yaml")
        env = {"GATEWAY_DEADLINE_S": "deadline_s", "GATEWAY_MAX_ATTEMPTS": "retry.max_attempts"}

        deadline_s: float = Field(default=120.0, gt=0)
        retry: RetrySettings = RetrySettings()

    config = GatewayConfig.load()  # os.environ; tests pass a mapping

Each source overrides the one before it: a key the file leaves out keeps its default, and a
variable set in the environment wins over the file. A variable's value is stripped, and an empty
one counts as unset (Compose passes ``${X:-}`` as an empty string: it means "the default").
Values from the environment are text; pydantic coerces them to the field's type. A function with
no file (an agent configured by its environment alone) leaves ``file`` out.

Whatever is wrong stops the function at start-up with one message naming where each bad value
came from: ``config/gateway.yaml: retry.max_attempts (from $GATEWAY_MAX_ATTEMPTS): Input should
be a valid integer``, or for settings with no file ``$TAVILY_TIMEOUT_S='soon': Input should be a
valid number``.

Why not pydantic-settings' ``BaseSettings``: it is not a dependency of the functions (only of
dev tools) and would add its own import (with python-dotenv) to every cold start; its
environment source reads ``os.environ`` only (tests here pass a mapping); and the names this
project documents (``GATEWAY_MAX_ATTEMPTS`` for ``retry.max_attempts``, ``K_SINK``) follow no
prefix rule. It would need a custom source for the environment, one for the file and its own
error attribution: all of this module. The order of the sources is pydantic-settings' own
(environment over file over defaults), so moving onto it later changes no behaviour.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Self

from pydantic import BaseModel, ConfigDict, ValidationError

from shared.config import config_path, read_yaml
from shared.errors import ConfigError, validation_problems

TOP_LEVEL = "(top level)"


@dataclass(frozen=True)
class SettingsFile:
    """A function's YAML file: ``$<variable>`` when set, else ``<config_dir()>/<name>``."""

    variable: str
    name: str

    def path(self, environ: Mapping[str, str]) -> Path:
        return config_path(self.variable, self.name, environ)


class FunctionSettings(BaseModel):
    """The base of every function's settings; ``load()`` reads them (see the module's doc).
    Unknown keys are refused (a misspelt key is a mistake, not a default), and the settings
    are frozen: read once at start-up, then only read."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    file: ClassVar[SettingsFile | None] = None
    """Where the YAML file is; None: defaults and the environment only."""
    env: ClassVar[Mapping[str, str]] = {}
    """Environment variable -> the dotted key it sets (``retry.max_attempts``)."""
    secret: ClassVar[frozenset[str]] = frozenset()
    """Those of ``env``'s variables whose values are secrets: a deployment keeps them in a
    secret store (Secret Manager, Secrets Manager), never in a definition or a log."""

    @classmethod
    def load(
        cls,
        environ: Mapping[str, str] | None = None,
        env: Mapping[str, str] | None = None,
        data: dict[str, Any] | None = None,
    ) -> Self:
        """Defaults, then the file, then ``environ`` (``os.environ`` when None), validated.
        ``env`` replaces the class's variables when they depend on the file (the orchestrator's
        agents: one ``<NAME>_URL`` per agent it names); ``data``, the file's contents when the
        caller has read them already (and filled in values the file may leave out)."""
        environ = os.environ if environ is None else environ
        path = cls.file.path(environ) if cls.file is not None else None
        if data is None:
            data = read_yaml(path) if path is not None else {}
        applied: dict[str, tuple[str, str]] = {}
        for variable, dotted in (cls.env if env is None else env).items():
            value = (environ.get(variable) or "").strip()
            if value:
                _set_dotted(data, dotted, value)
                applied[dotted] = (variable, value)
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            raise ConfigError(settings_problems(exc, path, applied)) from exc


def settings_problems(
    exc: ValidationError, path: Path | None, applied: Mapping[str, tuple[str, str]]
) -> str:
    """Each problem with where its value came from: the file and key, and the variable that
    set it (``applied``: dotted key -> variable and value)."""
    problems = []
    for key, problem in validation_problems(exc, TOP_LEVEL):
        variable, value = applied.get(key, ("", ""))
        if path is not None:
            source = f" (from ${variable})" if variable else ""
            problems.append(f"{path}: {key}{source}: {problem}")
        elif variable:
            problems.append(f"${variable}={value[:40]!r}: {problem}")
        else:
            problems.append(problem if key == TOP_LEVEL else f"{key}: {problem}")
    return "; ".join(problems)


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
