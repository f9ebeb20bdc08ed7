"""Push/pull sensors and the instance walks behind them, against moto S3 on loopback.

In-process, two real Dagster instances (two deployments) and two project
dirs sharing one bucket: the push sensor's cursor, a failed push retried and
reported, the pull walk working down a chain in one call (partitions, config
defaults), nothing re-reported, and `push_on_write`.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest
from dagster import (
    AssetKey,
    Config,
    Definitions,
    StaticPartitionsDefinition,
    asset,
    build_sensor_context,
    instance_for_test,
    materialize,
)

from pivot_dagster import (
    PivotIOManager,
    cached,
    pivot_asset,
    pivot_pull_sensor,
    pivot_push_sensor,
    pull_matching,
    push_new_materializations,
)
from pivot_store import run_lookup
from pivot_store.config import Config as PivotConfig
from pivot_store.config import RemoteConfig
from pivot_store.remote import open_remote
from pivot_store.repo import Repo
from tests.dagster.helpers import load_stored

PARTS = StaticPartitionsDefinition(["a", "b"])


class Scale(Config):
    factor: int = 3


@asset(partitions_def=PARTS, code_version="1")
@cached
def days(context) -> list:
    return [context.partition_key] * 2


@pivot_asset
def merged(days: dict) -> list:
    return sorted(x for v in days.values() for x in v)


@pivot_asset
def scaled(config: Scale, merged: list) -> dict:
    return {"n": len(merged) * config.factor}


@asset(config_schema={"needed": int}, code_version="1")
@cached
def needs_config(context) -> int:
    return context.op_config["needed"]


ASSETS = [days, merged, scaled]
push = pivot_push_sensor()
pull = pivot_pull_sensor()


def _project(root: Path, cfg: dict[str, Any]) -> Repo:
    repo = Repo.open(root)
    repo.save_config(PivotConfig(remotes={"s3": RemoteConfig(**cfg)}, default_remote="s3"))
    return repo


def _defs(repo: Repo, **io: Any) -> Definitions:
    return Definitions(
        assets=[*ASSETS, needs_config],
        resources={"io_manager": PivotIOManager(project_dir=str(repo.root), **io)},
        sensors=[push, pull],
    )


def _materialize(repo: Repo, instance: Any, **io: Any) -> None:
    res = {"io_manager": PivotIOManager(project_dir=str(repo.root), **io)}
    for pk in PARTS.get_partition_keys():
        assert materialize(ASSETS, resources=res, instance=instance, selection=[days],
                           partition_key=pk).success  # fmt: skip
    assert materialize(ASSETS, resources=res, instance=instance, selection=[merged, scaled]).success


def _entries(repo: Repo, name: str) -> list[Any]:
    remote = open_remote(repo.config, "s3")
    lock = repo.read_lock(name)
    return list(run_lookup.lookup(remote, name, lock.fingerprint))


@pytest.fixture
def a(tmp_path: Path, s3_remote_config: dict[str, Any]) -> Repo:
    return _project(tmp_path / "a", s3_remote_config)


def test_push_sensor_pushes_each_result_once(a: Repo, dagster_instance: Any) -> None:
    _materialize(a, dagster_instance)
    ctx = build_sensor_context(instance=dagster_instance, definitions=_defs(a))
    first = push(ctx)
    assert "pushed 4 result(s)" in first.skip_reason.skip_message
    for name in ("days/@a", "days/@b", "merged", "scaled"):
        assert len(_entries(a, name)) == 1
    cursor = json.loads(first.cursor)
    assert set(cursor) == {"days", "merged", "scaled"}
    again = push(build_sensor_context(instance=dagster_instance, cursor=first.cursor,
                                      definitions=_defs(a)))  # fmt: skip
    assert again.skip_reason.skip_message == "pivot: pushed 0 result(s)"
    assert json.loads(again.cursor) == cursor


def test_failed_push_is_reported_and_retried(a: Repo, dagster_instance: Any) -> None:
    _materialize(a, dagster_instance)
    out = a.read_lock("merged").outputs[0]
    saved = a.objects.read_bytes(out.hash)
    a.objects.remove(out.hash)
    first = push_new_materializations(dagster_instance, a, "s3", {})
    assert set(first.failed) == {"merged"} and "not in the local cache" in first.failed["merged"]
    assert "merged" not in first.cursor and "scaled" in first.pushed
    ctx = build_sensor_context(instance=dagster_instance, definitions=_defs(a))
    tick = push(ctx)
    assert "1 FAILED, retried next tick: merged" in tick.skip_reason.skip_message
    assert "merged" not in json.loads(tick.cursor)
    a.objects.add_bytes(saved)  # the cause is fixed: the next tick pushes it
    retry = push_new_materializations(dagster_instance, a, "s3", json.loads(tick.cursor))
    assert retry.pushed == ["merged"] and not retry.failed and "merged" in retry.cursor
    assert len(_entries(a, "merged")) == 1


def test_pull_matching_walks_the_chain_in_one_call(
    a: Repo, tmp_path: Path, s3_remote_config: dict[str, Any], dagster_instance: Any
) -> None:
    _materialize(a, dagster_instance)
    assert not push_new_materializations(dagster_instance, a, "s3").failed
    b = _project(tmp_path / "b", s3_remote_config)
    with instance_for_test() as inst_b:
        events = pull_matching(_defs(b), b, "s3", instance=inst_b)
        got = [(e.asset_key.to_user_string(), e.partition) for e in events]
        # topological: the partitions first, then what reads them; config default used
        assert got == [("days", "a"), ("days", "b"), ("merged", None), ("scaled", None)]
        assert load_stored(b.root, "scaled") == {"n": 12}
        for e in events:
            assert e.tags["dagster/data_version"] == e.metadata["pivot/hash"].value
            assert e.metadata["pivot/cache_hit"].value is True
        assert pull_matching(_defs(b), b, "s3", instance=inst_b) == []
        # the sensor: nothing new, so a skip, and the event log stays as it was
        tick = pull(build_sensor_context(instance=inst_b, definitions=_defs(b)))
        assert not tick.asset_events and "no new" in tick.skip_reason.skip_message
    # A pushed these: its own pull reports nothing
    assert pull_matching(_defs(a), a, "s3", instance=dagster_instance) == []


def test_pull_sensor_events_recorded_runless(
    a: Repo, tmp_path: Path, s3_remote_config: dict[str, Any], dagster_instance: Any
) -> None:
    _materialize(a, dagster_instance)
    push_new_materializations(dagster_instance, a, "s3")
    b = _project(tmp_path / "b", s3_remote_config)
    with instance_for_test() as inst_b:
        tick = pull(build_sensor_context(instance=inst_b, definitions=_defs(b)))
        for ev in tick.asset_events:
            inst_b.report_runless_asset_event(ev)
        rec = inst_b.fetch_materializations(AssetKey("scaled"), limit=1).records[0]
        assert rec.run_id == ""
        assert rec.asset_materialization.metadata["pivot/source"].value.startswith("s3 (s3://")
        dv = inst_b.get_latest_data_version_record(AssetKey("scaled"))
        assert dv is not None
        assert (
            rec.asset_materialization.tags["dagster/data_version"]
            == b.read_lock("scaled").outputs[0].hash
        )


def test_push_on_write_needs_no_sensor(
    a: Repo, tmp_path: Path, s3_remote_config: dict[str, Any], dagster_instance: Any
) -> None:
    _materialize(a, dagster_instance, push_on_write=True)
    for name in ("days/@a", "days/@b", "merged", "scaled"):
        assert len(_entries(a, name)) == 1
    b = _project(tmp_path / "b", s3_remote_config)
    with instance_for_test() as inst_b:
        assert len(pull_matching(_defs(b), b, "s3", instance=inst_b)) == 4


def test_push_sensor_reverifies_the_remote_on_its_interval(a: Repo, dagster_instance: Any) -> None:
    """Issue 12 item 7: objects deleted from the remote behind pivot's back are sent again
    by the first push after `verify_remote_every` (default 24 h), not trusted forever."""
    from pivot_store.remote_index import KnownIndex

    _materialize(a, dagster_instance)
    defs = _defs(a)
    assert "pushed 4 result(s)" in push(build_sensor_context(
        instance=dagster_instance, definitions=defs)).skip_reason.skip_message  # fmt: skip
    remote = open_remote(a.config, "s3")
    key = remote.object_key(a.read_lock("merged").outputs[0].hash)
    remote.fs.rm_file(key)  # out of band
    index = KnownIndex(a.objects.root, remote.identity)
    assert index.verified_at() is not None  # the first push found no stamp, so it verified
    # Within the interval the index is trusted (a sensor without a cursor re-pushes all).
    push(build_sensor_context(instance=dagster_instance, definitions=defs))
    assert not remote.exists(key)
    index.mark_verified(time.time() - 25 * 3600)
    push(build_sensor_context(instance=dagster_instance, definitions=defs))
    assert remote.exists(key)
    assert time.time() - (index.verified_at() or 0) < 600
