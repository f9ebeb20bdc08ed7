"""Dagster's `storage_tests/test_upath_io_manager.py`, ported to our three setups.

Dagster runs these against toy `UPathIOManager` subclasses (a `DummyIOManager`
that loads its own path, JSON and pickle managers); here the assets return
real values and every assertion is on what the downstream receives, as
Dagster asserts: the same values, dict shapes and errors under
`FilesystemIOManager` (a `UPathIOManager`), `PivotIOManager` and `cached`.
Skipped: the cases that assert a file path or file name (`_get_path`, the
`.ext` suffix, the dotted partition's file name), and the `async
load_from_path` machinery (a UPathIOManager hook; its value cases are the
JSON and time-window ones below).
"""

from typing import Any

import pytest
from dagster import (
    AllPartitionMapping,
    AssetExecutionContext,
    AssetIn,
    DailyPartitionsDefinition,
    HourlyPartitionsDefinition,
    StaticPartitionsDefinition,
    TimeWindowPartitionMapping,
)

from tests.dagster.parity import Setup

DAILY = DailyPartitionsDefinition(start_date="2022-01-01")
HOURLY = HourlyPartitionsDefinition(start_date="2022-01-01-00:00")
JSON_DATA = [0, 0.0, [0, 1, 2], {"a": 0}, [{"a": 0}, {"b": 1}, {"c": 2}]]
# Values FilesystemIOManager's pickle keeps exactly and a naive JSON store would not.
NEAR_JSON = [(1, 2), {1: "a"}, {1, 2}, {"a": (1, 2)}, -0.0, 2**70]


@pytest.mark.parametrize("data", JSON_DATA, ids=["int", "float", "list", "dict", "records"])
def test_json_values_round_trip(io_setup: Setup, data: Any) -> None:
    """`test_upath_io_manager_with_json`: what was stored is what loads, and the type too
    (`0.0` stays a float), on the first run and (cached) on the hit."""
    s = io_setup

    @s.asset
    def produced() -> Any:
        return data

    @s.asset
    def consumed(produced: Any) -> Any:
        return produced

    for run in range(2):
        r = s.materialize([produced, consumed])
        for node in ("produced", "consumed"):
            out = r.output_for_node(node)
            assert out == data and type(out) is type(data)
            if s.is_cached:  # the second run is a hit, and returns the same
                (mat,) = r.asset_materializations_for_node(node)
                assert mat.metadata["pivot/cache_hit"].value is (run == 1)


@pytest.mark.parametrize(
    "data", NEAR_JSON, ids=["tuple", "int_keys", "set", "nested_tuple", "neg_zero", "bigint"]
)
def test_near_json_values_keep_their_type(io_setup: Setup, data: Any) -> None:
    """The JSON case's other half: what pickle round-trips, pivot does too (same repr)."""
    s = io_setup

    @s.asset
    def produced() -> Any:
        return data

    @s.asset
    def consumed(produced: Any) -> Any:
        return produced

    r = s.materialize([produced, consumed])
    assert repr(r.output_for_node("consumed")) == repr(data)


def test_non_any_annotation_round_trips(io_setup: Setup) -> None:
    """`test_upath_io_manager_with_non_any_type_annotation`: a `-> list` output loads as
    the same list into a `list`-annotated input."""
    s = io_setup

    @s.asset
    def listed() -> list:
        return [0, 1, "a", "b"]

    @s.asset
    def again(listed: list) -> list:
        return listed

    r = s.materialize([listed, again])
    assert r.output_for_node("again") == [0, 1, "a", "b"]


def _hourly_upstream(s: Setup) -> Any:
    @s.asset(partitions_def=HOURLY)
    def upstream_asset(context: AssetExecutionContext) -> str:
        return context.partition_key

    return upstream_asset


def _materialize_hours(s: Setup, upstream: Any, day: str = "2022-01-01") -> None:
    keys = [k for k in HOURLY.get_partition_keys() if k.startswith(day)]
    for key in keys:
        s.materialize([upstream], partition_key=key)


