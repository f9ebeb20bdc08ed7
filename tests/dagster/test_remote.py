"""Two deployments sharing a remote (a local folder): run-cache hits and pulls on load."""

from __future__ import annotations

from pathlib import Path

import pytest
from dagster import asset, materialize

from pivot_dagster import PivotIOManager, cached
from pivot_store import transfer
from pivot_store.config import Config, RemoteConfig
from pivot_store.remote import open_remote
from pivot_store.repo import Repo
from tests.dagster.helpers import hits, load_stored

CALLS: list[str] = []


@asset(code_version="1")
@cached
def base() -> list:
    CALLS.append("base")
    return [1, 2, 3]


@asset(code_version="1")
@cached
def summed(base: list) -> int:
    CALLS.append("summed")
    return sum(base)


@asset(code_version="1")
@cached
def pickled() -> tuple:
    CALLS.append("pickled")
    return (1, 2)


def _project(root: Path, remote_dir: Path) -> Repo:
    repo = Repo.open(root)
    repo.save_config(
        Config(remotes={"origin": RemoteConfig(url=str(remote_dir))}, default_remote="origin")
    )
    return repo


def _push(repo: Repo) -> None:
    remote = open_remote(repo.config, "origin")
    transfer.push(repo.objects, remote, list(repo.iter_locks())).raise_for_failures()


@pytest.fixture
def two(tmp_path: Path) -> tuple[Repo, Repo]:
    CALLS.clear()
    remote = tmp_path / "remote"
    remote.mkdir()
    return _project(tmp_path / "a", remote), _project(tmp_path / "b", remote)


def test_second_deployment_hits_remote_run_cache(two, dagster_instance) -> None:
    a, b = two
    assets = [base, summed, pickled]
    assert materialize(
        assets,
        resources={"io_manager": PivotIOManager(project_dir=str(a.root))},
        instance=dagster_instance,
    ).success
    _push(a)
    CALLS.clear()
    r = materialize(
        assets,
        resources={"io_manager": PivotIOManager(project_dir=str(b.root))},
        instance=dagster_instance,
    )
    assert r.success
    # pickles from a remote are not trusted by default: that one asset re-runs
    assert CALLS == ["pickled"]
    assert hits(dagster_instance, r.run_id) == {"base": True, "summed": True, "pickled": False}
    assert load_stored(b.root, "summed") == 6


def test_load_pulls_missing_object(two, dagster_instance) -> None:
    a, _ = two
    io = PivotIOManager(project_dir=str(a.root))
    assert materialize([base], resources={"io_manager": io}, instance=dagster_instance).success
    _push(a)
    a.objects.remove(a.read_lock("base").outputs[0].hash)
    r = materialize(
        [base, summed], resources={"io_manager": io}, instance=dagster_instance, selection=[summed]
    )
    assert r.success and load_stored(a.root, "summed") == 6
