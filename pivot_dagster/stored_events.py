"""The instance's materialization that stored a result, for a hit's user metadata.

A hit carries the metadata and data version the asset's body gave when the
result was computed (`returns.with_user_metadata`); pivot's lock holds the
value, not the event, so the event is looked up by its recorded fingerprint
and content hash. One query per hit is most of what an all-hit step costs
beyond Dagster's own work (issue 17), so a process that takes a second hit in
one run (the in-process executor runs every step in it) asks once for the
latest materialization of every asset of the run, and a later hit whose
result is that latest one takes it from there, as does a hit of an asset that
answer says was never materialized here (a result from another deployment:
it has no event in this instance to find). Anything else (a multiprocess
step's single hit, a result that is not the latest, a run of many assets)
asks the instance for that asset as before.

What is served is metadata only (the value is pivot's lock, checked by its
fingerprint), and only an event whose recorded (fingerprint, hash) is the
hit's own: the same result, recorded by the instance this run uses.
"""

from __future__ import annotations

import threading
from typing import Any

from dagster import AssetKey, AssetRecordsFilter

from pivot_dagster import handoff

# How many earlier materializations a hit searches for the one that stored its result.
LOOKBACK = 50
# A run of more assets than this never fetches them all at once.
BATCH_LIMIT = 200
_RUNS_KEPT = 8

_GUARD = threading.Lock()
_hits_by_run: dict[str, int] = {}
_latest_by_run: dict[str, dict[AssetKey, Any]] = {}


def earlier(ctx: Any, key: AssetKey, fp: str, h: str) -> Any:
    """The `AssetMaterialization` of `key` that recorded (`fp`, `h`), or None.

    `ctx`: the hit's `AssetExecutionContext` (its run and instance)."""
    partition = ctx.partition_key if ctx.assets_def.partitions_def is not None else None
    latest = _run_latest(ctx)
    if latest is not None and key in latest:
        entry = latest[key]
        if entry is None:  # no materialization of `key` at all (a result from elsewhere)
            return None
        m = entry.asset_materialization
        if m is not None and m.partition == partition and handoff.recorded(m.metadata) == (fp, h):
            return m
    return _query(ctx.instance, key, partition, fp, h)


def _query(instance: Any, key: AssetKey, partition: str | None, fp: str, h: str) -> Any:
    records = instance.fetch_materializations(
        AssetRecordsFilter(asset_key=key, asset_partitions=[partition] if partition else None),
        limit=LOOKBACK,
        ascending=False,
    ).records
    for rec in records:
        m = rec.event_log_entry.asset_materialization
        if m is not None and handoff.recorded(m.metadata) == (fp, h):
            return m
    return None


def _run_latest(ctx: Any) -> dict[AssetKey, Any] | None:
    """The latest materialization of each asset of the run, fetched at this process's
    second hit of the run (None before it, for a run of too many assets, or when the
    storage could not say); an asset it lacks had none when it was fetched."""
    run_id = ctx.run_id
    with _GUARD:
        if run_id in _latest_by_run:
            return _latest_by_run[run_id]
        seen = _hits_by_run.get(run_id, 0) + 1
        _hits_by_run[run_id] = seen
        while len(_hits_by_run) > _RUNS_KEPT:
            _hits_by_run.pop(next(iter(_hits_by_run)))
    if seen < 2:
        return None
    latest: dict[AssetKey, Any] | None = None
    try:
        keys = _run_keys(ctx)
        if keys:
            found = ctx.instance.get_latest_materialization_events(keys)
            latest = {k: found.get(k) for k in keys}  # None: never materialized here
    except Exception as e:  # a storage without it, or internals that moved: ask per hit
        ctx.log.debug(f"pivot: the run's latest materializations could not be read: {e}")
    with _GUARD:
        _latest_by_run[run_id] = latest
        while len(_latest_by_run) > _RUNS_KEPT:
            _latest_by_run.pop(next(iter(_latest_by_run)))
    return latest


def _run_keys(ctx: Any) -> list[AssetKey]:
    """The run's assets (its selection, else its job's), or none when there are too many."""
    selection = ctx.run.asset_selection or None  # materialize() leaves it empty
    if selection is None:
        step = ctx.op_execution_context._step_execution_context  # internal
        selection = step.job_def.asset_layer.executable_asset_keys
    keys = sorted(selection, key=lambda k: k.to_user_string())
    return keys if len(keys) <= BATCH_LIMIT else []
