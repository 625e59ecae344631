"""Words that say nothing of what a question is about, for the local model: "what is the ... of",
"how does ... work", "which ... are available". Search hits are judged by the other words of a
question, and a table's cells are never read into them ("a", "in" are products or codes in
some tables)."""

from __future__ import annotations

_STOPWORD_TEXT = (
    "a about an and are as at be by can could do does for from how i in is it me my of on or "
    "please tell that the this to was what when where which who why will with you "
    # Verbs and adjectives any question about anything can carry:
    "available exist exists get gets handle handled handles happen happens mean means use used "
    "uses using work works"
)
STOPWORDS = frozenset(_STOPWORD_TEXT.split())
