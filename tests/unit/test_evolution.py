import pytest

from sluice.contracts import Column, InferredSchema, PgType
from sluice.errors import SchemaConflict
from sluice.load.evolution import plan


def _schema(*cols: tuple[str, PgType]) -> InferredSchema:
    return InferredSchema(
        columns=tuple(Column(f"Src {n}", n, t, True) for n, t in cols), time_column=cols[0][0]
    )


def test_new_columns_are_added_and_narrower_file_types_cast_to_the_table() -> None:
    result = plan(
        {"ts": "timestamptz", "v": "double precision", "old": "bigint"},
        _schema(("ts", "timestamptz"), ("v", "bigint"), ("s", "text")),
        table="public.t",
        widen_to_text=False,
    )
    assert [c.name for c in result.add] == ["s"]
    assert result.casts == (("v", "double precision"),)
    assert result.widen == ()


@pytest.mark.parametrize(
    "table_type,file_type",
    [("bigint", "double precision"), ("bigint", "numeric"), ("date", "timestamptz")],
)
def test_safe_widenings_widen_the_table(table_type: PgType, file_type: PgType) -> None:
    result = plan(
        {"ts": "timestamptz", "v": table_type},
        _schema(("ts", "timestamptz"), ("v", file_type)),
        table="public.t",
        widen_to_text=False,
    )
    assert [(c.name, before) for c, before in result.widen] == [("v", table_type)]


def test_text_widening_needs_the_dataset_to_allow_it() -> None:
    existing: dict[str, PgType] = {"ts": "timestamptz", "v": "bigint"}
    cols = _schema(("ts", "timestamptz"), ("v", "text"))
    allowed = plan(existing, cols, table="public.t", widen_to_text=True)
    assert [c.name for c, _ in allowed.widen] == ["v"]
    with pytest.raises(SchemaConflict) as info:
        plan(existing, cols, table="public.t", widen_to_text=False)
    message = f"{info.value.message} {info.value.hint}"
    assert "'Src v' holds text in this file but bigint in public.t" in message
    assert "types: {v: bigint}" in message and "new dataset" in message


def test_a_lossy_change_is_refused() -> None:
    with pytest.raises(SchemaConflict, match="holds boolean in this file but bigint in public.t"):
        plan(
            {"ts": "timestamptz", "v": "bigint"},
            _schema(("ts", "timestamptz"), ("v", "boolean")),
            table="public.t",
            widen_to_text=False,
        )
