"""Upstreams pivot does not hold: their value is the data version Dagster records.

An upstream is *pivot's* when its IO manager key resolves to a `PivotIOManager`
and the instance's latest materialization of it (that partition) is pivot's,
or the instance records none (a fresh instance beside committed locks). Its
value is then its lock's content hash, as before. On pivot's IO manager but
last materialized by something else (moved away and back, a runless report):
a miss, since the body would load pivot's lock, which is not current.
Everything else (an upstream on another IO manager, including one that moved
there since pivot stored it, a `deps=[AssetSpec("ext")]` external asset, an
observable source asset) counts through the instance's latest data version
record (materialization first, then observation; `get_latest_data_version_record`):

- `dv:<version>` for an observation, a runless report or a materialization
  whose body returned its own `DataVersion`: the reporter vouches for it;
- `dv:<version>@<storage id>` for a materialization whose data version Dagster
  derived itself (code version + inputs): it does not see what the body read,
  so each new materialization counts as a change (a miss, never a stale hit);
- `missing: upstream `ext` has no data version` when the instance has none:
  the step runs its body and the metadata says why.

A step and the pull sensor build the same `UpstreamSource` (from the asset
graph, the definitions' resources and the instance), so they agree.

Inside a step the instance is asked once per step, not once per upstream:
Dagster itself fetched the latest materialization record of every upstream
key at step start (one batched `get_asset_records`, kept in the step context
for the data-version tags it writes). When that record's data version is the
content hash of pivot's lock (pivot records the hash as `dagster/data_version`
on everything it writes), the instance's current value is the lock's value,
so the upstream is pivot's and no query is made. Anything else (no record, a
partitioned upstream, a user's own data version, an observation, a lock that
names another hash) asks the instance as before. The record is read at step
start, after every earlier step of the run has finished, so an upstream
re-materialized between two steps (by pivot or not) is seen.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from pivot_dagster import asset_keys, fingerprint, handoff
from pivot_dagster.io_manager import PivotIOManager
from pivot_store.lockfile import Lock

DV_PREFIX = "dv:"
_USER_PROVIDED = "dagster/data_version_is_user_provided"


def is_pivot_resource(resource: Any) -> bool:
    """A PivotIOManager, or the resource definition Dagster built from one."""
    if isinstance(resource, PivotIOManager):
        return True
    cls = getattr(resource, "configurable_resource_cls", None)
    return isinstance(cls, type) and issubclass(cls, PivotIOManager)


def _data_version(record: Any) -> str | None:
    from dagster import DagsterEventType
    from dagster._core.definitions.data_version import extract_data_version_from_entry

    entry = record.event_log_entry
    version = extract_data_version_from_entry(entry)
    if version is None:
        return None
    value = f"{DV_PREFIX}{version.value}"
    derived = (
        entry.dagster_event_type == DagsterEventType.ASSET_MATERIALIZATION
        and entry.run_id
        and (entry.tags or {}).get(_USER_PROVIDED) != "true"
    )
    return f"{value}@{record.storage_id}" if derived else value


def step_latest(step: Any) -> dict[Any, str]:
    """`{upstream key: data version}` of each upstream's latest materialization, as
    Dagster fetched them at the start of `step` (a `StepExecutionContext`); empty when
    it fetched none (not an asset step, or an internal API that moved)."""
    from dagster import DagsterEventType

    try:
        if not step.is_external_input_asset_version_info_loaded:
            return {}
        infos = dict(step.input_asset_records or {})
    except Exception:  # another Dagster's internals: ask the instance instead
        return {}
    return {
        key: info.data_version.value
        for key, info in infos.items()
        if info is not None
        and info.event_type == DagsterEventType.ASSET_MATERIALIZATION
        and info.data_version is not None
    }


class UpstreamSource:
    """`fingerprint.dep_hashes`' judge: None for a pivot upstream (read its lock),
    else the value the instance records for it (see the module doc).

    `latest`: `step_latest` of the step asking (inside a run), keyed by the
    unpartitioned upstreams it may answer for; `partitioned(key)` says which
    upstreams it must never answer for (its record is any partition's).
    """

    def __init__(
        self,
        io_manager_key_of: Callable[[Any], str | None],
        resources: Mapping[str, Any],
        instance: Any,
        latest: Mapping[Any, str] | None = None,
        partitioned: Callable[[Any], bool] | None = None,
    ) -> None:
        self._io_key = io_manager_key_of
        self._resources = resources
        self._instance = instance
        self._latest = latest or {}
        self._partitioned = partitioned or (lambda key: True)
        self._pivot: dict[Any, bool] = {}

    def _pivot_io(self, key: Any) -> bool:
        if key not in self._pivot:
            io_key = self._io_key(key)
            self._pivot[key] = io_key is not None and is_pivot_resource(self._resources.get(io_key))
        return self._pivot[key]

    def __call__(
        self, key: Any, partition: Any, local: Callable[[], Lock | None] | None = None
    ) -> str | None:
        """`local()` reads pivot's local lock of this upstream (partition), at most once."""
        pk = asset_keys.partition_str(partition)
        if not self._pivot_io(key):
            return self.instance_value(key, pk)
        if local is not None and self._current(key, pk, local):
            return None
        latest = self._latest_materialization(key, pk)
        if latest is None or handoff.is_pivots(latest.asset_materialization.metadata, pk):
            return None
        # On pivot's IO manager, but recorded by something else since: the input the
        # body would load is pivot's lock, which the instance says is not current.
        return (
            f"{fingerprint.MISSING_DEP}: upstream `{_where(key, pk)}` is on pivot's IO manager"
            " but its latest materialization is not pivot's (materialize it again)"
        )

    def _current(self, key: Any, pk: str | None, local: Callable[[], Lock | None]) -> bool:
        """Whether the step's record of the upstream's latest materialization names the
        content of pivot's lock: then the instance's value is the lock's (no query)."""
        version = self._latest.get(key)
        if version is None or pk is not None or self._partitioned(key):
            return False
        lock = local()
        return lock is not None and len(lock.outputs) == 1 and lock.outputs[0].hash == version

    def _latest_materialization(self, key: Any, pk: str | None) -> Any:
        if self._instance is None:
            return None
        from dagster import AssetRecordsFilter

        flt = AssetRecordsFilter(asset_key=key, asset_partitions=[pk] if pk else None)
        records = self._instance.fetch_materializations(flt, limit=1).records
        return records[0] if records else None

    def instance_value(self, key: Any, pk: str | None) -> str:
        """`dv:...` from the instance, or a `missing: ...` value saying why not."""
        where = _where(key, pk)
        if self._instance is None:
            return f"{fingerprint.MISSING_DEP}: upstream `{where}` is not pivot's and no instance"
        record = self._instance.get_latest_data_version_record(key, partition_key=pk)
        value = _data_version(record) if record is not None else None
        if value is None:
            return f"{fingerprint.MISSING_DEP}: upstream `{where}` has no data version"
        return value


def _where(key: Any, pk: str | None) -> str:
    return key.to_user_string() + (f"[{pk}]" if pk else "")


def for_graph(
    asset_graph: Any,
    resources: Mapping[str, Any],
    instance: Any,
    latest: Mapping[Any, str] | None = None,
) -> UpstreamSource:
    """The judge for assets of `asset_graph` (a job's or a repository's); `latest`
    is `step_latest` of the step asking (None outside a run).

    A job's graph shows an upstream outside the run's selection as an external
    stub; its definitions' graph (`source_asset_graph`) says what it really is.
    """
    asset_graph = getattr(asset_graph, "source_asset_graph", asset_graph)

    def io_key(key: Any) -> str | None:
        if not asset_graph.has(key):
            return None
        node = asset_graph.get(key)
        return node.io_manager_key if node.is_materializable else None

    def partitioned(key: Any) -> bool:
        return not asset_graph.has(key) or asset_graph.get(key).partitions_def is not None

    return UpstreamSource(io_key, resources, instance, latest, partitioned)
