"""The rules behind the local model: reading a request, choosing tools, stating results."""

from __future__ import annotations

import csv
import io
import json
import re
from dataclasses import dataclass
from typing import Any

KIND_KEYWORDS = (
    ("calc", ("calculat", "arithmetic", "math", "expression")),
    ("data", ("tabular", "csv", "rows", "table", "data")),
    ("web", ("web", "internet", "tavily", "online")),
    ("search", ("search", "lookup", "look up", "knowledge", "documentation", "docs", "corpus")),
)
WEB_WORDS = re.compile(r"\b(web|internet|online|news|latest|today|current|recent)\b", re.I)
WORD_OPERATORS = (
    (re.compile(r"\bto the power of\b", re.I), "**"),
    (re.compile(r"\bmultiplied by\b|\btimes\b", re.I), "*"),
    (re.compile(r"\bdivided by\b", re.I), "/"),
    (re.compile(r"\bplus\b", re.I), "+"),
    (re.compile(r"\bminus\b", re.I), "-"),
    (re.compile(r"\bsquared\b", re.I), "**2"),
)
_FUNCS = r"sqrt|log10|log2|log|exp|sin|cos|tan|abs|round|min|max|floor|ceil|pi"
EXPRESSION = re.compile(
    rf"(?:\d[\d_]*(?:\.\d+)?(?:[eE][-+]?\d+)?|\.\d+|\b(?:{_FUNCS}|e)\b|%\s*of\b|[-+*/%^(),×÷]|\s)+"
)
OPERATOR = re.compile(rf"[-+*/%^×÷]|\b(?:{_FUNCS})\b")
CLAUSE_SPLIT = re.compile(
    r";|\bthen\b|\band\b(?=\s+(?:also\s+)?(?:compute|calculate|work out|evaluate|search|look|find"
    r"|tell|what|how|who))",
    re.I,
)
FILLER = re.compile(
    r"^\s*(?:please\s+)?(?:(?:can|could) you\s+)?(?:search(?: the \w+)? for|look up|find(?: out)?"
    r"|tell me(?: about)?|what(?:'s| is| are)|compute|calculate|work out|evaluate)\s+",
    re.I,
)
SYNONYMS = {
    "expression": ("expression", "expr", "formula", "input"),
    "query": ("query", "q", "question", "search", "terms", "text", "input"),
    "rows": ("rows", "data", "records", "items"),
    "csv": ("csv", "csv_text"),
}


@dataclass(frozen=True)
class ToolCall:
    name: str
    arguments: dict[str, Any]


@dataclass(frozen=True)
class ToolResult:
    name: str
    content: str
    is_error: bool


def block_text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = [
            b.get("text", "") for b in content if isinstance(b, dict) and b.get("type") == "text"
        ]
        return "\n".join(parts)
    return ""


def last_user_text(messages: list[dict[str, Any]]) -> str:
    for message in reversed(messages):
        if message.get("role") == "user":
            text = block_text(message.get("content"))
            if text.strip():
                return text.strip()
    return ""


def tool_results(messages: list[dict[str, Any]]) -> list[ToolResult]:
    """The tool results in the last message, named by the tool_use blocks they answer."""
    last = messages[-1]
    content = last.get("content")
    if last.get("role") != "user" or not isinstance(content, list):
        return []
    names = {
        block.get("id"): block.get("name", "tool")
        for message in messages
        if message.get("role") == "assistant" and isinstance(message.get("content"), list)
        for block in message["content"]
        if isinstance(block, dict) and block.get("type") == "tool_use"
    }
    return [
        ToolResult(
            name=str(names.get(block.get("tool_use_id"), "tool")),
            content=block_text(block.get("content")),
            is_error=bool(block.get("is_error")),
        )
        for block in content
        if isinstance(block, dict) and block.get("type") == "tool_result"
    ]


def tool_kind(tool: dict[str, Any]) -> str:
    name = str(tool.get("name", "")).lower()
    description = str(tool.get("description", "")).lower()
    for kind, words in KIND_KEYWORDS:  # the name decides before the description does
        if any(word in name for word in words):
            return kind
    for kind, words in KIND_KEYWORDS:
        if any(word in description for word in words):
            return kind
    return "other"


def extract_expression(text: str) -> str | None:
    for pattern, symbol in WORD_OPERATORS:
        text = pattern.sub(f" {symbol} ", text)
    best = ""
    for match in EXPRESSION.finditer(text):
        candidate = _balance(match.group().strip(" ,"))
        if (
            re.search(r"\d", candidate)
            and OPERATOR.search(candidate)
            and len(candidate) > len(best)
        ):
            best = candidate
    return best or None


def _balance(candidate: str) -> str:
    while candidate.count("(") > candidate.count(")") and candidate.startswith("("):
        candidate = candidate[1:].strip()
    while candidate.count(")") > candidate.count("(") and candidate.endswith(")"):
        candidate = candidate[:-1].strip()
    return candidate


