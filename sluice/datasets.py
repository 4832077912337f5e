"""Per-dataset rules from datasets.yaml, and which dataset a file belongs to.

A rule names the time column, the key, the chunk interval, the missing-value markers, the
time zone of naive timestamps, the quality gate (suite, `on_error`, `on_missing_time`, drift),
and how a file is read where Sluice would otherwise guess (`encoding`, `delimiter`,
`header_row`/`skip_rows`, `skip_footer`, `ragged`, `time_from`, `day_first`, `sheet`). Its hash
(with the content of the suite file) is part of every stage's cache key, so changing a rule or
the suite re-runs the stages it can affect.

A dataset's suite is `expectations/<dataset>.json` beside the rules file when that file exists
(the name is the link: no rule needed), unless its rule names another (`suite: path`) or none
(`suite: null`). The suite by name counts in the hash as a named one does: creating, editing or
deleting it is a change of rule.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal, get_args

import yaml

from sluice.contracts import DriftCheck, ErrorMode, Ragged
from sluice.names import safe_identifier

DEFAULT_NULL_VALUES = ("", "NA", "N/A", "n/a", "NULL", "null", "nil", "NaN", "nan", ".")


DRIFT_CHECKS: tuple[DriftCheck, ...] = get_args(DriftCheck)


@dataclass(frozen=True, slots=True)
class DriftRules:
    """How a file's profile is compared with the profiles of the dataset's last loaded files.

    A threshold of None (or false) turns its check off; `errors` names the checks that fail
    the file instead of warning.
    """

    history: int = 10  # loaded files compared with (0: no drift checks)
    null_ratio: float | None = 0.1  # a column's null ratio above the history's by more than this
    mean_shift: float | None = 3.0  # a number column's mean this many history stddevs away
    new_categories: bool = True  # values of a category column the history never had
    time_order: bool = True  # the file's time span starts before the latest loaded end
    errors: tuple[DriftCheck, ...] = ()

    def severity(self, check: DriftCheck) -> Literal["error", "warn"]:
        return "error" if check in self.errors else "warn"


@dataclass(frozen=True, slots=True)
class DatasetRules:
    """What a person decided about one dataset; defaults fit a plain time-series CSV."""

    name: str
    time_column: str | None = None  # None: detect (first time-typed column, by name preference)
    key: tuple[str, ...] = ()  # columns that identify a row; checked unique per file
    chunk_interval: str = "7 days"
    time_zone: str = "UTC"  # for timestamps without offset
    null_values: tuple[str, ...] = DEFAULT_NULL_VALUES
    suite: str | None = None  # GX suite JSON, absolute once loaded (see the module docstring)
    encoding: str | None = None  # text encoding; None: detect (BOM, UTF-8, else cp1252)
    delimiter: str | None = None  # one character; None: detect (`,` tab `;` `|`)
    skip_rows: int | None = None  # lines above the header; None: detect metadata lines
    header_row: int | None = None  # the header's line (Excel: row), 1-based; None: detect
    skip_footer: int | None = None  # lines after the rows that are not rows; None: detect
    ragged: Ragged = "error"  # pad: a row short of fields reads the missing trailing ones as null
    header: bool = True  # False: columns are named column_1, column_2, ...
    json_depth: int = 2  # nested JSON objects flatten to `a.b` up to this depth, deeper is jsonb
    sheet: str | int | None = None  # Excel: a name, a 0-based index or "*" (all); None: detect
    # the columns the time is made of: [date, time] or [year, month, day(, hour(, minute(,
    # second)))]; None: detect the common layouts; (): never
    time_from: tuple[str, ...] | None = None
    day_first: bool | None = None  # time_from's `01/02/2024` is 1 February; None: detect
    on_missing_time: ErrorMode | None = None  # rows without a valid time; None: as on_error
    types: tuple[tuple[str, str], ...] = ()  # (column, PostgreSQL type) forced over inference
    widen_to_text: bool = False  # may a table column become text when a file has text in it?
    on_error: ErrorMode = "file"  # rows: rows failing an error expectation go to quarantine
    drift: DriftRules = DriftRules()
    # the suite file's text as it was when the rules were read: a run validates with this
    # snapshot, so a suite edited during the run cannot change results cached under its hash
    suite_text: str | None = field(default=None, repr=False)

    def forced_type(self, *names: str) -> str | None:
        """The `types` rule for a column known by any of `names` (source or safe name)."""
        for column, pg_type in self.types:
            if column in names:
                return pg_type
        return None

    @property
    def lines_above(self) -> int | None:
        """Lines (Excel: rows) above the header as the rules fix them, or None: detect."""
        if self.skip_rows is not None:
            return self.skip_rows
        return None if self.header_row is None else self.header_row - 1

    @property
    def time_mode(self) -> ErrorMode:
        """What a row without a valid time does: fails the file, or is set aside."""
        return self.on_missing_time or self.on_error

    def digest(self) -> str:
        """The rules' hash, with the suite's text: editing the suite is a new rule."""
        raw = json.dumps(asdict(self), sort_keys=True, default=str).encode()
        return hashlib.sha256(raw).hexdigest()[:16]


_FIELDS = {
    "time_column",
    "key",
    "chunk_interval",
    "time_zone",
    "null_values",
    "suite",
    "encoding",
    "delimiter",
    "skip_rows",
    "header_row",
    "skip_footer",
    "ragged",
    "header",
    "json_depth",
    "sheet",
    "time_from",
    "day_first",
    "on_missing_time",
    "types",
    "widen_to_text",
    "on_error",
    "drift",
}
FORCIBLE_TYPES = {
    "text",
    "bigint",
    "double precision",
    "numeric",
    "boolean",
    "date",
    "time",
    "timestamptz",
    "jsonb",
}


def load_rules(path: Path, dataset: str) -> DatasetRules:
    """The dataset's rules from `path` (a missing file or entry means defaults)."""
    entry = _read(path).get(dataset) or {}
    if not isinstance(entry, dict):
        raise ValueError(f"{path}: dataset {dataset!r} must be a mapping")
    unknown = set(entry) - _FIELDS
    if unknown:
        raise ValueError(f"{path}: dataset {dataset!r}: unknown keys {sorted(unknown)}")
    values: dict[str, Any] = dict(entry)
    for name in ("key", "null_values"):
        if name in values:
            values[name] = tuple(str(v) for v in _as_list(values[name]))
    if "types" in values:
        values["types"] = _types(path, dataset, values["types"])
    values["suite"] = _suite(path, dataset, values)
    values["suite_text"] = _snapshot(values["suite"])
    if "drift" in values:
        values["drift"] = _drift(path, dataset, values["drift"])
    _reading(f"{path}: dataset {dataset!r}", values)
    return DatasetRules(name=dataset, **values)


