"""What an identifier a client chooses (a product's `externalId`, an end user's
`externalUserId`) may be: 1 to 256 characters, none of them a control character.

Such ids are sent upstream, written into Redis keys, logs and webhook bodies, and shown on the
ops dashboard: a NUL, a CR/LF or a bidi override there splits a header or a log line, or makes
one id display as another. Refused: C0 controls and DEL, C1 controls, and the bidi embeddings,
overrides and isolates (U+202A-U+202E, U+2066-U+2069). Pure: callers raise their own error.
"""

from __future__ import annotations

import re

MAX_ID_LENGTH = 256
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def identifier_problem(value: str) -> str | None:
    """Why `value` cannot be an id, or None when it can."""
    if not 0 < len(value) <= MAX_ID_LENGTH:
        return f"Must be 1 to {MAX_ID_LENGTH} characters"
    if _CONTROL.search(value):
        return "Must not contain control characters (C0, C1, bidi overrides or isolates)"
    return None