def extract_data(text: str) -> dict[str, Any] | None:
    start, end = text.find("["), text.rfind("]")
    if 0 <= start < end:
        try:
            rows = json.loads(text[start : end + 1])
        except ValueError:
            rows = None
        if isinstance(rows, list) and rows and all(isinstance(r, dict) for r in rows):
            return {"rows": rows}
    lines = [line for line in text.splitlines() if line.count(",") >= 1]
    if len(lines) >= 2 and len({line.count(",") for line in lines}) == 1:
        return {"csv": "\n".join(line.strip() for line in lines)}
    return None


def csv_rows(text: str) -> list[dict[str, Any]]:
    """CSV text as rows, numbers as numbers."""
    return [
        {key: _number(value) for key, value in row.items()}
        for row in csv.DictReader(io.StringIO(text), skipinitialspace=True)
    ]


def _number(cell: str | None) -> Any:
    if cell is None:
        return None
    for kind in (int, float):
        try:
            return kind(cell)
        except ValueError:
            pass
    return cell


def plan_tool_calls(text: str, tools: list[dict[str, Any]]) -> list[ToolCall]:
    """One call per clause of the request that a tool fits; independent calls, in order."""
    by_kind: dict[str, dict[str, Any]] = {}
    for tool in tools:
        by_kind.setdefault(tool_kind(tool), tool)
    calls: list[ToolCall] = []
    data = extract_data(text)
    if data and "data" in by_kind:
        call = _fill(by_kind["data"], {**data, "operation": "describe"}, text)
        if call is None and "csv" in data:  # a data tool that takes rows only
            call = _fill(
                by_kind["data"], {"rows": csv_rows(data["csv"]), "operation": "describe"}, text
            )
        if call is not None:
            return [call]
    for clause in (c.strip() for c in CLAUSE_SPLIT.split(text)):
        call = _plan_clause(clause, by_kind)
        if call and call not in calls:
            calls.append(call)
    return calls


def _plan_clause(clause: str, by_kind: dict[str, dict[str, Any]]) -> ToolCall | None:
    if not clause:
        return None
    expression = extract_expression(clause)
    if expression and "calc" in by_kind:
        return _fill(by_kind["calc"], {"expression": expression}, clause)
    query = FILLER.sub("", clause).strip(" ?.!")
    if len(query) < 2:
        return None
    lookup = by_kind.get("web") if WEB_WORDS.search(clause) else None
    lookup = lookup or by_kind.get("search") or by_kind.get("web")
    return _fill(lookup, {"query": query}, clause) if lookup else None


def _fill(tool: dict[str, Any], values: dict[str, Any], text: str) -> ToolCall | None:
    """Arguments for ``tool`` from ``values``, matched to its schema's property names; None
    when a required property cannot be filled (a call the tool would refuse)."""
    schema = tool.get("input_schema") or {}
    properties: dict[str, Any] = schema.get("properties") or {}
    arguments: dict[str, Any] = {}
    for prop, spec in properties.items():
        value = _value_for(prop, spec if isinstance(spec, dict) else {}, values)
        if value is not None:
            arguments[prop] = value
    if any(req not in arguments for req in schema.get("required") or []):
        return None
    return ToolCall(name=str(tool["name"]), arguments=arguments)


def _value_for(prop: str, spec: dict[str, Any], values: dict[str, Any]) -> Any:
    if prop in values:
        value = values[prop]
        enum = spec.get("enum")
        return value if not enum or value in enum else enum[0]
    for meaning, names in SYNONYMS.items():
        if prop.lower() in names and meaning in values:
            return values[meaning]
    return None


def summarise_results(results: list[ToolResult]) -> str:
    return " ".join(_summarise(result) for result in results)


def _summarise(result: ToolResult) -> str:
    if result.is_error:
        return f"The {result.name} tool failed: {result.content[:300]}."
    try:
        value: Any = json.loads(result.content)
    except ValueError:
        return f"{result.name} returned: {result.content[:500]}."
    if isinstance(value, dict) and "result" in value:
        value = value["result"]
    return _describe(result.name, value)


def _describe(name: str, value: Any) -> str:
    if isinstance(value, dict):
        if "expression" in value and "value" in value:
            return f"{value['expression']} = {value['value']}."
        if isinstance(value.get("hits"), list):
            return _describe_hits(name, value["hits"])
        if isinstance(value.get("results"), list) and "answer" in value:
            return _describe_web(value)
        if isinstance(value.get("rows"), list):
            count = value.get("row_count", len(value["rows"]))
            return f"{name} returned {count} rows: {_compact(value['rows'])}."
    return f"{name} returned: {_compact(value)}."


def _describe_hits(name: str, hits: list[Any]) -> str:
    if not hits:
        return f"{name} found nothing that matches."
    top = hits[:3]
    found = "; ".join(
        f"{h.get('title', '?')} ({h.get('source', '')}): {h.get('snippet', '')}".strip()
        for h in top
        if isinstance(h, dict)
    )
    return f"{name} found {len(hits)} matches. Best: {found}."


def _describe_web(value: dict[str, Any]) -> str:
    sources = ", ".join(
        str(r.get("url")) for r in value["results"][:3] if isinstance(r, dict) and r.get("url")
    )
    answer = value.get("answer") or "no direct answer"
    return f"The web says: {answer} (sources: {sources or 'none'})."


def _compact(value: Any, limit: int = 500) -> str:
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str)
    return text if len(text) <= limit else text[: limit - 3] + "..."
