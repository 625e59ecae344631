"""The rules behind the local model: reading a request, choosing tools, stating results.

Every rule works on text already bounded by the caller (``local.py`` passes at most
``TEXT_WINDOW`` characters to the regexes and ``DATA_WINDOW`` to the data parsers), runs in time
linear in it, and calls ``check`` between steps so that a deadline can end the work.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from functions.gateway.providers import local_data
from functions.gateway.providers.local_data import csv_rows

TEXT_WINDOW = 4 * 1024
"""Characters, from the end of the last user turn, that the expression and lookup rules read.
A request to a rule-based model is a sentence or two; the end of the turn is what it asks."""
DATA_WINDOW = 256 * 1024
"""Characters of a user turn (or of one tool result) that are parsed as JSON or CSV data."""

Check = Callable[[], None]
"""Called between steps; raises when the request's deadline has passed."""
Clock = Callable[[], float]


def no_deadline() -> None:
    return None


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
    r"^\s*(?:please\s+)?(?:(?:can|could) you\s+)?(?:search(?: (?:the|our|your) \w+(?: \w+)?)? for"
    r"|look up|find(?: out)?|tell me(?: about)?|what(?:'s| is| are)|compute|calculate|work out"
    r"|evaluate)\s+",
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
    arguments: dict[str, Any] = field(default_factory=dict)
    """The input of the tool_use this answers: what was asked, to state the answer."""


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
    uses = {
        block.get("id"): block
        for message in messages
        if message.get("role") == "assistant" and isinstance(message.get("content"), list)
        for block in message["content"]
        if isinstance(block, dict) and block.get("type") == "tool_use"
    }
    results = []
    for block in content:
        if not isinstance(block, dict) or block.get("type") != "tool_result":
            continue
        use = uses.get(block.get("tool_use_id")) or {}
        arguments = use.get("input")
        results.append(
            ToolResult(
                name=str(use.get("name", "tool")),
                content=block_text(block.get("content")),
                is_error=bool(block.get("is_error")),
                arguments=arguments if isinstance(arguments, dict) else {},
            )
        )
    return results


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


def extract_expression(text: str, check: Check = no_deadline) -> str | None:
    for pattern, symbol in WORD_OPERATORS:
        text = pattern.sub(f" {symbol} ", text)
    best = ""
    for match in EXPRESSION.finditer(text):
        check()
        candidate = _balance(match.group().strip(" ,"))
        if (
            re.search(r"\d", candidate)
            and OPERATOR.search(candidate)
            and len(candidate) > len(best)
        ):
            best = candidate
    return best or None


def _balance(candidate: str) -> str:
    """Drop the unmatched ``(`` that open ``candidate`` and the unmatched ``)`` that end it.

    One pass from each end with running counts: counting again after every character dropped
    made 400 KB of ``(`` take 44 s."""
    opened, closed = candidate.count("("), candidate.count(")")
    start, end = 0, len(candidate)
    while opened > closed and start < end and candidate[start] == "(":
        start, opened = start + 1, opened - 1
        while start < end and candidate[start].isspace():
            start += 1
    while closed > opened and end > start and candidate[end - 1] == ")":
        end, closed = end - 1, closed - 1
        while end > start and candidate[end - 1].isspace():
            end -= 1
    return candidate[start:end].strip()


def extract_data(text: str) -> dict[str, Any] | None:
    """Rows attached to ``text`` as a JSON list of objects, or CSV lines; None if neither."""
    found = find_data(text)
    return found[0] if found else None


def find_data(text: str) -> tuple[dict[str, Any], str] | None:
    """The rows attached to ``text`` (as ``extract_data``) and the prose around them."""
    start, end = text.find("["), text.rfind("]")
    if 0 <= start < end:
        rows = strict_json(text[start : end + 1])
        if isinstance(rows, list) and rows and all(isinstance(r, dict) for r in rows):
            return {"rows": rows}, f"{text[:start]} {text[end + 1 :]}".strip()
    lines = text.splitlines()
    first, last = _longest_table(lines)
    if last - first < 2:
        return None
    table = "\n".join(line.strip() for line in lines[first:last])
    return {"csv": table}, "\n".join(lines[:first] + lines[last:]).strip()


def _longest_table(lines: list[str]) -> tuple[int, int]:
    """Where the longest run of consecutive lines with the same number (at least one) of commas
    begins and ends: a CSV block, even under a heading or beside prose that has commas of its
    own. Linear."""
    best = (0, 0)
    start, commas = 0, 0
    for index, line in enumerate(lines):
        count = line.count(",")
        if not count or count != commas:
            start, commas = index, count
        if count and index + 1 - start > best[1] - best[0]:
            best = (start, index + 1)
    return best


