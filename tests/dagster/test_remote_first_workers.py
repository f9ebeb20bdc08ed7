"""Remote-first on long-lived workers (Celery): each keeps its `.pivot/` between runs.

Two project dirs ("workers") share one instance and one moto bucket. A worker's
local lock of an upstream may be runs behind the instance; it is a cache, used
only when it names the value the instance recorded (issue 16), both for the
fingerprint (`cached`) and for loading an input (a plain asset).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from dagster import AssetKey, asset, instance_for_test, materialize

from pivot_dagster import PivotIOManager, cached
from pivot_store.config import Config, RemoteConfig
from pivot_store.repo import Repo
from tests.dagster.helpers import load_stored
from tests.fixtures.s3 import KEY, REGION, SECRET, S3Server

CALLS: list[str] = []


def _graph(version: str) -> list[Any]:
    @asset(code_version=version)
    @cached
    def prices() -> list:
        CALLS.append("prices")
        return [1, 2, 3] if version == "1" else [10, 20, 30]

    @asset(code_version="1")
    @cached
    def stats(prices: list) -> int:
        CALLS.append("stats")
        return sum(prices)

    @asset
    def shown(prices: list) -> str:
        """Not `cached`: its input is loaded by the IO manager before the body."""
        CALLS.append("shown")
        return f"max={max(prices)}"

    return [prices, stats, shown]


def _worker(root: Path, cfg: dict[str, Any]) -> PivotIOManager:
    repo = Repo.open(root)
    repo.save_config(Config(remotes={"s3": RemoteConfig(**cfg)}, default_remote="s3"))
    return PivotIOManager(project_dir=str(repo.root), remote_first=True)


def _run(io: PivotIOManager, inst: Any, assets: list[Any], names: list[str]) -> None:
    sel = [a for a in assets if a.key.to_user_string() in names]
    assert materialize(assets, resources={"io_manager": io}, instance=inst, selection=sel).success


def _stale_on_worker_one(tmp: Path, cfg: dict[str, Any], inst: Any) -> tuple[Any, list[Any]]:
    """Worker 1 computed the graph; then prices' code changed and it ran on worker 2."""
    one = _worker(tmp / "worker1", cfg)
    two = _worker(tmp / "worker2", cfg)
    CALLS.clear()
    _run(one, inst, _graph("1"), ["prices", "stats", "shown"])
    assert sorted(CALLS) == ["prices", "shown", "stats"]
    v2 = _graph("2")
    _run(two, inst, v2, ["prices"])
    assert load_stored(one.get_repo().root, "prices") == [1, 2, 3]  # stale on worker 1
    CALLS.clear()
    return one, v2


def test_a_stale_upstream_lock_is_not_loaded(
    tmp_path: Path, s3_remote_config: dict[str, Any]
) -> None:
    """The input load of a plain asset: the instance's value, not the worker's disk's."""
    with instance_for_test() as inst:
        one, v2 = _stale_on_worker_one(tmp_path, s3_remote_config, inst)
        _run(one, inst, v2, ["shown"])
        assert CALLS == ["shown"]
        assert load_stored(one.get_repo().root, "shown") == "max=30"
        assert load_stored(one.get_repo().root, "prices") == [10, 20, 30]  # cache refreshed


def test_a_stale_upstream_lock_is_not_fingerprinted(
    tmp_path: Path, s3_remote_config: dict[str, Any]
) -> None:
    """A `cached` downstream on worker 1 misses (the old entry is not hit) and computes."""
    with instance_for_test() as inst:
        one, v2 = _stale_on_worker_one(tmp_path, s3_remote_config, inst)
        _run(one, inst, v2, ["stats"])
        assert CALLS == ["stats"]
        assert load_stored(one.get_repo().root, "stats") == 60
        assert load_stored(one.get_repo().root, "prices") == [10, 20, 30]  # cache refreshed
        # Agreement: the refreshed local lock is used, the cached step hits.
        CALLS.clear()
        _run(one, inst, v2, ["stats"])
        assert CALLS == []


@pytest.mark.parametrize("how", ["io_manager", "environment"])
def test_an_empty_worker_reaches_the_remote_by_url(
    tmp_path: Path,
    s3_server: S3Server,
    s3_bucket: str,
    monkeypatch: pytest.MonkeyPatch,
    how: str,
) -> None:
    """No .pivot/config.yaml anywhere: the remote is given by URL (issue 16)."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", KEY)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET)
    url = f"s3://{s3_bucket}/store"

    def worker(name: str) -> PivotIOManager:
        root = tmp_path / name
        if how == "io_manager":
            return PivotIOManager(project_dir=str(root), remote_first=True, remote_url=url,
                                  remote_endpoint_url=s3_server.endpoint_url,
                                  remote_region=REGION)  # fmt: skip
        return PivotIOManager(project_dir=str(root), remote_first=True)

    if how == "environment":
        monkeypatch.setenv("PIVOT_REMOTE_URL", url)
        monkeypatch.setenv("PIVOT_REMOTE_ENDPOINT_URL", s3_server.endpoint_url)
        monkeypatch.setenv("PIVOT_REMOTE_REGION", REGION)
    v1 = _graph("1")
    with instance_for_test() as inst:
        CALLS.clear()
        _run(worker("w1"), inst, v1, ["prices", "stats"])
        assert sorted(CALLS) == ["prices", "stats"]
    keys = [o["Key"] for o in s3_server.client().list_objects_v2(Bucket=s3_bucket)["Contents"]]
    assert any(k.startswith("store/runs/stats/") for k in keys)
    # A second empty worker with a new instance: both hit through the remote.
    with instance_for_test() as inst:
        CALLS.clear()
        io = worker("w2")
        _run(io, inst, v1, ["prices", "stats"])
        assert CALLS == []
        assert load_stored(io.get_repo().root, "stats") == 6
    assert not (tmp_path / "w2" / ".pivot" / "config.yaml").read_text().count("s3://")


@pytest.mark.parametrize("remote_first", [False, True])
def test_the_pull_sensor_does_not_record_an_old_result_from_a_stale_lock(
    tmp_path: Path, s3_remote_config: dict[str, Any], remote_first: bool
) -> None:
    """The pull walk of a remote-first deployment judges upstreams as its steps do: a
    worker's stale `prices` lock must not make the old `stats` entry on the remote
    look current (recorded as the latest `stats`, it would be a stale result)."""
    import shutil

    from dagster import Definitions

    from pivot_dagster import instance_walk

    with instance_for_test() as inst:
        one, v2 = _stale_on_worker_one(tmp_path, s3_remote_config, inst)
        repo = one.get_repo()
        repo.lock_path("stats").unlink()  # this deployment never had stats itself
        shutil.rmtree(repo.runs_dir / "stats", ignore_errors=True)
        defs = Definitions(assets=v2, resources={"io_manager": one})
        events = instance_walk.pull_matching(  # a sensor selecting `stats` only
            defs,
            repo,
            "s3",
            instance=inst,
            selection=[AssetKey("stats")],
            remote_first=remote_first,
        )
        pulled = {e.asset_key.to_user_string() for e in events}
        # Plain mode trusts local locks by design (it pulls into this project); in
        # remote-first mode the instance decides, and the old stats is not pulled.
        assert ("stats" in pulled) is (not remote_first)
