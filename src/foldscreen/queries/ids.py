"""Query ids that are safe file names, and the notes that say how an id was changed."""

from __future__ import annotations

import re

MAX_ID_LENGTH = 120
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def sanitise_id(raw: str) -> tuple[str, str | None]:
    """Return a safe id for `raw` and a note when it had to change (empty id: "")."""
    cleaned = _UNSAFE.sub("_", raw.strip()).strip("._-")[:MAX_ID_LENGTH]
    if cleaned == raw:
        return cleaned, None
    if not cleaned:
        return "", None
    return cleaned, f"id {raw!r} is not a safe file name; renamed to {cleaned!r}"
