"""Push and pull sensors: thin Dagster factories over `pivot_dagster.instance_walk`.

Each tick finds the code location's assets (`context.repository_def`), the
`PivotIOManager` each asset uses (rebuilt from the resource's config), and calls
the walks once per (project dir, remote). The push sensor keeps its
progress in its own cursor (JSON: asset key -> storage id) and names failed
pushes in its skip reason and log; the pull sensor's memory is the local locks,
so it needs no cursor and never re-reports what this deployment already has.
"""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

from dagster import (
    AssetKey,
    AssetSelection,
    DefaultSensorStatus,
    SensorDefinition,
    SensorEvaluationContext,
    SensorResult,
    sensor,
)

from pivot_dagster import instance_walk
from pivot_dagster.io_manager import PivotIOManager


def _io_managers(
    context: SensorEvaluationContext, selection: AssetSelection | None
) -> dict[tuple[str, str | None], tuple[PivotIOManager, list[AssetKey]]]:
    """(project dir, remote) -> (IO manager, its asset keys), for this code location."""
    rdef = context.repository_def
    if rdef is None:
        raise ValueError("the pivot sensors need a sensor context with definitions")
    graph = rdef.asset_graph
    keys = selection.resolve(graph) if selection is not None else graph.materializable_asset_keys
    resources = rdef.get_top_level_resources()
    built: dict[str, PivotIOManager | None] = {}
    groups: dict[tuple[str, str | None], tuple[PivotIOManager, list[AssetKey]]] = {}
    for key in sorted(keys, key=lambda k: k.to_user_string()):
        ad = rdef.assets_defs_by_key.get(key)
        if ad is None:
            continue
        io_key = ad.get_io_manager_key_for_asset_key(key)
        if io_key not in built:
            built[io_key] = _as_pivot(resources.get(io_key))
        io = built[io_key]
        if io is None:
            continue
        group = groups.setdefault((io.project_dir, io.remote), (io, []))
        group[1].append(key)
    return groups


def _as_pivot(resource: Any) -> PivotIOManager | None:
    if isinstance(resource, PivotIOManager):
        return resource
    cls = getattr(resource, "configurable_resource_cls", None)
    if isinstance(cls, type) and issubclass(cls, PivotIOManager):
        return cls(**(resource.config_schema.default_value or {}))
    return None


def pivot_push_sensor(
    remote: str | None = None,
    minimum_interval_seconds: int = 30,
    asset_selection: AssetSelection | None = None,
    name: str = "pivot_push_sensor",
    default_status: DefaultSensorStatus = DefaultSensorStatus.STOPPED,
    verify_remote_every: timedelta | None = timedelta(hours=24),
) -> SensorDefinition:
    """A sensor pushing new PivotIOManager materializations (objects + run-cache entries).

    `remote` overrides the IO manager's remote (else its default remote).
    `verify_remote_every`: the first push after this long since the last
    verification of the remote's known index checks the remote itself
    (`pivot push --verify-remote`), so objects deleted from the remote behind
    pivot's back are sent again; the time is kept beside the index, in the
    cache. None turns it off.
    """

    @sensor(
        name=name,
        minimum_interval_seconds=minimum_interval_seconds,
        default_status=default_status,
        description="Pushes pivot results of new materializations to the remote.",
    )
    def _push(context: SensorEvaluationContext) -> SensorResult:
        cursor: dict[str, int] = json.loads(context.cursor) if context.cursor else {}
        pushed: list[str] = []
        failed: dict[str, str] = {}
        for io, keys in _io_managers(context, asset_selection).values():
            target = remote or io.remote_name()
            if target is None:
                context.log.warning(f"pivot: no remote for {io.project_dir}; nothing pushed")
                continue
            out = instance_walk.push_new_materializations(
                context.instance, io.get_repo(), target, cursor, keys, verify_remote_every
            )
            cursor.update(out.cursor)
            pushed += out.pushed
            failed.update(out.failed)
        for lock_name, why in sorted(failed.items()):
            context.log.warning(f"pivot: push of {lock_name} failed (retried next tick): {why}")
        return SensorResult(
            cursor=json.dumps(cursor, sort_keys=True), skip_reason=_reason(pushed, failed)
        )

    return _push


def _reason(pushed: list[str], failed: dict[str, str]) -> str:
    text = f"pivot: pushed {len(pushed)} result(s)"
    if pushed:
        text += f" ({', '.join(pushed[:5])}{', ...' if len(pushed) > 5 else ''})"
    if failed:
        first = next(iter(sorted(failed.items())))
        text += f"; {len(failed)} FAILED, retried next tick: {first[0]}: {first[1]}"
    return text


def pivot_pull_sensor(
    remote: str | None = None,
    minimum_interval_seconds: int = 30,
    asset_selection: AssetSelection | None = None,
    name: str = "pivot_pull_sensor",
    default_status: DefaultSensorStatus = DefaultSensorStatus.STOPPED,
) -> SensorDefinition:
    """A sensor recording remote results that match this deployment as runless materializations."""

    @sensor(
        name=name,
        minimum_interval_seconds=minimum_interval_seconds,
        default_status=default_status,
        description="Pulls matching pivot results from the remote and records them.",
    )
    def _pull(context: SensorEvaluationContext) -> SensorResult:
        events = []
        for io, keys in _io_managers(context, asset_selection).values():
            events += instance_walk.pull_matching(
                context.repository_def,
                io.get_repo(),
                remote or io.remote_name(),
                instance=context.instance,
                selection=keys,
                trust_remote_pickle=io.trust_remote_pickle,
                remote_first=io.remote_first,
            )
        if not events:
            return SensorResult(skip_reason="pivot: no new matching results on the remote")
        context.log.info(f"pivot: pulled {len(events)} result(s)")
        return SensorResult(asset_events=events)

    return _pull
