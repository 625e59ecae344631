"""The search agent's configuration: ``config/search.yaml``, with environment overrides."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from shared.config import REPO_ROOT, config_path, load_config

ENV_OVERRIDES = {"SEARCH_CORPUS_DIR": "corpus_dir"}

DEFAULT_ABOUT = (
    "the documentation of Agent Orchestrator itself: what it is, its architecture, how to run "
    "and test it, the model gateway (routes, providers, retries, fallback, circuit breaker, "
    "headers), configuration and environment variables, the agents, CloudEvents, and deploying"
)


class SearchConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    corpus_dir: str = "config/knowledge"
    """Folder of ``*.md``/``*.txt`` documents; a relative path is taken from the repository root."""
    about: str = Field(default=DEFAULT_ABOUT, min_length=1)
    """What the corpus covers, told to the planning model so it knows when searching helps."""
    snippet_tokens: int = Field(default=24, ge=4, le=64)
    """Length of a hit's snippet, in words."""
    max_file_bytes: int = Field(default=1_000_000, ge=1)
    """Larger files are skipped (and logged), which bounds the index's memory."""

    def corpus_path(self) -> Path:
        path = Path(self.corpus_dir).expanduser()
        return path if path.is_absolute() else REPO_ROOT / path


def load_search_config(environ: Mapping[str, str] | None = None) -> SearchConfig:
    """``$SEARCH_CONFIG`` or ``config/search.yaml``; ``$SEARCH_CORPUS_DIR`` overrides the folder."""
    path = config_path("SEARCH_CONFIG", "search.yaml", environ)
    return load_config(SearchConfig, path, env_overrides=ENV_OVERRIDES, environ=environ)
