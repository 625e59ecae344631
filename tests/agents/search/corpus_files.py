"""A small corpus written to disk, with every case the splitter handles."""

from __future__ import annotations

from pathlib import Path

GUIDE = """\
# Field Guide

Birds visit gardens all year.

## Running water

Birds love running water: a garden fountain brings **warblers** close.

## Feeding

Seeds and suet feed finches in winter.

```python
# a comment in a code block, not a heading
feeders = 3
```

## Empty heading
### Nesting boxes

Boxes for tits face north-east, away from the midday sun.
"""

FILES = {
    "guide.md": GUIDE,
    "notes.txt": "Plain notes: the orchestra rehearses on Tuesdays.\n",
    "deep/herons.md": "## Wading\n\nA grey heron waits motionless in the shallows.\n",
    ".hidden/secret.md": "# Secret\n\nherons and finches\n",
    "empty.md": "# Empty\n",
    "picture.png": "not a document: finches",
}


def write_corpus(root: Path) -> Path:
    for name, text in FILES.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return root
