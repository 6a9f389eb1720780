"""Query ids that are safe file names (and the notes that say how an id was changed); chain ids."""

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


def chain_letters(n: int) -> list[str]:
    """Chain ids A, B, ..., Z, AA, AB, ... for n chains."""
    letters = []
    for i in range(n):
        name = ""
        i += 1
        while i:
            i, rem = divmod(i - 1, 26)
            name = chr(65 + rem) + name
        letters.append(name)
    return letters
