"""``make demo``: the gateway and the calculator agent as local processes, offline.

A task goes to the gateway through the official ``anthropic`` SDK with the calculator's
schema as a tool; the local rule-based model asks for the tool, the demo calls the calculator
function over HTTP, hands the result back, and prints the model's final answer.
"""

from __future__ import annotations

import json
import sys
import urllib.error
import urllib.request
from typing import Any

import anthropic

from emulator.process import FunctionProcess, start_function

TASK = "What is 17 * (3 + 4) - 2**5?"
# The `local` route has only the offline model: no key found in this shell or in
# ~/.aws can turn the demo into real, billed calls.
ROUTE = "local"


def http_json(url: str, body: Any = None) -> Any:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, headers={"content-type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


def run(task: str) -> str:
    processes: list[FunctionProcess] = []
    try:
        gateway = start_function("gateway")
        processes.append(gateway)
        calculator = start_function("calculator")
        processes.append(calculator)
        print(f"gateway    {gateway.url}\ncalculator {calculator.url}\n\ntask: {task}")
        return answer(task, gateway.url, calculator.url)
    finally:
        for process in processes:
            process.stop()


def answer(task: str, gateway_url: str, calculator_url: str) -> str:
    schema = http_json(f"{calculator_url}/schema")
    tool = {k: schema[k] for k in ("name", "description", "input_schema")}
    client = anthropic.Anthropic(api_key="not-needed-offline", base_url=gateway_url, max_retries=0)
    messages: list[dict[str, Any]] = [{"role": "user", "content": task}]
    for _ in range(4):  # a bounded loop: the model asks for tools until it can answer
        reply = client.messages.create(
            model=ROUTE,
            max_tokens=512,
            tools=[tool],  # type: ignore[list-item]
            messages=messages,  # type: ignore[arg-type]
        )
        if reply.stop_reason != "tool_use":
            return "".join(b.text for b in reply.content if b.type == "text")
        messages.append({"role": "assistant", "content": [b.model_dump() for b in reply.content]})
        results = []
        for block in reply.content:
            if block.type == "tool_use":
                print(f"model asks {block.name} with {json.dumps(block.input)}")
                results.append(call_tool(calculator_url, block.name, block.id, block.input))
        messages.append({"role": "user", "content": results})
    raise RuntimeError("no final answer within 4 turns")


def call_tool(url: str, name: str, tool_use_id: str, tool_input: Any) -> dict[str, Any]:
    """The agent's answer as a tool_result; its refusal (a 4xx) as an error result."""
    try:
        output = http_json(url, tool_input)
    except urllib.error.HTTPError as exc:
        error = json.loads(exc.read() or b"{}").get("error", {}).get("message", str(exc))
        print(f"{name} refuses: {error}")
        return {
            "type": "tool_result",
            "tool_use_id": tool_use_id,
            "content": error,
            "is_error": True,
        }
    print(f"{name} answers {json.dumps(output['result'])}")
    return {"type": "tool_result", "tool_use_id": tool_use_id, "content": json.dumps(output)}


def main() -> None:
    task = " ".join(sys.argv[1:]) or TASK
    print(f"\nanswer: {run(task)}")


if __name__ == "__main__":
    main()
