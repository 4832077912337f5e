import pytest

from sluice.contracts import Column, InferredSchema
from sluice.errors import SchemaConflict
from sluice.load import plan_evolution


def _schema(*cols: tuple[str, str]) -> InferredSchema:
    return InferredSchema(
        columns=tuple(Column(n, n, t, True) for n, t in cols),
        time_column=cols[0][0],  # type: ignore[arg-type]
    )


def test_new_columns_are_added_and_narrower_types_cast_to_the_table() -> None:
    existing = {"ts": "timestamptz", "v": "double precision", "_row": "bigint"}
    plan = plan_evolution(existing, _schema(("ts", "timestamptz"), ("v", "bigint"), ("s", "text")))
    assert [c.name for c in plan.add] == ["s"]
    assert plan.casts == (("v", "double precision"),)


def test_a_lossy_type_change_is_refused() -> None:
    with pytest.raises(SchemaConflict, match="holds text but the table has bigint"):
        plan_evolution(
            {"ts": "timestamptz", "v": "bigint"}, _schema(("ts", "timestamptz"), ("v", "text"))
        )
