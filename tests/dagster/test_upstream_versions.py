"""Upstreams pivot does not hold count through their Dagster data version.

Issue 13 items 4 and 5: an upstream moved to another IO manager fed pivot's
old lock hash into its downstream's fingerprint (a stale hit); an asset with
`deps=[AssetSpec("ext")]` never cached, silently. Now the instance's latest
data version names them, and with none the materialization says why.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from dagster import (
    AssetKey,
    AssetObservation,
    AssetSpec,
    DataVersion,
    FilesystemIOManager,
    StaticPartitionsDefinition,
    asset,
    materialize,
    observable_source_asset,
)
from dagster._core.definitions.data_version import DATA_VERSION_TAG
from dagster._core.definitions.observe import observe

from pivot_dagster import PivotIOManager, cached
from pivot_store.repo import Repo
from tests.dagster.helpers import hits, load_stored, materializations

CALLS: list[str] = []
BASE = {"value": 1}


@asset(key="base")
def base_on_pivot() -> int:
    return BASE["value"]


@asset(key="base", io_manager_key="fs")
def base_on_fs() -> int:
    return BASE["value"]


@asset(code_version="1")
@cached
def doubled(base: int) -> int:
    CALLS.append("doubled")
    return base * 2


@asset(code_version="1", deps=[AssetSpec("ext")])
@cached
def uses_ext() -> str:
    CALLS.append("uses_ext")
    return "read ext"


SOURCE = {"version": "a"}


@observable_source_asset
def src() -> DataVersion:
    return DataVersion(SOURCE["version"])


@asset(code_version="1", deps=[src])
@cached
def uses_src() -> str:
    CALLS.append("uses_src")
    return f"src at {SOURCE['version']}"


def _res(project: Path, tmp: Path) -> dict[str, Any]:
    return {
        "io_manager": PivotIOManager(project_dir=str(project)),
        "fs": FilesystemIOManager(base_dir=str(tmp / "fs")),
    }


def _observe_ext(instance: Any, version: str) -> None:
    instance.report_runless_asset_event(
        AssetObservation(asset_key="ext", tags={DATA_VERSION_TAG: version})
    )


def test_upstream_moved_to_another_io_manager(
    project: Path, tmp_path: Path, dagster_instance: Any
) -> None:
    CALLS.clear()
    res = _res(project, tmp_path)
    BASE["value"] = 1
    assert materialize([base_on_pivot, doubled], resources=res, instance=dagster_instance).success
    assert load_stored(project, "doubled") == 2
    # `base` moves to the filesystem IO manager and gets new data; pivot's lock of it is old
    BASE["value"] = 5
    assert materialize([base_on_fs], resources=res, instance=dagster_instance).success
    r = materialize([base_on_fs, doubled], resources=res, instance=dagster_instance,
                    selection=[doubled])  # fmt: skip
    assert hits(dagster_instance, r.run_id) == {"doubled": False}
    assert r.output_for_node("doubled") is not None
    assert load_stored(project, "doubled") == 10
    dep = Repo.open(project).read_lock("doubled").parts.deps["base"]
    assert dep.startswith("dv:")
    # the same materialization of `base` again: its data version is unchanged, a hit
    r = materialize([base_on_fs, doubled], resources=res, instance=dagster_instance,
                    selection=[doubled])  # fmt: skip
    assert hits(dagster_instance, r.run_id) == {"doubled": True}
    assert CALLS == ["doubled", "doubled"]


def test_external_dep_by_data_version(project: Path, tmp_path: Path, dagster_instance: Any) -> None:
    CALLS.clear()
    res = _res(project, tmp_path)

    def run() -> bool:
        r = materialize([uses_ext], resources=res, instance=dagster_instance)
        assert r.success
        return hits(dagster_instance, r.run_id)["uses_ext"]

    assert run() is False  # no data version on record: computed, and says why
    meta = materializations(dagster_instance, "uses_ext")[-1].metadata
    assert "upstream `ext` has no data version" in meta["pivot/not_cached"].value
    assert run() is False  # never a hit without one
    _observe_ext(dagster_instance, "v1")
    assert run() is False
    assert "pivot/not_cached" not in materializations(dagster_instance, "uses_ext")[-1].metadata
    assert run() is True
    _observe_ext(dagster_instance, "v2")
    assert run() is False
    assert Repo.open(project).read_lock("uses_ext").parts.deps == {"ext": "dv:v2"}
    assert run() is True
    assert CALLS == ["uses_ext"] * 4


def test_observable_source_asset(project: Path, tmp_path: Path, dagster_instance: Any) -> None:
    CALLS.clear()
    res = _res(project, tmp_path)
    SOURCE["version"] = "a"
    assert observe([src], instance=dagster_instance).success
    for _ in range(2):
        assert materialize([src, uses_src], resources=res, instance=dagster_instance,
                           selection=[uses_src]).success  # fmt: skip
    SOURCE["version"] = "b"
    assert observe([src], instance=dagster_instance).success
    assert materialize([src, uses_src], resources=res, instance=dagster_instance,
                       selection=[uses_src]).success  # fmt: skip
    assert load_stored(project, "uses_src") == "src at b"
    assert CALLS == ["uses_src", "uses_src"]
    key = AssetKey("src")
    assert dagster_instance.get_latest_data_version_record(key) is not None


def test_moved_back_to_pivot_is_a_miss_until_rematerialized(
    project: Path, tmp_path: Path, dagster_instance: Any
) -> None:
    """Back on pivot's IO manager but last materialized elsewhere: pivot's lock is not
    the current value, so nothing is reused until `base` is materialized again."""
    CALLS.clear()
    res = _res(project, tmp_path)
    BASE["value"] = 1
    assert materialize([base_on_pivot, doubled], resources=res, instance=dagster_instance).success
    BASE["value"] = 5
    assert materialize([base_on_fs], resources=res, instance=dagster_instance).success

    def run() -> bool:
        r = materialize([base_on_pivot, doubled], resources=res, instance=dagster_instance,
                        selection=[doubled])  # fmt: skip
        return hits(dagster_instance, r.run_id)["doubled"]

    assert run() is False
    meta = materializations(dagster_instance, "doubled")[-1].metadata
    assert "latest materialization is not pivot's" in meta["pivot/not_cached"].value
    assert run() is False
    assert materialize([base_on_pivot], resources=res, instance=dagster_instance).success
    assert run() is False  # base is pivot's again, with new content
    assert load_stored(project, "doubled") == 10
    assert run() is True
    assert CALLS == ["doubled"] * 4


DAYS = StaticPartitionsDefinition(["d1", "d2"])
# Given to Dagster as a definition: only then does it know the external's partitions
# (a spec only in `deps` is an unpartitioned key: any partition's new version counts).
EXT_P = AssetSpec("ext_p", partitions_def=DAYS)


@asset(code_version="1", partitions_def=DAYS, deps=[EXT_P])
@cached
def per_day(context) -> str:
    CALLS.append(context.partition_key)
    return context.partition_key


def test_partitioned_external_dep_per_partition(
    project: Path, tmp_path: Path, dagster_instance: Any
) -> None:
    CALLS.clear()
    res = _res(project, tmp_path)

    def observe_p(pk: str, version: str) -> None:
        dagster_instance.report_runless_asset_event(
            AssetObservation(asset_key="ext_p", partition=pk, tags={DATA_VERSION_TAG: version})
        )

    def run(pk: str) -> bool:
        r = materialize([EXT_P, per_day], resources=res, instance=dagster_instance,
                        partition_key=pk, selection=[per_day])  # fmt: skip
        return hits(dagster_instance, r.run_id)["per_day"]

    observe_p("d1", "v1")
    observe_p("d2", "v1")
    assert [run("d1"), run("d2"), run("d1"), run("d2")] == [False, False, True, True]
    observe_p("d2", "v2")  # only d2 changed
    assert [run("d1"), run("d2")] == [True, False]
    assert Repo.open(project).read_lock("per_day/@d2").parts.deps == {"ext_p/@d2": "dv:v2"}
    assert CALLS == ["d1", "d2", "d2"]
