"""Errors a user can meet: one clear line in the run's logs, and the run fails cleanly."""

from __future__ import annotations

from pathlib import Path

from dagster import DagsterEventType, asset, materialize

from pivot_dagster import PivotIOManager, cached
from pivot_store.repo import Repo


@asset(code_version="1")
def up() -> dict:
    return {"a": 1}


@asset(code_version="1")
@cached
def down(up: dict) -> int:
    return up["a"]


def _failure_text(project: Path, instance, assets, **kw) -> str:
    r = materialize(
        assets,
        resources={"io_manager": PivotIOManager(project_dir=str(project))},
        instance=instance,
        raise_on_error=False,
        **kw,
    )
    assert not r.success
    failures = [e for e in r.all_events if e.event_type == DagsterEventType.STEP_FAILURE]
    assert len(failures) == 1
    err = failures[0].step_failure_data.error
    chain = []
    while err is not None:
        chain.append(err.message)
        err = err.cause
    return "\n".join(chain)


def test_unserializable_value(project: Path, dagster_instance) -> None:
    @asset
    def bad() -> object:
        return lambda: 1

    text = _failure_text(project, dagster_instance, [bad])
    assert "UnserializableValue: cannot store a" in text and "return a picklable value" in text


def test_missing_upstream_lock(project: Path, dagster_instance) -> None:
    text = _failure_text(project, dagster_instance, [up, down], selection=[down])
    assert "no pivot lock for upstream 'up'" in text and "materialize that asset" in text


def test_object_missing_without_remote(project: Path, dagster_instance) -> None:
    assert materialize(
        [up],
        resources={"io_manager": PivotIOManager(project_dir=str(project))},
        instance=dagster_instance,
    ).success
    repo = Repo.open(project)
    repo.objects.remove(repo.read_lock("up").outputs[0].hash)
    text = _failure_text(project, dagster_instance, [up, down], selection=[down])
    assert "is not in the local cache and no remote is configured" in text


def test_lock_from_newer_schema(project: Path, dagster_instance) -> None:
    assert materialize(
        [up],
        resources={"io_manager": PivotIOManager(project_dir=str(project))},
        instance=dagster_instance,
    ).success
    lock = project / ".pivot/stages/up.lock"
    text = lock.read_text()
    assert "schema_version: 2" in text  # a run's lock has an origin (format 2)
    lock.write_text(text.replace("schema_version: 2", "schema_version: 99"))
    text = _failure_text(project, dagster_instance, [up, down], selection=[down])
    assert "schema_version 99, newer than this pivot" in text and "upgrade pivot-dagster" in text