TASK_LABEL = "Task:"
DATA_HEADING = "\n\nData ("
"""How the orchestrator lays out a user turn (``functions/orchestrator/prompt.py``): the task
after ``Task:``, then the data under a ``Data (dataset ...)`` heading line."""


def split_task(text: str) -> tuple[str, str | None]:
    """``text`` without the orchestrator's scaffolding: the task itself, and the data section
    under its heading (None when there is none). Other text is returned as it is."""
    if not text.startswith(TASK_LABEL):
        return text, None
    text = text[len(TASK_LABEL) :].lstrip()
    heading = text.rfind(DATA_HEADING)
    if heading < 0:
        return text, None
    section = text[heading + len(DATA_HEADING) :].partition("\n")[2]  # under the heading
    return text[:heading].strip(), section


def strict_json(text: str) -> Any:
    """``text`` parsed as JSON, or None when it is not JSON the answer could carry on: invalid,
    nested too deeply, or holding ``NaN``/``Infinity``/``1e999`` (not JSON numbers)."""
    try:
        return json.loads(text, parse_constant=_refuse_constant, parse_float=_finite_float)
    except (ValueError, RecursionError):
        return None


def _refuse_constant(name: str) -> None:
    raise ValueError(f"{name} is not a JSON number")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"{text[:20]} is beyond a floating-point number")
    return value


def plan_tool_calls(
    text: str,
    tools: list[dict[str, Any]],
    data_text: str | None = None,
    check: Check = no_deadline,
) -> list[ToolCall]:
    """One call per clause of ``text`` that a tool fits; independent calls, in order.

    ``data_text`` is where attached rows are looked for (the whole user turn when it is small
    enough, else None); ``text`` is the window the expression and lookup rules read."""
    by_kind: dict[str, list[dict[str, Any]]] = {}
    for tool in tools:
        by_kind.setdefault(tool_kind(tool), []).append(tool)
    if "data" in by_kind:
        call = _data_call(by_kind["data"], data_text, text, check)
        if call is not None:
            return [call]
    calls: list[ToolCall] = []
    for clause in (c.strip() for c in CLAUSE_SPLIT.split(text)):
        check()
        call = _plan_clause(clause, by_kind, check)
        if call and call not in calls:
            calls.append(call)
    return calls


def _plan_clause(
    clause: str, by_kind: dict[str, list[dict[str, Any]]], check: Check
) -> ToolCall | None:
    if not clause:
        return None
    expression = extract_expression(clause, check)
    if expression and "calc" in by_kind:
        return _fill_first(by_kind["calc"], {"expression": expression})
    query = lookup_query(clause)
    if query is None:
        return None
    web, search = by_kind.get("web", []), by_kind.get("search", [])
    lookups = web + search if WEB_WORDS.search(clause) else search + web
    return _fill_first(lookups, {"query": query})


def lookup_query(clause: str) -> str | None:
    """What to look up for ``clause``: its words without the request around them."""
    query = FILLER.sub("", clause).strip(" ?.!")
    if len(query) < 2 or not any(char.isalnum() for char in query):
        return None
    return query


def _data_call(
    tools: list[dict[str, Any]], data_text: str | None, window: str, check: Check
) -> ToolCall | None:
    """The data tool's call for a question over attached data: the operation that answers it
    (``local_data.operation_for``), or ``describe`` when the tool cannot take that one."""
    question, section = split_task(data_text or window)
    named = _named_dataset(tools, data_text or window)
    found = find_data(section if section is not None else data_text) if data_text else None
    check()
    if named is None and found is None:
        return None
    table: local_data.Table | None
    if found is not None:
        data, prose = found
        table = local_data.table_of(data)
        question = question if section is not None else prose
    else:
        data, table = {}, local_data.table_from_summary(section or "")
    wanted = local_data.operation_for(question[-TEXT_WINDOW:], table) if table else {}
    check()
    if named is not None:
        tool, name = named
        return _fill_operation([tool], {"dataset": name}, wanted) or ToolCall(
            str(tool["name"]), {"dataset": name, "operation": "describe"}
        )
    call = _fill_operation(tools, data, wanted)
    if call is None and "csv" in data:  # a data tool that takes rows only
        rows = table.rows if table is not None and table.rows is not None else csv_rows(data["csv"])
        call = _fill_operation(tools, {"rows": rows}, wanted)
    return call


def _fill_operation(
    tools: list[dict[str, Any]], source: dict[str, Any], wanted: dict[str, Any]
) -> ToolCall | None:
    """The call doing ``wanted`` on ``source`` with the first tool that takes all of it, else
    the first that can describe ``source``."""
    if wanted and wanted.get("operation") != "describe":
        for tool in tools:
            call = _fill(tool, {**source, **wanted})
            if call is not None and all(call.arguments.get(k) == v for k, v in wanted.items()):
                return call
    return _fill_first(tools, {**source, "operation": "describe"})


