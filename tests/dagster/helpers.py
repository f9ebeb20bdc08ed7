"""Small helpers shared by the Dagster tests: run, read events, load stored values."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from dagster import AssetKey, DagsterEventType, DagsterInstance, EventRecordsFilter

from pivot_dagster import asset_keys
from pivot_dagster.engine import Engine
from pivot_store.repo import Repo


def load_stored(project: Path, key: list[str] | str, partition: str | None = None) -> Any:
    """The value pivot holds for an asset, read the way a downstream would."""
    repo = Repo.open(project)
    parts = [key] if isinstance(key, str) else key
    lock = repo.read_lock(asset_keys.lock_name(parts, partition))
    assert lock is not None, f"no lock for {parts}"
    return Engine(repo).load(lock.outputs[0])


def materializations(instance: DagsterInstance, key: str) -> list[Any]:
    """Every materialization of `key` in the instance's event log, oldest first."""
    records = instance.fetch_materializations(AssetKey(key), limit=100, ascending=True).records
    return [r.event_log_entry.asset_materialization for r in records]


def hits(instance: DagsterInstance, run_id: str) -> dict[str, bool]:
    out = {}
    for rec in instance.get_records_for_run(
        run_id, of_type=DagsterEventType.ASSET_MATERIALIZATION
    ).records:
        m = rec.event_log_entry.asset_materialization
        out[m.asset_key.to_user_string()] = m.metadata["pivot/cache_hit"].value
    return out


__all__ = ["EventRecordsFilter", "QueryCounter", "hits", "load_stored", "materializations"]


class QueryCounter:
    """Counts the instance's materialization queries by asset key."""

    def __init__(self, instance: Any, monkeypatch: Any) -> None:
        self.keys: list[str] = []
        real = instance.fetch_materializations

        def fetch(records_filter: Any, *args: Any, **kwargs: Any) -> Any:
            key = getattr(records_filter, "asset_key", records_filter)
            self.keys.append(key.to_user_string() if isinstance(key, AssetKey) else str(key))
            return real(records_filter, *args, **kwargs)

        monkeypatch.setattr(instance, "fetch_materializations", fetch)
