"""Annotated assets (`-> int`, `-> pd.DataFrame`, `-> dict[str, int]`) run and hit."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from dagster import asset, materialize

from pivot_dagster import PivotIOManager, cached, pivot_asset
from tests.dagster.helpers import hits, load_stored

CALLS: list[str] = []


@asset(code_version="1")
@cached
def number() -> int:
    CALLS.append("number")
    return 41


@asset(code_version="1")
@cached
def frame(number: int) -> pd.DataFrame:
    CALLS.append("frame")
    return pd.DataFrame({"n": [number, number + 1]}, index=pd.Index(["a", "b"], name="k"))


@pivot_asset
def mapping(frame: pd.DataFrame) -> dict[str, int]:
    CALLS.append("mapping")
    return {k: int(v) for k, v in frame["n"].items()}


def test_annotated_assets_hit(project: Path, dagster_instance) -> None:
    io = PivotIOManager(project_dir=str(project))
    CALLS.clear()
    assert materialize(
        [number, frame, mapping], resources={"io_manager": io}, instance=dagster_instance
    ).success
    r = materialize(
        [number, frame, mapping], resources={"io_manager": io}, instance=dagster_instance
    )
    assert r.success
    assert CALLS == ["number", "frame", "mapping"]
    assert hits(dagster_instance, r.run_id) == {"number": True, "frame": True, "mapping": True}
    assert load_stored(project, "mapping") == {"a": 41, "b": 42}
    pd.testing.assert_frame_equal(
        load_stored(project, "frame"),
        pd.DataFrame({"n": [41, 42]}, index=pd.Index(["a", "b"], name="k")),
    )


def test_type_check_still_applies_to_real_values(project: Path, dagster_instance) -> None:
    @asset(code_version="1")
    @cached
    def liar() -> int:
        return "not an int"  # type: ignore[return-value]

    r = materialize(
        [liar],
        resources={"io_manager": PivotIOManager(project_dir=str(project))},
        instance=dagster_instance,
        raise_on_error=False,
    )
    assert not r.success