def _named_dataset(tools: list[dict[str, Any]], text: str) -> tuple[dict[str, Any], str] | None:
    """A data tool offering the request's data by name (a ``dataset`` enum, as the
    orchestrator passes a task's data), and that name, when the request mentions it: the tool
    is called with the name rather than with rows copied out of the prompt."""
    for tool in tools:
        properties = (tool.get("input_schema") or {}).get("properties") or {}
        names = (
            (properties.get("dataset") or {}).get("enum") if isinstance(properties, dict) else None
        )
        if isinstance(names, list) and names and isinstance(names[0], str) and names[0] in text:
            return tool, names[0]
    return None


def _fill_first(tools: list[dict[str, Any]], values: dict[str, Any]) -> ToolCall | None:
    """The call of the first of ``tools`` whose schema ``values`` can fill."""
    for tool in tools:
        call = _fill(tool, values)
        if call is not None:
            return call
    return None


def _fill(tool: dict[str, Any], values: dict[str, Any]) -> ToolCall | None:
    """Arguments for ``tool`` from ``values``, matched to its schema's property names; None
    when a required property cannot be filled (a call the tool would refuse)."""
    schema = tool.get("input_schema") or {}
    properties: dict[str, Any] = schema.get("properties") or {}
    arguments: dict[str, Any] = {}
    for prop, spec in properties.items():
        value = _value_for(prop, spec if isinstance(spec, dict) else {}, values)
        if value is not None:
            arguments[prop] = value
    if not arguments or any(req not in arguments for req in schema.get("required") or []):
        return None  # a call carrying nothing the rule found is no call for this request
    return ToolCall(name=str(tool["name"]), arguments=arguments)


def _value_for(prop: str, spec: dict[str, Any], values: dict[str, Any]) -> Any:
    if prop in values:
        value = values[prop]
        enum = spec.get("enum")
        return _fitted(value if not enum or value in enum else enum[0], spec)
    for meaning, names in SYNONYMS.items():
        if prop.lower() in names and meaning in values:
            return _fitted(values[meaning], spec)
    return None


_JSON_TYPES: dict[str, type | tuple[type, ...]] = {
    "string": str,
    "array": list,
    "object": dict,
    "number": (int, float),
    "integer": int,
    "boolean": bool,
}


def _fitted(value: Any, spec: dict[str, Any]) -> Any:
    """``value`` if the property can take it (type and length), else None."""
    expected = _JSON_TYPES.get(str(spec.get("type")))
    if expected is not None and not isinstance(value, expected):
        return None
    if isinstance(value, str) and len(value) > spec.get("maxLength", len(value)):
        return None  # cut, an expression or a query would ask something else
    return value


NAMED_TOOL = (
    r"\b(?:use|call|run|ask)\s+(?:the\s+)?{name}\b(?:\s+(?:tool|agent))?"
    r"[\s:,-]*(?:on|for|with|to)?[\s:,-]*"
)
"""A request naming a tool: "use wordcount on: one two", "call the geo agent for Oslo"."""
WORD = re.compile(r"[\w-]+")
"""What a tool's name can be (the tool names model APIs accept), as words of a request."""


def named_tool(
    tools: list[dict[str, Any]], text: str, check: Check = no_deadline
) -> tuple[dict[str, Any], str] | None:
    """The tool no rule knows (a user's own agent) that ``text`` asks for by name, and the text
    after the name (the whole ``text`` when nothing follows). Tools whose names the rules know
    are chosen by them, as before, so "use the calculator for 2+2 and search for X" stays two
    calls; a description that mentions another tool ("not for arithmetic: use calculator")
    does not hide a tool asked for by name. Only a tool whose name is a word of ``text`` is
    tried (a set lookup), so a request offering thousands of tools costs no regex for each."""
    words = set(WORD.findall(text.lower()))
    for tool in tools:
        name = str(tool.get("name", ""))
        if name.lower() not in words or tool_kind({"name": name}) != "other":
            continue
        check()
        found = re.search(NAMED_TOOL.format(name=re.escape(name)), text, re.IGNORECASE)
        if found:
            return tool, text[found.end() :].strip() or text
    return None


def forced_call(tool: dict[str, Any], text: str, check: Check = no_deadline) -> ToolCall | None:
    """The call of ``tool`` the rules can fill from ``text`` when the caller demands one
    (``tool_choice`` any or tool) although no rule chose it; None when they cannot."""
    query = lookup_query(text) or text
    return _fill(tool, {"expression": extract_expression(text, check) or query, "query": query})
