"""Remote-first mode: every step in its own empty project dir and DAGSTER_HOME, one S3 remote.

This is what k8s/docker/celery executors do to a run: each step starts on a
machine with an empty `.pivot/`. The only thing the steps share is the moto
bucket, so upstream locks must be resolved through the remote's latest
pointers, inputs pulled from it, and every output pushed before its step ends.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from dagster import StaticPartitionsDefinition, asset, instance_for_test, materialize

from pivot_dagster import PivotIOManager, cached, pivot_asset
from pivot_dagster.engine import Engine
from pivot_store.config import Config, RemoteConfig
from pivot_store.errors import PivotError
from pivot_store.lockfile import FingerprintParts, Lock, OutputRecord
from pivot_store.repo import Repo
from tests.dagster.helpers import load_stored

PARTS = StaticPartitionsDefinition(["a", "b"])
CALLS: list[str] = []


@asset(partitions_def=PARTS, code_version="1")
@cached
def days(context) -> list:
    CALLS.append("days")
    return [context.partition_key] * 2


@pivot_asset
def merged(days: dict) -> list:
    CALLS.append("merged")
    return sorted(x for v in days.values() for x in v)


@pivot_asset
def counted(merged: list) -> dict:
    CALLS.append("counted")
    return {"n": len(merged)}


@asset
def plain(counted: dict) -> int:
    """Not `cached`: its input is loaded by the IO manager before the body."""
    CALLS.append("plain")
    return counted["n"] + 1


ASSETS = [days, merged, counted, plain]
STEPS: list[tuple[Any, str | None]] = [(days, "a"), (days, "b"), (merged, None),
                                       (counted, None), (plain, None)]  # fmt: skip


def _fresh(root: Path, cfg: dict[str, Any]) -> Repo:
    repo = Repo.open(root)
    repo.save_config(Config(remotes={"s3": RemoteConfig(**cfg)}, default_remote="s3"))
    return repo


def _run_isolated(tmp: Path, cfg: dict[str, Any], tag: str) -> list[Repo]:
    """Each step: a new project dir and a new instance (DAGSTER_HOME), as on an executor."""
    repos = []
    for i, (a, pk) in enumerate(STEPS):
        repo = _fresh(tmp / f"{tag}-step{i}", cfg)
        io = PivotIOManager(project_dir=str(repo.root), remote_first=True)
        with instance_for_test() as inst:
            r = materialize(ASSETS, resources={"io_manager": io}, instance=inst, selection=[a],
                            partition_key=pk)  # fmt: skip
            assert r.success
        repos.append(repo)
    return repos


def test_steps_on_empty_machines_share_only_the_remote(
    tmp_path: Path, s3_remote_config: dict[str, Any]
) -> None:
    CALLS.clear()
    repos = _run_isolated(tmp_path, s3_remote_config, "first")
    assert CALLS == ["days", "days", "merged", "counted", "plain"]
    assert load_stored(repos[2].root, "merged") == ["a", "a", "b", "b"]
    assert load_stored(repos[3].root, "counted") == {"n": 4}
    assert load_stored(repos[4].root, "plain") == 5
    # The same graph again on new empty machines: every cached body is skipped.
    CALLS.clear()
    again = _run_isolated(tmp_path, s3_remote_config, "second")
    assert CALLS == ["plain"]  # the one asset without `cached`
    assert load_stored(again[4].root, "plain") == 5


def test_remote_first_without_a_remote_is_a_clear_error(tmp_path: Path) -> None:
    repo = Repo.open(tmp_path / "p")
    io = PivotIOManager(project_dir=str(repo.root), remote_first=True)
    with (
        instance_for_test() as inst,
        pytest.raises(PivotError, match="remote-first mode needs a remote"),
    ):
        materialize(ASSETS, resources={"io_manager": io}, instance=inst, selection=[days],
                    partition_key="a")  # fmt: skip


def test_shared_instance_outranks_a_newer_foreign_pointer(
    tmp_path: Path, s3_remote_config: dict[str, Any]
) -> None:
    """Steps of one deployment share its instance: its record, not the remote's newest, rules."""
    with instance_for_test() as inst:
        for i, pk in enumerate(("a", "b")):
            repo = _fresh(tmp_path / f"step{i}", s3_remote_config)
            io = PivotIOManager(project_dir=str(repo.root), remote_first=True)
            assert materialize(ASSETS, resources={"io_manager": io}, instance=inst,
                               selection=[days], partition_key=pk).success  # fmt: skip
        # Another deployment publishes a newer result for days@a (an object we never see).
        other = _fresh(tmp_path / "other", s3_remote_config)
        foreign = Lock.build("days/@a", FingerprintParts(code_version="9"),
                             [OutputRecord(hash="f" * 16, size=3, format="json")])  # fmt: skip
        assert Engine(other, remote="s3").publish_latest(foreign)
        repo = _fresh(tmp_path / "step2", s3_remote_config)
        io = PivotIOManager(project_dir=str(repo.root), remote_first=True)
        assert materialize(ASSETS, resources={"io_manager": io}, instance=inst,
                           selection=[merged]).success  # fmt: skip
        assert load_stored(repo.root, "merged") == ["a", "a", "b", "b"]
