"""The search agent: its input model, its description for the planning model, and ``run``."""

from __future__ import annotations

import time
from dataclasses import asdict

from pydantic import BaseModel, ConfigDict, Field

from functions.agents.search.config import SearchConfig
from functions.agents.search.index import SearchIndex, query_terms
from shared.agent import AgentResult, AgentSpec

DEFAULT_TOP_K = 5
MAX_TOP_K = 20


class SearchInput(BaseModel):
    model_config = ConfigDict(extra="forbid")

    query: str = Field(
        min_length=1,
        max_length=500,
        description="Plain words to look for, e.g. 'gateway circuit breaker cooldown'. "
        "No operators needed: every word counts, sections with more of them rank higher.",
    )
    top_k: int = Field(
        default=DEFAULT_TOP_K, ge=1, le=MAX_TOP_K, description="How many hits to return."
    )


def describe(about: str) -> str:
    return (
        f"Full-text search over a local knowledge base: {about}. "
        "Use it for questions about how this system works, is configured, run or deployed. "
        "Returns the best-matching document sections, ranked (bm25), each with a title, "
        "its source file and a snippet with the matched words in **bold**. Words match "
        "loosely ('running' finds 'run'). "
        "Do NOT use it for general knowledge or current events from the web (use tavily), "
        "for arithmetic (use calculator) or for questions over a table of data "
        "(use data_processor). An empty hits list means the knowledge base does not cover it."
    )


def build_spec(config: SearchConfig | None = None) -> AgentSpec[SearchInput]:
    """The agent, reading ``config/search.yaml`` (and the environment) unless given a config."""
    config = config or SearchConfig.load()
    index = SearchIndex(
        config.corpus_path(),
        snippet_tokens=config.snippet_tokens,
        max_file_bytes=config.max_file_bytes,
    )

    def run(agent_input: SearchInput) -> AgentResult:
        started = time.perf_counter()
        terms = query_terms(agent_input.query)
        hits = index.search(terms, agent_input.top_k)
        return AgentResult(
            result={"query": agent_input.query, "hits": [asdict(hit) for hit in hits]},
            meta={
                "terms": terms,
                "sections_indexed": index.sections,
                "elapsed_ms": round((time.perf_counter() - started) * 1000, 3),
            },
        )

    return AgentSpec(
        name="search",
        description=describe(config.about),
        input_model=SearchInput,
        run=run,
        example={"query": "how does the gateway fall back between providers", "top_k": 3},
        health=index.health,
    )
