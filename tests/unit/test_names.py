from sluice.names import safe_identifier, unique_identifiers


def test_headers_with_spaces_units_and_case_become_snake_case() -> None:
    assert safe_identifier("Air Temp (°C)") == "air_temp_c"
    assert safe_identifier("stationID") == "station_id"
    assert safe_identifier("  Relative Humidity % ") == "relative_humidity"


def test_leading_digits_and_empty_names_are_made_valid() -> None:
    assert safe_identifier("2nd value") == "_2nd_value"
    assert safe_identifier("???", fallback="column_3") == "column_3"


def test_identifiers_are_cut_to_postgres_limit() -> None:
    assert len(safe_identifier("x" * 200)) == 63


def test_duplicates_get_suffixes_and_empty_headers_get_positions() -> None:
    assert unique_identifiers(["A", "a", "", "a "]) == ["a", "a_2", "column_3", "a_3"]
