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
