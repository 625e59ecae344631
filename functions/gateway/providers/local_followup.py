"""Follow-ups for the local model: a request that refers to the previous answer ("now add 8
to that", "double it", "divide the result by 4") becomes the arithmetic it means, with the
number the conversation's last answer gave, so "What is 6 * 7?" then "now add 8 to that"
answers 50. Anything else is left as it is.

It reads only the window of the last user turn the rules read and the text of one earlier
answer, and its patterns have no nested repetition: bounded like the rest of the rules.
"""

from __future__ import annotations

import re
from typing import Any

from functions.gateway.providers.local_rules import block_text

REF = r"(?:that|it|this|the\s+(?:previous\s+|last\s+)?(?:result|answer|number|value|total))"
NUM = r"(?P<n>-?\d+(?:\.\d+)?)"
FOLLOW_UPS: tuple[tuple[re.Pattern[str], str], ...] = tuple(
    (re.compile(pattern, re.IGNORECASE), template)
    for pattern, template in (
        (rf"\badd\s+{NUM}\s+to\s+{REF}", "{p} + {n}"),
        (rf"\b{REF}\s+(?:plus|\+)\s+{NUM}", "{p} + {n}"),
        (rf"\bsubtract\s+{NUM}\s+from\s+{REF}", "{p} - {n}"),
        (rf"\b{REF}\s+(?:minus|-)\s+{NUM}", "{p} - {n}"),
        (rf"\bmultiply\s+{REF}\s+by\s+{NUM}", "{p} * {n}"),
        (rf"\b{REF}\s+(?:times|\*|x)\s+{NUM}", "{p} * {n}"),
        (rf"\bdivide\s+{REF}\s+by\s+{NUM}", "{p} / {n}"),
        (rf"\b{REF}\s+(?:divided\s+by|/)\s+{NUM}", "{p} / {n}"),
        (rf"\bdouble\s+{REF}", "{p} * 2"),
        (rf"\bhalve\s+{REF}", "{p} / 2"),
        (rf"\bsquare\s+{REF}", "{p} ** 2"),
    )
)
NUMBER = re.compile(r"-?\d+(?:\.\d+)?")
ANSWER_WINDOW = 2000
"""Of the previous answer, only its end is read (where the local model states its result)."""


def previous_answer(messages: list[dict[str, Any]]) -> str:
    """The text of the model's last answer before the last user turn ("" when none)."""
    seen_user = False
    for message in reversed(messages):
        role = message.get("role")
        if role == "user" and not seen_user:
            seen_user = True
        elif role == "assistant" and seen_user:
            text = block_text(message.get("content"))
            if text.strip():
                return text[-ANSWER_WINDOW:]
    return ""


def resolve(question: str, answer: str) -> str:
    """``question`` as the arithmetic it asks of ``answer``'s number, or as it is."""
    if not answer:
        return question
    numbers = NUMBER.findall(answer)
    if not numbers:
        return question
    for pattern, template in FOLLOW_UPS:
        found = pattern.search(question)
        if found is not None:
            operand = found.groupdict().get("n", "")
            return "What is " + template.format(p=numbers[-1], n=operand) + "?"
    return question