def test_multiple_time_partitions(io_setup: Setup) -> None:
    """`test_upath_io_manager_multiple_time_partitions`: a day reads its 24 hours as a dict
    {hour key: value}."""
    s = io_setup
    upstream = _hourly_upstream(s)
    _materialize_hours(s, upstream)

    @s.asset(partitions_def=DAILY)
    def downstream_asset(upstream_asset: dict[str, str]) -> dict[str, str]:
        return upstream_asset

    r = s.materialize([upstream.to_source_asset(), downstream_asset], partition_key="2022-01-01")
    data = r.output_for_node("downstream_asset")
    assert len(data) == 24, "downstream day should map to upstream 24 hours"
    assert all(k == v for k, v in data.items())


@pytest.mark.parametrize("annotation", ["none", "any"])
def test_multiple_partitions_without_dict_annotation(io_setup: Setup, annotation: str) -> None:
    """`test_skip_type_check_for_multiple_partitions_with_no_type_annotation` / `_with_any_type`:
    an unannotated or `Any` input still receives the dict."""
    s = io_setup
    upstream = _hourly_upstream(s)
    _materialize_hours(s, upstream)

    if annotation == "none":

        def downstream_asset(upstream_asset):
            return upstream_asset
    else:

        def downstream_asset(upstream_asset: Any) -> Any:
            return upstream_asset

    down = s.asset(downstream_asset, partitions_def=DAILY)
    r = s.materialize([upstream.to_source_asset(), down], partition_key="2022-01-01")
    data = r.output_for_node("downstream_asset")
    assert isinstance(data, dict) and len(data) == 24


def test_forgot_dict_annotation_fails(io_setup: Setup) -> None:
    """`test_user_forgot_dict_type_annotation_for_multiple_partitions`: several partitions
    into a `str` input fail the step before the body runs (on Dagster 1.13 the input's
    type check refuses the dict, where older UPathIOManagers raised a CheckError)."""
    from dagster import DagsterTypeCheckDidNotPass

    s = io_setup
    upstream = _hourly_upstream(s)
    _materialize_hours(s, upstream)
    seen: list[str] = []

    @s.asset(partitions_def=DAILY)
    def downstream_asset(upstream_asset: str) -> str:
        seen.append(upstream_asset)
        return upstream_asset

    with pytest.raises(DagsterTypeCheckDidNotPass, match='input "upstream_asset"'):
        s.materialize([upstream.to_source_asset(), downstream_asset], partition_key="2022-01-01")
    assert seen == []


def test_all_partition_mapping_in_a_partitioned_run(io_setup: Setup) -> None:
    """`test_upath_io_manager_multiple_static_partitions`: an unpartitioned downstream with
    `AllPartitionMapping`, run with partition "A", reads both partitions."""
    s = io_setup
    parts = StaticPartitionsDefinition(["A", "B"])

    @s.asset(partitions_def=parts)
    def upstream_asset(context: AssetExecutionContext) -> str:
        return context.partition_key

    @s.asset(ins={"upstream_asset": AssetIn(partition_mapping=AllPartitionMapping())})
    def downstream_asset(upstream_asset: dict[str, str]) -> dict[str, str]:
        return upstream_asset

    s.materialize([upstream_asset], partition_key="B")
    r = s.materialize([upstream_asset, downstream_asset], partition_key="A")
    assert r.output_for_node("downstream_asset") == {"A": "A", "B": "B"}


def test_all_partitions_from_a_non_partitioned_run(io_setup: Setup) -> None:
    """`test_upath_io_manager_multiple_partitions_from_non_partitioned_run`."""
    s = io_setup
    parts = StaticPartitionsDefinition(["A", "B"])

    @s.asset(partitions_def=parts)
    def upstream_asset(context: AssetExecutionContext) -> str:
        return context.partition_key

    @s.asset(ins={"upstream_asset": AssetIn(partition_mapping=AllPartitionMapping())})
    def downstream_asset(upstream_asset: dict[str, str]) -> dict[str, str]:
        return upstream_asset

    for key in ["A", "B"]:
        s.materialize([upstream_asset], partition_key=key)
    for _ in range(2):  # cached: the second run is a hit with the same value
        r = s.materialize([upstream_asset.to_source_asset(), downstream_asset])
        assert r.output_for_node("downstream_asset") == {"A": "A", "B": "B"}


