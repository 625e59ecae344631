"""The shipped knowledge base (config/knowledge): well-formed, and it answers what users ask."""

from __future__ import annotations

import pytest

from functions.agents.search.agent import SearchInput, build_spec
from functions.agents.search.config import SearchConfig
from shared.agent import AgentResult, AgentSpec

KNOWLEDGE = SearchConfig.load({}).corpus_path()
DOCUMENTS = sorted(KNOWLEDGE.glob("*.md"))


@pytest.fixture(scope="module")
def spec() -> AgentSpec[SearchInput]:
    return build_spec(SearchConfig.load({}))


def top_sources(spec: AgentSpec[SearchInput], query: str, top_k: int = 3) -> list[str]:
    outcome = spec.run(SearchInput(query=query, top_k=top_k))
    assert isinstance(outcome, AgentResult)  # search runs plain code, not a coroutine
    return [hit["source"] for hit in outcome.result["hits"]]


def test_a_handful_of_short_titled_documents() -> None:
    assert 6 <= len(DOCUMENTS) <= 10
    for path in DOCUMENTS:
        text = path.read_text(encoding="utf-8")
        assert text.startswith("# "), path.name
        assert len(text.split()) < 600, f"{path.name} should stay short"


@pytest.mark.parametrize(
    "variable",
    [
        "ANTHROPIC_API_KEY",
        "ANTHROPIC_BASE_URL",
        "AWS_ACCESS_KEY_ID",
        "AWS_ENDPOINT_URL_BEDROCK_RUNTIME",
        "GATEWAY_API_KEYS",
        "TAVILY_API_KEY",
        "TAVILY_BASE_URL",
        "GATEWAY_URL",
        "CALCULATOR_URL",
        "SEARCH_URL",
        "DATA_PROCESSOR_URL",
        "LOG_LEVEL",
        "PORT",
        "SEARCH_CORPUS_DIR",
    ],
)
def test_every_environment_variable_is_documented_in_configuration(
    spec: AgentSpec[SearchInput], variable: str
) -> None:
    assert "configuration.md" in top_sources(spec, variable, top_k=10)


@pytest.mark.parametrize(
    ("query", "expected_source"),
    [
        ("what is agent orchestrator", "overview.md"),
        ("make setup make test make demo", "running.md"),
        ("x-gateway-provider header", "gateway.md"),
        ("circuit breaker cooldown", "gateway.md"),
        ("fallback between providers retries", "gateway.md"),
        ("binary mode ce- headers structured", "cloudevents.md"),
        ("deploy on AWS Lambda web adapter", "deployment.md"),
        ("calculator percentages", "agents.md"),
        ("run_id steps budgets", "orchestrator.md"),
        ("error shape status codes", "errors.md"),
        ("repository layout shared folder", "architecture.md"),
    ],
)
def test_common_questions_find_the_right_document_first(
    spec: AgentSpec[SearchInput], query: str, expected_source: str
) -> None:
    assert top_sources(spec, query)[0] == expected_source
