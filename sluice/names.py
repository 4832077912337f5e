"""Safe SQL identifiers from whatever people put in file names and headers."""

from __future__ import annotations

import re
import unicodedata

MAX_IDENTIFIER = 63  # PostgreSQL's NAMEDATALEN - 1


def safe_identifier(raw: str, *, fallback: str = "column") -> str:
    """`"Air Temp (°C)"` -> `"air_temp_c"`: ASCII snake_case, no leading digit, <= 63 bytes."""
    text = unicodedata.normalize("NFKD", raw).encode("ascii", "ignore").decode()
    text = re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", text).lower()
    text = re.sub(r"[^a-z0-9]+", "_", text).strip("_") or fallback
    if text[0].isdigit():
        text = f"_{text}"
    return text[:MAX_IDENTIFIER]


def unique_identifiers(raws: list[str]) -> list[str]:
    """Safe identifiers, made unique with `_2`, `_3` suffixes; empty headers become `column_<n>`."""
    out: list[str] = []
    seen: set[str] = set()
    for position, raw in enumerate(raws, start=1):
        base = safe_identifier(raw, fallback=f"column_{position}")
        name, n = base, 1
        while name in seen:
            n += 1
            suffix = f"_{n}"
            name = base[: MAX_IDENTIFIER - len(suffix)] + suffix
        seen.add(name)
        out.append(name)
    return out
