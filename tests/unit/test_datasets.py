from pathlib import Path

import pytest

from sluice.datasets import DatasetRules, dataset_for, load_rules


def test_dataset_is_explicit_then_inbox_folder_then_stem(tmp_path: Path) -> None:
    inbox = tmp_path / "inbox"
    assert dataset_for(inbox / "Weather Data" / "x.csv", inbox, "My Set") == "my_set"
    assert dataset_for(inbox / "Weather Data" / "deep" / "x.csv", inbox) == "weather_data"
    assert dataset_for(tmp_path / "elsewhere" / "Meter-2024.csv.gz", inbox) == "meter_2024"


def test_rules_from_yaml_with_suite_resolved_next_to_the_file(tmp_path: Path) -> None:
    path = tmp_path / "datasets.yaml"
    path.write_text(
        "datasets:\n  weather:\n    time_column: observed\n    key: [station, observed]\n"
        "    chunk_interval: 1 day\n    suite: expectations/weather.json\n"
    )
    rules = load_rules(path, "weather")
    assert rules.time_column == "observed"
    assert rules.key == ("station", "observed")
    assert rules.chunk_interval == "1 day"
    assert rules.suite == str(tmp_path / "expectations" / "weather.json")
    assert load_rules(path, "other") == DatasetRules(name="other")


def test_unknown_rule_keys_are_refused_with_the_file_named(tmp_path: Path) -> None:
    path = tmp_path / "datasets.yaml"
    path.write_text("weather:\n  time_colum: t\n")
    with pytest.raises(ValueError, match=r"datasets.yaml.*time_colum"):
        load_rules(path, "weather")


def test_rules_hash_changes_with_any_rule() -> None:
    base = DatasetRules(name="w")
    assert base.digest() == DatasetRules(name="w").digest()
    assert base.digest() != DatasetRules(name="w", chunk_interval="1 day").digest()
    assert base.digest() != DatasetRules(name="v").digest()


ROOT = Path(__file__).resolve().parents[2]


def _suite_file(folder: Path, dataset: str, text: str = '{"expectations": []}') -> Path:
    path = folder / "expectations" / f"{dataset}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_the_checkouts_rules_file_is_an_empty_starting_point() -> None:
    """The demo's `weather` rules (key station_id, its suite) are not every user's."""
    assert load_rules(ROOT / "datasets.yaml", "weather") == DatasetRules(name="weather")
    assert load_rules(ROOT / "datasets.yaml", "energy") == DatasetRules(name="energy")