def test_static_partitions_with_dots(io_setup: Setup) -> None:
    """`test_upath_io_manager_static_partitions_with_dot`: a key like "0.0-to-1.0" is one
    partition, read back as itself (the file-name assertion is UPath's own)."""
    s = io_setup
    parts = StaticPartitionsDefinition(["0.0-to-1.0", "1.0-to-2.0"])

    @s.asset(partitions_def=parts)
    def my_asset(context: AssetExecutionContext) -> str:
        return context.partition_key

    @s.asset(partitions_def=parts)
    def reader(my_asset: str) -> str:
        return my_asset

    for key in parts.get_partition_keys():
        r = s.materialize([my_asset, reader], partition_key=key)
        assert r.output_for_node("reader") == key


def test_single_partition_dependency(io_setup: Setup) -> None:
    """`test_partitioned_io_manager_preserves_single_partition_dependency`: the same-day
    partition arrives as a single value, not a dict."""
    s = io_setup

    @s.asset(partitions_def=DAILY)
    def upstream_asset(context: AssetExecutionContext) -> str:
        return f"up-{context.partition_key}"

    @s.asset(partitions_def=DAILY)
    def daily_asset(upstream_asset: str) -> str:
        return upstream_asset

    r = s.materialize([upstream_asset, daily_asset], partition_key="2022-01-01")
    assert r.output_for_node("daily_asset") == "up-2022-01-01"


def _window_assets(s: Setup, allow_missing: bool) -> tuple[Any, Any]:
    @s.asset(partitions_def=DAILY)
    def upstream_asset(context: AssetExecutionContext) -> str:
        return context.partition_key

    meta = {"allow_missing_partitions": True} if allow_missing else None
    mapping = TimeWindowPartitionMapping(start_offset=-1)

    @s.asset(
        partitions_def=DAILY,
        ins={"upstream_asset": AssetIn(partition_mapping=mapping, metadata=meta)},
    )
    def downstream_asset(upstream_asset: dict[str, str]) -> dict[str, str]:
        return upstream_asset

    return upstream_asset, downstream_asset


def test_time_window_mapping_reads_two_days(io_setup: Setup) -> None:
    """`test_upath_io_manager_async_multiple_time_partitions`: offset -1 maps a day to 2."""
    s = io_setup
    up, down = _window_assets(s, allow_missing=False)
    for day in ["2022-01-01", "2022-01-02"]:
        s.materialize([up], partition_key=day)
    r = s.materialize([up.to_source_asset(), down], partition_key="2022-01-02")
    assert r.output_for_node("downstream_asset") == {
        "2022-01-01": "2022-01-01",
        "2022-01-02": "2022-01-02",
    }


def test_missing_partitions_fail(io_setup: Setup) -> None:
    """`test_upath_io_manager_async_fail_on_missing_partitions`: the step fails with a
    FileNotFoundError naming the missing partition (pivot's MissingUpstream is one)."""
    s = io_setup
    up, down = _window_assets(s, allow_missing=False)
    s.materialize([up], partition_key="2022-01-01")
    with pytest.raises(FileNotFoundError, match="2022-01-04"):  # pivot: MissingUpstream
        s.materialize([up.to_source_asset(), down], partition_key="2022-01-05")


def test_allow_missing_partitions(io_setup: Setup) -> None:
    """`test_upath_io_manager_async_allow_missing_partitions`: the one present partition."""
    s = io_setup
    up, down = _window_assets(s, allow_missing=True)
    s.materialize([up], partition_key="2022-01-01")
    r = s.materialize([up.to_source_asset(), down], partition_key="2022-01-02")
    data = r.output_for_node("downstream_asset")
    assert data == {"2022-01-01": "2022-01-01"}, "1 partition should be missing"
