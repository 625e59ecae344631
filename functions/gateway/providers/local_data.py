"""Questions over a table, for the local model: which operation of a data tool answers an
ordinary question.

``operation_for`` reads a question such as "total units per region", "average price by city",
"how many rows per region", "top 3 by units" or "rows where region is North" against the
table's column names and gives a data tool's arguments (the data_processor's ``operation``,
``group_by``, ``aggregates``, ``order_by``, ``limit``, ``conditions``), narrowed to the cells
the question names ("total units for North"); anything else, or a question that could mean
two things, is ``describe``. ``local_answers`` states the tool's answer. It works on a
question the caller has already bounded (``TEXT_WINDOW``), in time linear in it and in the
table: the column names are found once, by the last word of each, and every rule looks them up.
"""

from __future__ import annotations

import bisect
import csv
import io
import json
import math
import re
from dataclasses import dataclass
from typing import Any

from functions.gateway.providers.local_words import STOPWORDS
from shared.errors import BadRequest

MAX_COLUMNS = 200
"""Columns compared with a question's words; a wider table is matched on its first ones."""
MAX_NAME_WORDS = 8
"""Words of a column name that a question is searched for; longer names are not looked for."""
MAX_CONDITIONS = 50
"""Conditions read from one question (as many as the data processor takes)."""
_WORD = re.compile(r"\w+")
_NUMBER = re.compile(r"-?\d+(?:\.\d+)?")
_FUNCTIONS = {
    "total": "sum",
    "sum": "sum",
    "average": "mean",
    "avg": "mean",
    "mean": "mean",
    "maximum": "max",
    "max": "max",
    "minimum": "min",
    "min": "min",
    "count": "count",
}
_TOP = frozenset({"top", "highest", "largest", "biggest", "most", "greatest", "best"})
_BOTTOM = frozenset({"bottom", "lowest", "smallest", "least", "fewest", "worst"})
_PER = frozenset({"per", "by", "each", "every"})
_SKIPPED = frozenset({"the", "a", "an", "each", "every", "of"})
_KEYWORDS = frozenset({*_FUNCTIONS, *_TOP, *_BOTTOM, *_PER, *_SKIPPED, "many", "number", "row"})
MAX_CELL = 200
"""Characters of a text cell that a question may name; a longer cell is never looked for."""
_VERB = re.compile(r"(?:is|are|was|were)\s+", re.I)
_OPERATORS = [
    (re.compile(pattern, re.I), op)
    for pattern, op in (
        (r"not\s+|isn't\s+|aren't\s+|different\s+from\s+|!=|<>", "!="),
        (r"(?:greater|more|higher|larger|bigger)\s+than\s+|(?:above|over|exceeds?)\s+", ">"),
        (r"at\s+least\s+|>=", ">="),
        (r"(?:less|fewer|lower|smaller)\s+than\s+|(?:below|under)\s+", "<"),
        (r"at\s+most\s+|<=", "<="),
        (r">", ">"),
        (r"<", "<"),
        (r"(?:contains?|includes?|mentions?)\s+", "contains"),
        (r"==?|equals?\s+|equal\s+to\s+|of\s+", "=="),
    )
]


@dataclass(frozen=True)
class Table:
    """What the local model knows of the data a question is about."""

    columns: list[str]
    numeric: frozenset[str]
    rows: list[dict[str, Any]] | None = None
    """The rows themselves when they came whole (to spell a filter's value as the data does)."""


def table_of(data: dict[str, Any]) -> Table:
    """The table of ``{"rows": [...]}`` or ``{"csv": "..."}`` as ``extract_data`` finds them."""
    rows = data["rows"] if "rows" in data else csv_rows(data["csv"])
    columns: dict[str, None] = {}
    for row in rows[:1000]:
        columns.update(dict.fromkeys(str(key) for key in row))
    return Table(list(columns)[:MAX_COLUMNS], _numeric(rows[:100], list(columns)), rows)


def table_from_summary(text: str) -> Table | None:
    """The table of a data summary (``Columns: a | b`` and ``First row: a = 1; b = "x"``), as
    the orchestrator shows data too large to put in the prompt; None if there is none."""
    columns: list[str] = []
    first: dict[str, Any] = {}
    for line in text.splitlines():
        if line.startswith("Columns: "):
            columns = [name.strip() for name in line[9:].split(" | ")][:MAX_COLUMNS]
        elif line.startswith("First row: "):
            for pair in line[11:].split("; "):
                key, _, value = pair.partition(" = ")
                first[key.strip()] = _json_or_text(value)
    if not columns:
        return None
    return Table(columns, _numeric([first], columns))


