"""How the local model states tool results: each result in a sentence (a data tool's answer
as "Total units per region: North 120, South 80."), and honestly when a search found nothing
that answers the question.

Results are read only up to ``rules.DATA_WINDOW`` characters; a longer one is quoted, not
parsed.
"""

from __future__ import annotations

import re
from typing import Any

from functions.gateway.providers.local_rules import DATA_WINDOW, ToolResult, strict_json
from functions.gateway.providers.local_words import STOPWORDS
from shared.http import json_text

_WORD = re.compile(r"\w+")
MAX_LISTED = 20
"""Groups or rows named in a sentence; the rest are counted."""
_WORDING = {"==": "is", "!=": "is not", "contains": "contains", "in": "is one of"}
_LABELS = {"sum": "Total", "mean": "Average", "max": "Highest", "min": "Lowest"}


def summarise_results(results: list[ToolResult]) -> str:
    return " ".join(_summarise(result) for result in results)


def _summarise(result: ToolResult) -> str:
    if result.is_error:
        return f"The {result.name} tool failed: {result.content[:300]}."
    value = strict_json(result.content) if len(result.content) <= DATA_WINDOW else None
    if value is None:
        return f"{result.name} returned: {result.content[:500]}."
    if isinstance(value, dict) and "result" in value:
        value = value["result"]
    return _describe(result.name, value, result.arguments)


def _describe(name: str, value: Any, arguments: dict[str, Any]) -> str:
    if isinstance(value, dict):
        if "expression" in value and "value" in value:
            return f"{value['expression']} = {value['value']}."
        if isinstance(value.get("hits"), list):
            query = value.get("query") or arguments.get("query") or ""
            return _describe_hits(name, value["hits"], str(query))
        if isinstance(value.get("results"), list) and "answer" in value:
            return _describe_web(value)
        stated = state_result(arguments, value) if "operation" in arguments else None
        if stated is not None:
            return stated
        if isinstance(value.get("rows"), list):
            count = value.get("row_count", len(value["rows"]))
            return f"{name} returned {count} rows: {_compact(value['rows'])}."
    return f"{name} returned: {_compact(value)}."


def _describe_hits(name: str, hits: list[Any], query: str) -> str:
    relevant = [h for h in hits[:3] if isinstance(h, dict) and _relevant(h, query)]
    if not relevant:
        about = f" to {query[:200]!r}" if query else ""
        return (
            f"{name} found nothing relevant{about}, so I can't answer that offline: I am a "
            "rule-based model with no knowledge of my own. Set ANTHROPIC_API_KEY or AWS "
            "credentials for a real model, or TAVILY_API_KEY for web search."
        )
    found = "; ".join(
        f"{h.get('title', '?')} ({h.get('source', '')}): {h.get('snippet', '')}".strip()
        for h in relevant
    )
    return f"{name} found {len(hits)} matches. Best: {found}."


def _relevant(hit: dict[str, Any], query: str) -> bool:
    """The hit answers the query: more than half of the query's content words (not
    ``STOPWORDS``: "how do retries work" is about retries) appear in its title or snippet, or
    one of them names its title ("The model gateway › Retries, fallback, deadline"). Words are
    compared by their first five letters (the search stems: "retries" finds "retry"). A hit
    that shares one word of "the latest news about Python" is not an answer to it. With no
    content words, any hit is."""
    terms = {_stem(w) for w in _WORD.findall(query.lower()) if w not in STOPWORDS}
    if not terms:
        return True
    title = {_stem(word) for word in _WORD.findall(str(hit.get("title", "")).lower()[:500])}
    if any(len(term) > 2 and term in title for term in terms):
        return True
    text = str(hit.get("snippet", "")).lower()[:DATA_WINDOW]
    seen = title | {_stem(word) for word in _WORD.findall(text)}
    return len(terms & seen) * 2 > len(terms)


def _stem(word: str) -> str:
    return word[:5]


def _describe_web(value: dict[str, Any]) -> str:
    sources = ", ".join(
        str(r.get("url")) for r in value["results"][:3] if isinstance(r, dict) and r.get("url")
    )
    answer = value.get("answer") or "no direct answer"
    return f"The web says: {answer} (sources: {sources or 'none'})."


