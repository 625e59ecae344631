"""The tavily agent: web search through the Tavily API, for questions about the live web.

Settings are read and checked once, when ``main.py`` builds the agent, so a bad one stops the
function at start. Only the key is read again on every request (it is cheap), so a key added to a
running service, or set by a test, takes effect without a restart.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from functions.agents.tavily.client import (
    NOT_CONFIGURED_REASON,
    SearchQuery,
    TavilySettings,
    api_key_from_env,
    search,
)
from shared.agent import AgentResult, AgentSpec
from shared.aio import AsyncHttp
from shared.transport import outbound_transport

Query = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=400)]
Domain = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=253, pattern=r"^[^\s/]+$"),
]


class TavilyInput(BaseModel):
    """One web search."""

    model_config = ConfigDict(extra="forbid")

    query: Query = Field(description="What to search the web for, as a question or keywords.")
    search_depth: Literal["basic", "advanced"] = Field(
        default="basic",
        description="basic: fast. advanced: slower, more thorough, for hard or niche questions.",
    )
    topic: Literal["general", "news"] = Field(
        default="general", description="news: recent events and current affairs."
    )
    max_results: int = Field(default=5, ge=1, le=20, description="How many results to return.")
    include_answer: bool = Field(
        default=True, description="Also return a short answer Tavily writes from the results."
    )
    include_domains: list[Domain] = Field(
        default_factory=list,
        max_length=300,
        description="Only search these domains, e.g. ['python.org'].",
    )
    exclude_domains: list[Domain] = Field(
        default_factory=list, max_length=150, description="Never return results from these."
    )


async def run(request: TavilyInput, settings: TavilySettings, http: AsyncHttp) -> AgentResult:
    query = SearchQuery(
        query=request.query,
        search_depth=request.search_depth,
        topic=request.topic,
        max_results=request.max_results,
        include_answer=request.include_answer,
        include_domains=list(request.include_domains),
        exclude_domains=list(request.exclude_domains),
    )
    answer = await search(settings, query, http)
    return AgentResult(
        result=answer.as_json(),
        meta={"search_depth": request.search_depth, "topic": request.topic},
    )


DESCRIPTION = (
    "Searches the live web through the Tavily API and returns a short answer with sources "
    "(title, url, content snippet, relevance score). Use it for current events, facts that "
    "change or are newer than your knowledge, and anything that needs citable web sources. "
    "Do NOT use it for arithmetic (use calculator), for questions over data you already have "
    "(use data_processor), or for the local document corpus (use search). Needs a Tavily API "
    "key on the server; without one it answers 503 not_configured."
)

EXAMPLE = {"query": "latest stable Python release", "max_results": 3, "topic": "general"}


def build_spec(
    environ: Mapping[str, str] | None = None, http: AsyncHttp | None = None
) -> AgentSpec[TavilyInput]:
    """The agent over ``environ`` (default ``os.environ``); a bad setting raises ``ConfigError``.
    Its calls go over ``http`` (default: its own, on the transport ``environ`` chooses, which
    the spec's ``close`` closes); a given ``http`` is closed by whoever gives it."""
    started = TavilySettings.load(environ)
    owned = http is None
    http = http or AsyncHttp(outbound_transport(environ))

    def settings() -> TavilySettings:
        return started.model_copy(update={"api_key": api_key_from_env(environ)})

    def not_configured() -> str | None:
        # Cheap on purpose: says whether a key is set, never calls Tavily.
        return None if settings().configured else NOT_CONFIGURED_REASON

    return AgentSpec(
        name="tavily",
        description=DESCRIPTION,
        input_model=TavilyInput,
        run=lambda request: run(request, settings(), http),
        example=EXAMPLE,
        health=lambda: {"base_url": started.base_url},
        not_configured=not_configured,
        close=http.close if owned else None,
    )
