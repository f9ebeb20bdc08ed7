"""Two deployments sharing a remote (a local folder): run-cache hits and pulls on load.

And the remote is the Repo's (`Repo.remote/push/fetch`, sync.py): the IO
manager honours its `jobs:`, and opens and checks it once per process (moto S3).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from dagster import asset, instance_for_test, materialize

from pivot_dagster import PivotIOManager, cached
from pivot_store import sync, transfer
from pivot_store.config import Config, RemoteConfig
from pivot_store.remote import S3Remote, open_remote
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


# --- the remote is the Repo's (sync.py): its settings, opened and checked once ----------
def _writer(root: Path, remote: dict[str, Any]) -> PivotIOManager:
    """A deployment whose IO manager pushes each result (push_on_write)."""
    repo = Repo.open(root)
    repo.save_config(Config(remotes={"origin": RemoteConfig(**remote)}, default_remote="origin"))
    return PivotIOManager(project_dir=str(root), push_on_write=True)


def _materialize(io: PivotIOManager) -> None:
    with instance_for_test() as inst:
        assert materialize([base], resources={"io_manager": io}, instance=inst).success


def test_the_remotes_jobs_setting_reaches_the_io_managers_push_and_fetch(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    CALLS.clear()
    remote = {"url": f"file://{tmp_path}/remote", "jobs": 5}
    seen: list[tuple[str, int]] = []
    real_push, real_fetch = transfer.push, transfer.fetch

    def push(*a: Any, jobs: int, **kw: Any) -> Any:
        seen.append(("push", jobs))
        return real_push(*a, jobs=jobs, **kw)

    def fetch(*a: Any, jobs: int, **kw: Any) -> Any:
        seen.append(("fetch", jobs))
        return real_fetch(*a, jobs=jobs, **kw)

    monkeypatch.setattr(transfer, "push", push)
    monkeypatch.setattr(transfer, "fetch", fetch)
    _materialize(_writer(tmp_path / "a", remote))  # computed, then pushed
    _materialize(_writer(tmp_path / "b", remote))  # a remote hit: fetched, then pushed
    assert CALLS == ["base"]
    assert seen == [("push", 5), ("fetch", 5), ("push", 5)]


def test_push_on_write_and_a_remote_hit_open_and_check_the_remote_once(
    tmp_path: Path, s3_remote_config: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Per project: one Remote, one head_bucket, and a just-fetched hit is not pushed back."""
    CALLS.clear()
    opened: list[str] = []
    checks: list[str] = []
    pushes: list[str] = []
    real_open, real_check, real_apush = sync.open_remote, S3Remote._check, transfer._apush

    def counting_open(**kw: Any) -> Any:
        opened.append(kw["name"])
        return real_open(**kw)

    def check(self: S3Remote, **kw: bool) -> bool:
        checks.append(self.url)
        return real_check(self, **kw)

    async def apush(objects: Any, remote: Any, *a: Any) -> Any:
        pushes.append(remote.url)
        return await real_apush(objects, remote, *a)

    monkeypatch.setattr(sync, "open_remote", counting_open)
    monkeypatch.setattr(S3Remote, "_check", check)
    monkeypatch.setattr(transfer, "_apush", apush)
    _materialize(_writer(tmp_path / "a", s3_remote_config))  # a remote miss, then the push
    b = _writer(tmp_path / "b", s3_remote_config)
    _materialize(b)  # a remote hit: lookup, fetch, then push_on_write
    _materialize(b)  # the lock's hit, pushed again: all known
    assert CALLS == ["base"]
    assert opened == ["origin", "origin"]  # one Remote per project, not per call
    assert len(checks) == 2  # one head_bucket each, for lookups, fetches and pushes
    assert len(pushes) == 1  # only A uploaded: B's fetch recorded what the remote has