def test_the_default_rules_file_gives_a_users_weather_dataset_the_defaults(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from sluice.settings import Settings

    monkeypatch.delenv("SLUICE_DATASETS", raising=False)
    monkeypatch.setenv("SLUICE_HOME", str(tmp_path))

    rules = load_rules(Settings().datasets, "weather")

    assert (rules.key, rules.suite) == ((), None)


def test_the_demos_rules_and_suite_ship_with_the_demo() -> None:
    from sluice import demo

    with demo.rules_file() as path:
        rules = load_rules(path, "weather")
        assert rules.key == ("station_id", "timestamp")
        assert rules.suite is not None and Path(rules.suite).is_file()
        assert Path(rules.suite).parent.parent == path.parent == Path(demo.__file__).parent


def test_a_suite_named_after_its_dataset_beside_the_rules_file_applies_unless_a_rule_says(
    tmp_path: Path,
) -> None:
    gate, kept, plain = (_suite_file(tmp_path, name) for name in ("gate", "kept", "plain"))
    shared = _suite_file(tmp_path, "shared")
    rules_file = tmp_path / "datasets.yaml"  # absent: still where the suites are found

    assert load_rules(rules_file, "gate").suite == str(gate.resolve())
    assert load_rules(rules_file, "other").suite is None
    rules_file.write_text(
        "datasets:\n"
        "  kept: {chunk_interval: 1 day}\n"
        "  gate: {suite: expectations/shared.json}\n"
        "  plain: {suite: null}\n"
    )
    assert load_rules(rules_file, "kept").suite == str(kept.resolve())
    assert load_rules(rules_file, "gate").suite == str(shared.resolve())  # a rule names another
    assert load_rules(rules_file, "plain").suite is None  # `suite: null`: no suite at all
    assert plain.exists()


def test_the_rules_hash_counts_the_conventional_suites_content(tmp_path: Path) -> None:
    rules_file = tmp_path / "datasets.yaml"
    without = load_rules(rules_file, "gate").digest()
    suite = _suite_file(tmp_path, "gate", '{"expectations": []}')
    first = load_rules(rules_file, "gate").digest()
    suite.write_text('{"expectations": [{"type": "expect_table_row_count_to_be_between"}]}')
    edited = load_rules(rules_file, "gate").digest()

    assert len({without, first, edited}) == 3


def test_rules_in_force_lists_datasets_that_have_only_a_suite_file(tmp_path: Path) -> None:
    from sluice.status import describe_rules, rules_in_force

    rules_file = tmp_path / "datasets.yaml"
    rules_file.write_text("datasets:\n  energy:\n    chunk_interval: 1 day\n")
    _suite_file(tmp_path, "gate")
    _suite_file(tmp_path, "Not A Dataset")  # no dataset can be named so: not listed

    found = {r.name: describe_rules(r, tmp_path) for r in rules_in_force(rules_file)}

    assert sorted(found) == ["energy", "gate"]
    assert found["gate"]["suite"] == "expectations/gate.json"
    assert found["energy"]["suite"] == "-"


def _rules(tmp_path: Path, entry: str) -> DatasetRules:
    path = tmp_path / "datasets.yaml"
    path.write_text(f"datasets:\n  d: {entry}\n")
    return load_rules(path, "d")


def test_reading_rules_are_read_and_normalised(tmp_path: Path) -> None:
    rules = _rules(
        tmp_path,
        "{header_row: 3, skip_footer: 0, ragged: pad, time_from: [Date, Time], day_first: true,"
        " on_missing_time: rows, sheet: 1, delimiter: ';'}",
    )

    assert (rules.header_row, rules.lines_above, rules.skip_footer) == (3, 2, 0)
    assert (rules.ragged, rules.time_from, rules.day_first) == ("pad", ("Date", "Time"), True)
    assert (rules.on_missing_time, rules.time_mode, rules.sheet) == ("rows", "rows", 1)
    assert rules.delimiter == ";"
    assert _rules(tmp_path, "{time_from: false}").time_from == ()  # never detect
    assert _rules(tmp_path, "{skip_rows: 4}").lines_above == 4
    assert _rules(tmp_path, "{on_error: rows}").time_mode == "rows"  # follows on_error


@pytest.mark.parametrize(
    ("entry", "named"),
    [
        ("{header_row: 0}", "header_row must be a whole number >= 1"),
        ("{skip_footer: -1}", "skip_footer must be a whole number >= 0"),
        ("{header_row: 3, skip_rows: 1}", "header_row and skip_rows disagree"),
        ("{ragged: fill}", "ragged must be 'error' or 'pad'"),
        ("{on_missing_time: drop}", "on_missing_time must be 'file' or 'rows'"),
        ("{day_first: maybe}", "day_first must be True or False"),
        ("{time_from: [Year]}", "time_from names a date and a time column"),
        ("{sheet: -1}", "sheet must be a name, a 0-based index or '*'"),
        ("{delimiter: '::'}", "delimiter must be one character"),
    ],
)
def test_wrong_reading_rules_are_refused_naming_the_rule(
    tmp_path: Path, entry: str, named: str
) -> None:
    with pytest.raises(ValueError, match=named.replace("(", r"\(").replace("*", r"\*")):
        _rules(tmp_path, entry)


def test_every_reading_rule_changes_the_rules_hash() -> None:
    base = DatasetRules(name="w").digest()
    changed = [
        DatasetRules(name="w", header_row=2),
        DatasetRules(name="w", skip_footer=0),
        DatasetRules(name="w", ragged="pad"),
        DatasetRules(name="w", time_from=("a", "b")),
        DatasetRules(name="w", day_first=False),
        DatasetRules(name="w", on_missing_time="rows"),
        DatasetRules(name="w", sheet="*"),
        DatasetRules(name="w", delimiter=";"),
    ]
    assert len({base, *(r.digest() for r in changed)}) == len(changed) + 1
