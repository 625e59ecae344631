"""A tiny agent for the agent_app tests: repeats a word."""

from __future__ import annotations

from pydantic import BaseModel, Field
from starlette.requests import Request
from starlette.responses import Response

from shared.agent import AgentResult, AgentSpec, agent_app
from shared.entry import http
from shared.runtime import prepare


class RepeatInput(BaseModel):
    word: str = Field(description="The word to repeat.", min_length=1, max_length=20)
    times: int = Field(2, description="How many times.", ge=1, le=5)


def run(agent_input: RepeatInput) -> AgentResult:
    return AgentResult(" ".join([agent_input.word] * agent_input.times), meta={"engine": "repeat"})


SPEC = AgentSpec(
    name="repeat",
    description="Repeats a word; use it when asked to repeat something.",
    input_model=RepeatInput,
    run=run,
    example={"word": "hi", "times": 3},
)
prepare()  # before the app is built and gunicorn forks: see shared/runtime.py
app = agent_app(SPEC)


@http
async def repeat(request: Request) -> Response:
    return await app(request)
