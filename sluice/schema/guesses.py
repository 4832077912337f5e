"""How a file was read, for people and for the ledger: every guess with the rule that overrides
it, and what the file says besides its rows (its preamble's `key: value` pairs, its footer).

The run's summary shows `rows()` as its `reading` table; the ledger row of a loaded file stores
`for_ledger()` in `sluice.files.file_meta`.
"""

from __future__ import annotations

from typing import Any

from sluice.contracts import InferredSchema

SHOWN_LINES = 20  # metadata and footer lines in the summary's table (the ledger keeps all)


def title(schema: InferredSchema) -> str:
    meta = schema.meta
    parts = [f"{len(schema.guesses)} guesses (each rule decides instead)"]
    if meta.fields or meta.preamble:
        parts.append(f"{len(meta.fields) or len(meta.preamble)} metadata entries kept")
    if meta.footer:
        parts.append(f"{len(meta.footer)} footer lines kept")
    return "How the file was read: " + ", ".join(parts)


def rows(schema: InferredSchema) -> list[dict[str, Any]]:
    """One row per guess (`what`, `value`, `rule`), then the file's metadata, then its footer."""
    table = [{"what": g.what, "value": g.detail, "rule": g.rule} for g in schema.guesses]
    meta = schema.meta
    if meta.fields:
        pairs = [f"{key}={value}" for key, value in meta.fields]
        table += [{"what": "metadata", "value": p, "rule": ""} for p in pairs[:SHOWN_LINES]]
    else:
        lines = meta.preamble[:SHOWN_LINES]
        table += [{"what": "metadata", "value": line, "rule": ""} for line in lines]
    table += [{"what": "footer", "value": line, "rule": ""} for line in meta.footer[:SHOWN_LINES]]
    return table


def for_ledger(schema: InferredSchema) -> dict[str, Any] | None:
    """What `sluice.files.file_meta` holds: None for a file read without a guess or metadata."""
    meta = schema.meta
    if not schema.guesses and not meta:
        return None
    return {
        "guesses": [{"what": g.what, "value": g.detail, "rule": g.rule} for g in schema.guesses],
        "preamble": list(meta.preamble),
        "fields": [[key, value] for key, value in meta.fields],
        "footer": list(meta.footer),
    }
