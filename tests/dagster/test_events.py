"""Metadata and DataVersion on the materialization events in the instance's event log."""

from __future__ import annotations

from pathlib import Path

import pytest
from dagster import AssetKey, asset, materialize

from pivot_dagster import PivotIOManager
from tests.dagster import graph_defs
from tests.dagster.helpers import materializations


@pytest.fixture
def graph_env(project: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("PIVOT_TEST_PROJECT", str(project))
    return project


def test_metadata_and_data_version_on_events(graph_env: Path, dagster_instance) -> None:
    for _ in range(2):
        r = materialize(
            graph_defs.ASSETS,
            resources={"io_manager": graph_defs.io_manager()},
            instance=dagster_instance,
        )
        assert r.success
    for key in ("raw", "doubled", "total"):
        first, second = materializations(dagster_instance, key)
        for m, hit in ((first, False), (second, True)):
            meta = {k: v.value for k, v in m.metadata.items()}
            assert meta["pivot/cache_hit"] is hit
            h = meta["pivot/hash"]
            assert len(h) == 16 and meta["pivot/size"] > 0
            assert meta["pivot/fingerprint"] == first.metadata["pivot/fingerprint"].value
            assert meta["pivot/format"] == {"doubled": "pandas.parquet"}.get(key, "json")
            assert type(m.metadata["pivot/path"]).__name__ == "PathMetadataValue"
            assert Path(meta["pivot/path"]).is_file()
            # The content hash is Dagster's data version (pins step_context.set_data_version).
            assert m.tags["dagster/data_version"] == h
    total = materializations(dagster_instance, "total")[-1]
    doubled_hash = materializations(dagster_instance, "doubled")[-1].tags["dagster/data_version"]
    assert total.tags["dagster/input_data_version/doubled"] == doubled_hash
    record = dagster_instance.get_latest_data_version_record(AssetKey("total"))
    assert record is not None


def test_plain_asset_gets_content_hash_data_version(project: Path, dagster_instance) -> None:
    """No `cached`: the IO manager alone still makes the data version the content hash."""

    @asset
    def plain() -> dict:
        return {"a": 1}

    r = materialize(
        [plain],
        resources={"io_manager": PivotIOManager(project_dir=str(project))},
        instance=dagster_instance,
    )
    assert r.success
    (m,) = materializations(dagster_instance, "plain")
    assert m.tags["dagster/data_version"] == m.metadata["pivot/hash"].value
    assert m.metadata["pivot/cache_hit"].value is False
