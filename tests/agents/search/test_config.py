"""config/search.yaml, its environment overrides, and how a bad file is reported."""

from __future__ import annotations

from pathlib import Path

import pytest

from functions.agents.search.config import SearchConfig
from shared.config import REPO_ROOT
from shared.errors import ConfigError


def test_shipped_config_points_at_the_shipped_corpus() -> None:
    config = SearchConfig.load({})
    assert config.corpus_path() == REPO_ROOT / "config" / "knowledge"
    assert config.corpus_path().is_dir()


def test_relative_corpus_dir_is_taken_from_the_repository_root() -> None:
    assert SearchConfig(corpus_dir="docs/kb").corpus_path() == REPO_ROOT / "docs" / "kb"


def test_environment_overrides_the_corpus_dir(tmp_path: Path) -> None:
    config = SearchConfig.load({"SEARCH_CORPUS_DIR": str(tmp_path)})
    assert config.corpus_path() == tmp_path


def test_another_config_file_can_be_named(tmp_path: Path) -> None:
    path = tmp_path / "search.yaml"
    path.write_text("corpus_dir: /srv/kb\nsnippet_tokens: 10\n")
    config = SearchConfig.load({"SEARCH_CONFIG": str(path)})
    assert config.corpus_path() == Path("/srv/kb")
    assert config.snippet_tokens == 10


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("snippet_tokens: 1000\n", "snippet_tokens: Input should be less than or equal to 64"),
        ("corpus_dirr: x\n", "corpus_dirr: Extra inputs are not permitted"),
    ],
)
def test_bad_config_names_the_file_and_key(tmp_path: Path, text: str, problem: str) -> None:
    path = tmp_path / "search.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as caught:
        SearchConfig.load({"SEARCH_CONFIG": str(path)})
    assert f"{path}: {problem}" in caught.value.message