_CHOICES: dict[str, tuple[object, ...]] = {
    "on_error": ("file", "rows"),
    "on_missing_time": ("file", "rows", None),
    "ragged": ("error", "pad"),
    "day_first": (True, False, None),
}
_COUNTS = {"skip_rows": 0, "skip_footer": 0, "header_row": 1}  # the least each may be


def _reading(where: str, values: dict[str, Any]) -> None:
    """Check (and normalise) the rules that say how a file is read; ValueError names the key."""
    for name, allowed in _CHOICES.items():
        if name in values and values[name] not in allowed:
            choices = " or ".join(repr(a) for a in allowed if a is not None)
            raise ValueError(f"{where}: {name} must be {choices}, got {values[name]!r}")
    for name, least in _COUNTS.items():
        value = values.get(name)
        if value is not None and (type(value) is not int or value < least):
            raise ValueError(f"{where}: {name} must be a whole number >= {least}, got {value!r}")
    above, row = values.get("skip_rows"), values.get("header_row")
    if above is not None and row is not None and above != row - 1:
        raise ValueError(f"{where}: header_row and skip_rows disagree: give one of them")
    if "time_from" in values:
        values["time_from"] = _time_from(where, values["time_from"])
    delimiter = values.get("delimiter")
    if delimiter is not None and (not isinstance(delimiter, str) or len(delimiter) != 1):
        raise ValueError(f"{where}: delimiter must be one character, got {delimiter!r}")
    sheet = values.get("sheet")
    if sheet is not None and not isinstance(sheet, str) and (type(sheet) is not int or sheet < 0):
        raise ValueError(f"{where}: sheet must be a name, a 0-based index or '*', got {sheet!r}")


def _time_from(where: str, raw: object) -> tuple[str, ...] | None:
    """[date, time] or [year, month, day(, hour(, minute(, second)))]; false: never detect."""
    if raw is None or raw is False:
        return None if raw is None else ()
    columns = tuple(str(v) for v in _as_list(raw))
    if not 2 <= len(columns) <= 6:
        raise ValueError(
            f"{where}: time_from names a date and a time column, or year, month, day (then "
            f"hour, minute, second): 2 to 6 columns, got {len(columns)}"
        )
    return columns