def csv_rows(text: str) -> list[dict[str, Any]]:
    """CSV text as rows, numbers as numbers; ``BadRequest`` for CSV that cannot be read."""
    try:
        return [
            {str(key): _number(value) for key, value in row.items()}
            for row in csv.DictReader(io.StringIO(text), skipinitialspace=True)
        ]
    except csv.Error as exc:  # e.g. a field over csv.field_size_limit() (131,072 characters)
        raise BadRequest(f"the attached CSV cannot be read: {exc}") from exc


def _number(cell: Any) -> Any:
    if not isinstance(cell, str):  # None for a short row; a list of a long row's extra cells
        return cell
    try:
        return int(cell)
    except ValueError:  # also a run of more than 4,300 digits
        pass
    try:
        number = float(cell)
    except ValueError:
        return cell
    return number if math.isfinite(number) else cell  # "1e999" or 40 KB of digits stay text


def _json_or_text(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return text


def _numeric(rows: list[dict[str, Any]], columns: list[str]) -> frozenset[str]:
    found = set()
    for column in columns:
        value = next((row[column] for row in rows if row.get(column) is not None), None)
        if isinstance(value, int | float) and not isinstance(value, bool):
            found.add(column)
    return frozenset(found)


# -- the question ------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Words:
    """Words of a question, lower-cased, with where each is in the text and which columns
    they name (found once: every rule below only looks them up)."""

    texts: list[str]
    spans: list[tuple[int, int]]
    columns: dict[int, tuple[str, int]]
    """Word index -> the column named from there, and how many words its name takes."""

    def column_at(self, index: int) -> str | None:
        """The column named at ``index``, after up to two of "the", "each", "of"."""
        for at in range(index, min(index + 3, len(self.texts))):
            if at in self.columns:
                return self.columns[at][0]
            if self.texts[at] not in _SKIPPED:
                break
        return None

    def named(self) -> list[str]:
        return [self.columns[index][0] for index in sorted(self.columns)]


def _words(text: str, start: int, end: int, table: Table) -> _Words:
    matches = list(_WORD.finditer(text, start, end))
    texts = [m.group().lower() for m in matches]
    return _Words(texts, [m.span() for m in matches], _name_positions(texts, table))


def _name_positions(texts: list[str], table: Table) -> dict[int, tuple[str, int]]:
    """Where each column is named in ``texts`` (``unit_price`` as "unit price" too, a plural
    "regions" for ``region``); the longest name wins at a position. Names are looked up by
    their words, so the work is the words times the few name lengths, whatever the columns."""
    names: dict[tuple[str, ...], str] = {}
    for column in table.columns:
        parts = tuple(_singular(w) for w in _WORD.findall(column.lower().replace("_", " ")))
        if 0 < len(parts) <= MAX_NAME_WORDS:
            names.setdefault(parts, column)
    sizes = sorted({len(parts) for parts in names}, reverse=True)
    words = [_singular(text) for text in texts]
    found: dict[int, tuple[str, int]] = {}
    for start in range(len(words)):
        for size in sizes:
            named = names.get(tuple(words[start : start + size]))
            if named is not None:
                found[start] = (named, size)
                break
    return found


def _singular(word: str) -> str:
    return word[:-1] if len(word) > 3 and word.endswith("s") and not word.endswith("ss") else word


def operation_for(question: str, table: Table) -> dict[str, Any]:
    """The data tool's arguments (without the data) that answer ``question``."""
    matches = list(_WORD.finditer(question))
    where = next((m for m in matches if m.group().lower() in ("where", "whose")), None)
    cut = where.start() if where else len(question)
    head = _words(question, 0, cut, table)
    conditions = _conditions(question, where.end(), table) if where else []
    values = _named_values(head, table, {c["column"] for c in conditions})
    if values is None:  # a name of cells in two columns: which is meant cannot be told
        return {"operation": "describe"}
    for column, cells in values.items():  # "total units for North": only North's units
        if len(conditions) < MAX_CONDITIONS:
            condition = {"column": column, "op": "==", "value": cells[0]}
            conditions.append(
                condition if len(cells) == 1 else {**condition, "op": "in", "value": cells}
            )
    several = next((column for column, cells in values.items() if len(cells) > 1), None)
    arguments = _aggregation(head, table, several) or _ranking(head, table)
    if arguments is None:
        arguments = {"operation": "filter" if conditions else "describe"}
    if conditions:
        arguments["conditions"] = conditions
    return arguments


def _named_values(head: _Words, table: Table, tested: set[str]) -> dict[str, list[str]] | None:
    """The cells of text columns (other than ``tested``) that the question names, by column,
    spelled as the data spells them: "North" in "total units for north". A common word ("a",
    "total") is a cell only right after its column's name ("product a"). None when a name is a
    cell of two columns. Linear in the cells and in the question's words."""
    if table.rows is None:
        return {}
    texts = head.texts
    grams = {
        tuple(texts[start : start + size])
        for start in range(len(texts))
        for size in range(1, min(MAX_NAME_WORDS, len(texts) - start) + 1)
    }
    text = {c for c in table.columns if c not in table.numeric and c not in tested}
    cells: dict[tuple[str, ...], dict[str, str]] = {}
    for row in table.rows:
        for column, cell in row.items():  # the cells there are, however many columns others have
            if column in text and isinstance(cell, str) and len(cell) <= MAX_CELL:
                key = tuple(_WORD.findall(cell.lower()))
                if key in grams:
                    cells.setdefault(key, {}).setdefault(column, cell)
    return _read_values(head, cells)


def _read_values(
    head: _Words, cells: dict[tuple[str, ...], dict[str, str]]
) -> dict[str, list[str]] | None:
    texts = head.texts
    after_name = {start + size: column for start, (column, size) in head.columns.items()}
    in_name = {at for start, (_, size) in head.columns.items() for at in range(start, start + size)}
    sizes = sorted({len(key) for key in cells}, reverse=True)
    found: dict[str, dict[str, None]] = {}  # a dict as an ordered set: linear in the names
    at = 0
    while at < len(texts):
        step = 1
        for size in sizes:
            key = tuple(texts[at : at + size])
            columns = cells.get(key, {})
            named = after_name.get(at)
            if named in columns:  # "region North"
                columns = {named: columns[named]}
            elif not columns or all(w in STOPWORDS or w in _KEYWORDS or w.isdigit() for w in key):
                continue
            if in_name.intersection(range(at, at + size)):
                continue
            if len(columns) > 1:
                return None
            [(column, cell)] = columns.items()
            found.setdefault(column, {})[cell] = None
            step = size
            break
        at += step
    return {column: list(named) for column, named in found.items()}


def _aggregation(head: _Words, table: Table, several: str | None) -> dict[str, Any] | None:
    """An aggregate, per the group the question names, else per ``several`` (a column the
    question names more than one cell of: "total units for North and South")."""
    texts = head.texts
    fn, at = next(((_FUNCTIONS[t], i) for i, t in enumerate(texts) if t in _FUNCTIONS), (None, 0))
    group = _group_column(head) or several
    if ("how" in texts and "many" in texts) or ("number" in texts and "of" in texts):
        fn, at = "count", texts.index("many" if "many" in texts else "number")
        counted = head.column_at(at + 1)
        if counted in table.numeric:  # "how many units": the units summed, not rows counted
            fn = "sum"
        elif counted is not None and group is None:  # "how many regions": the rows of each
            group = counted
    rank, limit = _rank(texts)
    ranked_at = next((i for i, t in enumerate(texts) if t in _TOP or t in _BOTTOM), 0)
    if fn is None and rank is not None and group is not None and group not in table.numeric:
        # "the highest units per region": the largest value in each group, every group.
        fn, rank, at = ("max" if rank == "top" else "min"), None, ranked_at
    labels = [c for c in head.named() if c not in table.numeric]
    if fn is None and rank is not None and group is None and labels:
        # "which product sold the most units": the groups ranked by their totals.
        fn, at = "sum", ranked_at
    if fn is None:
        return None
    aggregate: dict[str, Any] = {"fn": fn}
    if fn != "count":
        measure = head.column_at(at + 1) or _measure(head, table, group)
        if measure is None:
            return None
        aggregate["column"] = measure
    arguments: dict[str, Any] = {"operation": "group_by", "aggregates": [aggregate]}
    if group is None and rank is not None:  # "the top 3 regions by total units"
        group = next((c for c in head.named() if c != aggregate.get("column")), None)
    if group is not None:
        output = "count" if fn == "count" else f"{fn}_{aggregate['column']}"
        arguments["group_by"] = [group]
        arguments["order_by"] = [{"column": output, "descending": rank != "bottom"}, group]
        if rank is not None:
            arguments["limit"] = limit
    return arguments


def _ranking(head: _Words, table: Table) -> dict[str, Any] | None:
    rank, limit = _rank(head.texts)
    if rank is None:
        return None
    key = _group_column(head) or _measure(head, table, None)
    if key is None:
        return None
    order = {"column": key, "descending": rank == "top"}
    return {"operation": "sort", "order_by": [order], "limit": limit}


def _rank(texts: list[str]) -> tuple[str | None, int]:
    """``top``/``bottom`` (or None) and how many: the number beside the word, else 5 for
    "top"/"bottom" and 1 for a superlative ("the highest")."""
    for index, text in enumerate(texts):
        if text in _TOP or text in _BOTTOM:
            near = texts[index + 1 : index + 2] + texts[max(0, index - 1) : index]
            count = next((int(t) for t in near if t.isdigit() and 0 < len(t) < 5), None)
            default = 5 if text in ("top", "bottom") else 1
            return ("top" if text in _TOP else "bottom"), max(1, count or default)
    return None, 0


def _group_column(head: _Words) -> str | None:
    """The column after "per", "by", "for each", "in each": what to group (or sort) by."""
    for index, text in enumerate(head.texts):
        if text in _PER:
            column = head.column_at(index + 1)
            if column is not None:
                return column
    return None


def _measure(head: _Words, table: Table, group: str | None) -> str | None:
    """The numeric column the question names (other than ``group``), else the only one."""
    named = [c for c in head.named() if c != group and c in table.numeric]
    if named:
        return named[0]
    numeric = [c for c in table.columns if c in table.numeric and c != group]
    return numeric[0] if len(numeric) == 1 else None


def _conditions(question: str, start: int, table: Table) -> list[dict[str, Any]]:
    """``region is North and units over 100`` (from ``start``) as conditions; a part that
    cannot be read is left out."""
    words = _words(question, start, len(question), table)
    bounds = [i for i, text in enumerate(words.texts) if text == "and"] + [len(words.texts)]
    named = sorted(words.columns)
    spelled: dict[str, dict[str, str]] = {}
    conditions: list[dict[str, Any]] = []
    first = 0
    for last in bounds:
        at = bisect.bisect_left(named, first)
        if at < len(named) and named[at] < last and len(conditions) < MAX_CONDITIONS:
            column, size = words.columns[named[at]]
            begin = words.spans[min(named[at] + size, last) - 1][1]
            end = words.spans[last - 1][1]
            condition = _condition(column, question[begin:end].strip(), table, spelled)
            if condition is not None:
                conditions.append(condition)
        first = last + 1
    return conditions


def _condition(
    column: str, rest: str, table: Table, spelled: dict[str, dict[str, str]]
) -> dict[str, Any] | None:
    verb = _VERB.match(rest)  # "is", "are": equality, unless an operator follows
    rest = rest[verb.end() :] if verb else rest
    op, at = next(
        ((op, found.end()) for pattern, op in _OPERATORS if (found := pattern.match(rest))),
        ("==", 0) if verb else (None, 0),
    )
    raw = rest[at:].strip(" \t'\"`")
    if op is None or not raw:
        return None
    value = _value(raw, column, op, table, spelled)
    return None if value is None else {"column": column, "op": op, "value": value}


def _value(raw: str, column: str, op: str, table: Table, spelled: dict[str, dict[str, str]]) -> Any:
    if column in table.numeric or op in (">", ">=", "<", "<="):
        number = _NUMBER.fullmatch(raw.replace(",", ""))
        if number is None:
            return None
        text = number.group()
        return float(text) if "." in text else int(text)
    if op in ("==", "!=") and table.rows is not None:  # spelled as the data spells it
        if column not in spelled:  # once per column, however many conditions name it
            cells = (row.get(column) for row in reversed(table.rows))
            spelled[column] = {c.casefold(): c for c in cells if isinstance(c, str)}
        return spelled[column].get(raw.casefold(), raw)
    return raw
