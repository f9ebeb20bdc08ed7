"""PivotIOManager as `materialize` users see it: a hit's in-process value is the value."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from dagster import HookContext, asset, materialize, success_hook

from pivot_dagster import PivotIOManager, cached
from tests.dagster.helpers import hits

CALLS: list[str] = []


@asset
@cached
def numbers() -> dict:
    CALLS.append("numbers")
    return {"a": 1, "b": [2, 3]}


@asset
@cached
def frame(numbers: dict) -> pd.DataFrame:
    CALLS.append("frame")
    return pd.DataFrame({"x": numbers["b"]})


def test_output_for_node_and_asset_value_are_the_values_on_a_hit(
    project: Path, dagster_instance
) -> None:
    """Issue 13 item 7 / issue 14 C1: a second run's values equal the first's, not a marker."""
    CALLS.clear()
    io = PivotIOManager(project_dir=str(project))
    results = [
        materialize([numbers, frame], resources={"io_manager": io}, instance=dagster_instance)
        for _ in range(2)
    ]
    first, second = results
    assert CALLS == ["numbers", "frame"]  # the second run computed nothing
    assert hits(dagster_instance, second.run_id) == {"numbers": True, "frame": True}
    assert second.output_for_node("numbers") == {"a": 1, "b": [2, 3]}
    assert second.asset_value("numbers") == first.asset_value("numbers")
    got = second.asset_value("frame")
    assert isinstance(got, pd.DataFrame)
    pd.testing.assert_frame_equal(got, first.asset_value("frame"))


def test_a_hook_sees_the_value_on_a_hit(project: Path, dagster_instance) -> None:
    seen: list[object] = []

    @success_hook
    def record(context: HookContext) -> None:
        seen.append(context.op_output_values.get("result"))

    @asset(hooks={record})
    @cached
    def hooked() -> list:
        return [1, 2]

    io = PivotIOManager(project_dir=str(project))
    for _ in range(2):
        r = materialize([hooked], resources={"io_manager": io}, instance=dagster_instance)
        assert r.success
    assert seen == [[1, 2], [1, 2]]