SUITES = "expectations"  # the folder beside the rules file that holds suites named after datasets


def suite_by_name(path: Path, dataset: str) -> Path:
    """Where the dataset's suite is by convention: `expectations/<dataset>.json` beside `path`."""
    return path.parent / SUITES / f"{dataset}.json"


def _suite(path: Path, dataset: str, values: dict[str, Any]) -> str | None:
    """The rule's `suite` (relative to the rules file; null: none), else the suite by name."""
    if "suite" in values:
        named = values["suite"]
        return str((path.parent / str(named)).resolve()) if named else None
    by_name = suite_by_name(path, dataset)
    return str(by_name.resolve()) if by_name.is_file() else None


def _snapshot(suite: str | None) -> str | None:
    """The suite's text now (None when unreadable: validate then says why)."""
    if not suite:
        return None
    try:
        return Path(suite).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return None


def datasets_named(path: Path) -> list[str]:
    """The datasets `path` has an entry for, and those with a suite by name beside it, sorted.

    A suite file whose stem no dataset could be named (not a safe identifier) is left out.
    """
    names = {str(name) for name in _read(path)}
    folder = path.parent / SUITES
    if folder.is_dir():
        stems = (p.stem for p in folder.glob("*.json") if p.is_file())
        names.update(s for s in stems if safe_identifier(s, fallback="dataset") == s)
    return sorted(names)


def _drift(path: Path, dataset: str, raw: object) -> DriftRules:
    where = f"{path}: dataset {dataset!r}: drift"
    if raw is None:
        return DriftRules()
    if not isinstance(raw, dict):
        raise ValueError(f"{where} must be a mapping")
    unknown = set(raw) - {"history", "errors", *DRIFT_CHECKS}
    if unknown:
        raise ValueError(f"{where}: unknown keys {sorted(unknown)}")
    values: dict[str, Any] = dict(raw)
    errors = tuple(str(v) for v in _as_list(values.pop("errors", None) or []))
    bad = [e for e in errors if e not in DRIFT_CHECKS]
    if bad:
        raise ValueError(f"{where}: errors {bad} are not checks; use {list(DRIFT_CHECKS)}")
    for name in ("null_ratio", "mean_shift"):
        if values.get(name) is False:
            values[name] = None
        elif values.get(name) is not None and not isinstance(values[name], int | float):
            raise ValueError(f"{where}: {name} must be a number (or false)")
    if not isinstance(values.get("history", 0), int) or values.get("history", 0) < 0:
        raise ValueError(f"{where}: history must be a whole number of files")
    return DriftRules(errors=errors, **values)  # type: ignore[arg-type]  # checked above


def _types(path: Path, dataset: str, raw: object) -> tuple[tuple[str, str], ...]:
    if not isinstance(raw, dict):
        raise ValueError(f"{path}: dataset {dataset!r}: types must map column to type")
    bad = {str(k): v for k, v in raw.items() if v not in FORCIBLE_TYPES}
    if bad:
        raise ValueError(
            f"{path}: dataset {dataset!r}: unknown types {bad}; use one of {sorted(FORCIBLE_TYPES)}"
        )
    return tuple((str(k), str(v)) for k, v in raw.items())


def _as_list(value: object) -> list[object]:
    return list(value) if isinstance(value, list | tuple) else [value]


def _read(path: Path) -> dict[str, Any]:
    if not path.exists():
        return {}
    data = yaml.safe_load(path.read_text()) or {}
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a mapping of dataset name to rules")
    datasets = data.get("datasets", data)
    return datasets if isinstance(datasets, dict) else {}


def dataset_for(path: Path, inbox: Path, explicit: str | None = None) -> str:
    """`--dataset`, else the first folder below the inbox, else the file stem; made safe."""
    if explicit:
        return safe_identifier(explicit, fallback="dataset")
    try:
        relative = path.resolve().relative_to(inbox.resolve())
    except ValueError:
        relative = None
    if relative is not None and len(relative.parts) > 1:
        return safe_identifier(relative.parts[0], fallback="dataset")
    stem = path.name.split(".")[0]
    return safe_identifier(stem, fallback="dataset")