def _compact(value: Any, limit: int = 500) -> str:
    text = json_text(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


# -- data answers --------------------------------------------------------------------------------


def state_result(arguments: dict[str, Any], value: Any) -> str | None:
    """The data tool's answer ``value`` to ``arguments`` as a sentence; None if it is not one
    this module knows."""
    if not isinstance(value, dict):
        return None
    operation = arguments.get("operation")
    if operation == "describe" and isinstance(value.get("columns"), list):
        return _described(value)
    rows = value.get("rows")
    if not isinstance(rows, list) or not all(isinstance(row, dict) for row in rows):
        return None
    where = _where(arguments.get("conditions"))
    cut = " (the answer was cut short)" if value.get("truncated") else ""
    if operation == "group_by":
        return _grouped(arguments, value, rows, where) + cut
    if operation == "sort" and rows:
        order = arguments.get("order_by") or [{}]
        key = order[0] if isinstance(order[0], dict) else {"column": order[0]}
        first = "Top" if key.get("descending") else "Bottom"
        listed = _listed([f"{i}. {_row_text(row)}" for i, row in enumerate(rows, 1)], "; ")
        return f"{first} {len(rows)} by {key.get('column')}{where}: {listed}.{cut}"
    if not rows:
        return f"No rows{where}."
    return f"{len(rows)} rows{where}: {_listed([_row_text(r) for r in rows], '; ')}.{cut}"


def _grouped(arguments: dict[str, Any], value: dict[str, Any], rows: list[Any], where: str) -> str:
    groups = [g for g in arguments.get("group_by") or [] if isinstance(g, str)]
    aggregates = [a for a in arguments.get("aggregates") or [] if isinstance(a, dict)]
    outputs = [c for c in value.get("columns") or [] if c not in groups]
    labels = [_label(a) for a in aggregates] + outputs[len(aggregates) :]
    if not groups:
        if not rows:
            return f"No rows{where}."
        row = rows[0]
        if [a.get("fn") for a in aggregates] == ["count"]:
            return f"There are {_number_text(row.get(outputs[0]))} rows{where}."
        stated = [
            f"{label}{where}: {_number_text(row.get(o))}"
            for label, o in zip(labels, outputs, strict=False)
        ]
        return "; ".join(stated) + "."
    if not rows:
        return f"No rows{where}, so no groups."
    per = " and ".join(groups)
    items = []
    for row in rows:
        key = " / ".join(str(row.get(g)) for g in groups)
        if len(outputs) == 1:
            items.append(f"{key} {_number_text(row.get(outputs[0]))}")
        else:
            pairs = (
                f"{label.lower()} {_number_text(row.get(o))}"
                for label, o in zip(labels, outputs, strict=False)
            )
            items.append(f"{key}: {', '.join(pairs)}")
    title = labels[0] if len(outputs) == 1 else "Results"
    return f"{title} per {per}{where}: {_listed(items, '; ' if len(outputs) > 1 else ', ')}."


def _label(aggregate: dict[str, Any]) -> str:
    fn = str(aggregate.get("fn"))
    if fn == "count":
        return "Number of rows"
    return f"{_LABELS.get(fn, fn)} {aggregate.get('column')}"


def _described(value: dict[str, Any]) -> str:
    columns = [c for c in value["columns"] if isinstance(c, dict)]
    parts = []
    for column in columns:
        text = f"{column.get('name')} ({column.get('type')}"
        if isinstance(column.get("mean"), int | float):
            low, high = _number_text(column.get("min")), _number_text(column.get("max"))
            text += f": min {low}, max {high}, mean {_number_text(column['mean'])}"
        parts.append(text + ")")
    count = _number_text(value.get("row_count"))
    return f"The data has {count} rows and {len(columns)} columns: {_listed(parts, '; ')}."


def _where(conditions: Any) -> str:
    if not isinstance(conditions, list) or not conditions:
        return ""
    parts = [
        f"{c.get('column')} {_WORDING.get(str(c.get('op')), c.get('op'))} "
        + _value_text(c.get("value"))
        for c in conditions
        if isinstance(c, dict)
    ]
    return " where " + " and ".join(parts)


def _value_text(value: Any) -> str:
    if isinstance(value, list):  # "in": "region is one of North, South"
        return _listed([_number_text(item) for item in value], ", ")
    return _number_text(value)


def _row_text(row: dict[str, Any]) -> str:
    text = ", ".join(f"{key} {_number_text(value)}" for key, value in row.items())
    return text if len(text) <= 200 else text[:197] + "..."


def _listed(items: list[str], separator: str) -> str:
    shown = separator.join(items[:MAX_LISTED])
    more = len(items) - MAX_LISTED
    return shown + (f"{separator}and {more} more" if more > 0 else "")


def _number_text(value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return str(value)[:100]
    if isinstance(value, float):
        if value.is_integer() and abs(value) < 1e15:
            return str(int(value))
        return f"{value:.2f}".rstrip("0") if abs(value) >= 1 else f"{value:.3g}"
    return str(value)
