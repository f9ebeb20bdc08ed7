"""`cached` under `@multi_asset` across processes and deployments (issue 14 C5): the
multiprocess executor, a remote's run-cache, a tampered remote object."""

from __future__ import annotations

import itertools
import os
from pathlib import Path
from typing import Any

import pytest
from dagster import AssetOut, execute_job, materialize, multi_asset, reconstructable

from pivot_dagster import PivotIOManager, cached
from pivot_store import transfer
from pivot_store.config import Config as PivotConfig
from pivot_store.config import RemoteConfig
from pivot_store.remote import open_remote
from pivot_store.repo import Repo
from tests.dagster import multi_defs
from tests.dagster.helpers import hits, load_stored, materializations

CALLS: list[str] = []
_SEQ = itertools.count(1)


@pytest.fixture(autouse=True)
def _clear() -> None:
    CALLS.clear()


@multi_asset(outs={"left": AssetOut(), "right": AssetOut()})
@cached
def pair():
    CALLS.append("pair")
    n = next(_SEQ)
    return n, -n


def _run(assets: list[Any], project: Path, instance: Any, **kw: Any) -> Any:
    resources = {"io_manager": PivotIOManager(project_dir=str(project))}
    r = materialize(assets, resources=resources, instance=instance, **kw)
    assert r.success
    return r


def _meta(instance: Any, key: str) -> dict[str, Any]:
    return {k: v.value for k, v in materializations(instance, key)[-1].metadata.items()}


# --- a remote: both outputs from the run-cache of another deployment ----------------------
def _two_deployments(tmp_path: Path) -> tuple[Repo, Repo, Path]:
    remote = tmp_path / "remote"
    remote.mkdir()
    repos = []
    for name in ("a", "b"):
        repo = Repo.open(tmp_path / name, create=True)
        cfg = PivotConfig(
            remotes={"origin": RemoteConfig(url=str(remote))}, default_remote="origin"
        )
        repo.save_config(cfg)
        repos.append(repo)
    return repos[0], repos[1], remote


def _push(repo: Repo) -> None:
    rem = open_remote(repo.config, "origin")
    transfer.push(repo.objects, rem, list(repo.iter_locks())).raise_for_failures()


def test_a_second_deployment_hits_both_outputs_on_the_remote(
    tmp_path: Path, dagster_instance
) -> None:
    a, b, _ = _two_deployments(tmp_path)
    first = _run([pair], a.root, dagster_instance)
    _push(a)
    second = _run([pair], b.root, dagster_instance)
    assert CALLS == ["pair"]
    assert hits(dagster_instance, second.run_id) == {"left": True, "right": True}
    assert _meta(dagster_instance, "left")["pivot/found_in"].startswith("remote run-cache origin")
    n = first.asset_value("left")
    assert (load_stored(b.root, "left"), load_stored(b.root, "right")) == (n, -n)


def test_a_tampered_remote_output_is_no_hit(tmp_path: Path, dagster_instance) -> None:
    """One output's object on the remote no longer matches its hash: the group's fetch
    refuses it, nothing of it is kept, and both outputs are computed here."""
    a, b, remote = _two_deployments(tmp_path)
    _run([pair], a.root, dagster_instance)
    _push(a)
    h = a.read_lock("right").outputs[0].hash
    obj = remote / "files" / h[:2] / h[2:]
    obj.chmod(0o644)
    obj.write_bytes(b"-1000")
    second = _run([pair], b.root, dagster_instance)
    assert CALLS == ["pair", "pair"]
    assert hits(dagster_instance, second.run_id) == {"left": False, "right": False}
    n = second.asset_value("left")
    assert load_stored(b.root, "right") == -n
    assert not b.objects.exists(h) or b.read_lock("right").outputs[0].hash != h


# --- the multiprocess executor: each step in its own process --------------------------------
def test_multiprocess_run_then_all_hits(
    project: Path, dagster_instance, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The parts and the body's start reach each output's IO manager call through the
    step's events; a second run hits the multi_asset and its downstreams."""
    monkeypatch.setenv("PIVOT_TEST_PROJECT", str(project))
    root = str(Path(__file__).resolve().parents[2])
    monkeypatch.setenv(
        "PYTHONPATH", os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")]))
    )
    monkeypatch.chdir(root)  # Dagster resolves the job's module from the working directory
    job = reconstructable(multi_defs.multiprocess_job)
    with execute_job(job, instance=dagster_instance) as first:
        assert first.success
    with execute_job(job, instance=dagster_instance) as second:
        assert second.success
        assert hits(dagster_instance, second.run_id) == dict.fromkeys(
            ["evens", "odds", "evens_sum", "odds_sum"], True
        )
    assert multi_defs.counts() == {"evens_sum": 1, "odds_sum": 1, "parity": 1}
    repo = Repo.open(project)
    evens, odds = (repo.read_lock(k) for k in ("evens", "odds"))
    assert evens.origin == odds.origin  # one computation: run, deployment, start, duration
    assert evens.origin.run_id == first.run_id
    assert load_stored(project, "evens")[2] == load_stored(project, "odds")[2]
