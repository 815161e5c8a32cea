"""What the server accepts as text: checked before a query joins a micro-batch, so text that
would make the tokenizer or Lucene raise never reaches them.

A query must hold at least one visible character: whitespace, control characters and the
zero-width / format characters listed in INVISIBLE do not count. VISIBLE_PATTERN is also the
`pattern` of query strings in the OpenAPI schema, so the schema and the server agree exactly."""

from __future__ import annotations

import re

# whitespace, C0/C1 controls, soft hyphen, and the zero-width, joiner, direction, filler and
# variation-selector characters of the BMP (escapes both Python's re and JSON Schema understand)
INVISIBLE = (
    r"\s\x00-\x1f\x7f-\x9f\u00ad\u034f\u061c\u115f\u1160\u17b4\u17b5\u180b-\u180f"
    r"\u200b-\u200f\u202a-\u202e\u2060-\u206f\u3164\ufe00-\ufe0f\ufeff\uffa0"
)
VISIBLE_PATTERN = f"[^{INVISIBLE}]"
_VISIBLE = re.compile(VISIBLE_PATTERN)


def unencodable(text: str) -> str | None:
    """Why `text` cannot be encoded as UTF-8 (a lone surrogate such as "\\ud800", which JSON
    escapes allow), or None when it can."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        return f"character {ascii(text[exc.start])} at position {exc.start} is a lone surrogate, not text"
    return None


def has_visible_text(text: str) -> bool:
    return _VISIBLE.search(text) is not None


def normalise_query(text: str) -> str:
    """Runs of whitespace become one space, ends trimmed."""
    return " ".join(text.split())
