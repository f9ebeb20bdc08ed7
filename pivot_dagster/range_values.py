"""`cached(range_values=True)`: a body that always returns `{partition key: value}`.

A single-run backfill hands one step several partitions, and the body returns
one value per partition. Without a declared convention pivot stores those
values as computed, never as cache entries: the same body run for one
partition alone returns `{"c": value}`, so a hit on the range's `value` would
hand back what no single-partition run produces. With `range_values=True` the
user declares the convention:

- the body returns `{partition key: value}` for whatever partitions it runs
  for, one partition included, and
- a partition's value depends only on that partition's inputs (its upstream
  partitions, as the asset graph maps them, the config, the code), not on
  the other partitions of the range.

Then a partition's stored value is `value` whichever run computed it: a
single-partition run's `{"c": value}` is unwrapped to `value` (its own
output, its lock, its run-cache entry), and a range run's parts are computed
per partition, exactly as a single-partition run of that partition computes
them, so each partition's result is a run-cache entry the other kind of run
hits. A range run whose every partition is stored skips the body; one with
any partition missing runs it for the whole range (the body cannot be asked
for fewer partitions) and stores every partition's value.

A range result travels as `handoff.RangeValues` (a dict whose values may be
`CacheHit`s), its parts per partition in the output metadata
(`handoff.RANGE_PARTS_KEY`); `store` is the IO manager's side.
"""

from __future__ import annotations

import time
import typing
from collections.abc import Callable, Mapping
from datetime import timedelta
from typing import Any

from dagster import AssetExecutionContext, MaterializeResult, MetadataValue, Output, OutputContext
from dagster._core.execution.plan.outputs import StepOutputHandle

from pivot_dagster import asset_keys, explain, formats, handoff
from pivot_dagster.handoff import CacheHit, RangeValues
from pivot_store.errors import PivotError

_FIX = (
    "with cached(range_values=True) the body returns {partition key: value} with exactly "
    "the run's partition keys (`context.partition_keys`), one partition included"
)


def value_annotation(ret: Any) -> Any:
    """The annotation of one partition's value: `V` of `dict[K, V]`, else unannotated."""
    args = typing.get_args(ret)
    if typing.get_origin(ret) in (dict, typing.Dict, Mapping) and len(args) == 2:  # noqa: UP006
        return args[1]
    return typing.Any if ret is not None else ret


def parent_partitions(graph: Any, key: Any, up_key: Any, partition: str) -> list[Any] | None:
    """The upstream partitions one partition of `key` reads, as the asset graph maps them
    (what a single-partition run's step is handed), or None for an unpartitioned upstream."""
    if graph.get(up_key).partitions_def is None:
        return None
    res = graph.get_parent_partition_keys_for_child(partition, up_key, key)
    return sorted(res.partitions_subset.get_partition_keys())


def unwrap_single(value: Any, partition: str, asset: str) -> Any:
    """A single-partition run's `{partition: value}` as that partition's value.

    `Output` and `MaterializeResult` keep their metadata around the unwrapped value."""
    inner = value.value if isinstance(value, Output | MaterializeResult) else value
    if not (isinstance(inner, dict) and set(inner) == {partition}):
        raise PivotError(f"{asset}: partition {partition} returned {_shape(inner)}", _FIX)
    if isinstance(value, Output):
        return Output(
            inner[partition],
            metadata=value.metadata,
            data_version=value.data_version,
            tags=value.tags,
        )
    if isinstance(value, MaterializeResult):
        return value._replace(value=inner[partition])
    return inner[partition]


def run(
    ctx: AssetExecutionContext,
    plans: Mapping[str, Any],
    body: Callable[[Any], Any],
    *,
    max_age: timedelta | None,
    refresh: bool,
) -> MaterializeResult:
    """A range run: every partition's stored result (the body skipped), else the body's
    values, each partition with its own parts. `plans` are `cached`'s, one per partition."""
    asset = ctx.asset_key.to_user_string()
    found, causes = {}, {}
    for pk, plan in plans.items():
        f, why = explain.decide(
            plan.engine, plan.name, plan.parts, plan.expected, max_age=max_age, refresh=refresh
        )
        if f is None:
            causes[pk] = why
        else:
            found[pk] = f
    meta: dict[str, Any] = {
        handoff.RANGE_PARTS_KEY: MetadataValue.json(
            {pk: handoff.parts_to_json(p.parts) for pk, p in plans.items()}
        )
    }
    if not causes:
        ctx.log.info(f"pivot: cache hit for {asset}, all {len(plans)} partitions of the range")
        hits = {pk: CacheHit(f.lock, plans[pk].parts, f.source) for pk, f in found.items()}
        return MaterializeResult(value=RangeValues(hits), metadata=meta)
    lines = [f"{pk}: {explain.joined(why)}" for pk, why in causes.items()]
    ctx.log.info(f"pivot: cache miss for {asset} ({len(causes)} of {len(plans)}): {lines}")
    upstream: dict = {}
    for plan in plans.values():
        upstream.update(plan.upstream)
    started = time.perf_counter()
    value = body(upstream)
    took = time.perf_counter() - started
    if not (isinstance(value, dict) and set(value) == set(plans)):
        raise PivotError(
            f"{asset}: a range of {len(plans)} partitions returned {_shape(value)}", _FIX
        )
    meta.update(handoff.miss_metadata(lines, took))
    return MaterializeResult(value=RangeValues(value), metadata=meta)


def store(io: Any, context: OutputContext, obj: Any) -> bool:
    """The IO manager's side: a `RangeValues` stored one result per partition, each a
    run-cache entry under its own parts (a hit's restored). False: not such a result."""
    if not isinstance(obj, RangeValues):
        return False
    engine = io.engine()
    pkeys = list(context.asset_partition_keys)
    key = context.asset_key.to_user_string()
    given = context.output_metadata or {}
    raw = handoff.value_of(given.get(handoff.RANGE_PARTS_KEY)) or {}
    if set(obj) != set(pkeys) or set(raw) != set(pkeys):
        raise PivotError(f"{key}: the range's values do not match its partitions", _FIX)
    origin = handoff.origin_for(context.run_id, given)
    forced = _forced_format(io, context)
    hashes, values, all_hit = {}, {}, True
    for pk in pkeys:
        name = asset_keys.lock_name(context.asset_key, pk)
        v = obj[pk]
        if isinstance(v, CacheHit):
            lock = engine.save_hit(name, v.lock, v.parts)
        else:
            all_hit = False
            parts = handoff.parts_from_json(raw[pk])
            handler = formats.choose(v, forced)
            lock = engine.save_computed(
                name, parts, v, handler, context.name, run_cache=True, origin=origin
            )
        io._write_through(engine, lock, True, context)
        hashes[pk] = lock.outputs[0].hash
        values[pk] = v
    context.add_output_metadata(
        {
            handoff.PARTITION_HASHES_KEY: MetadataValue.json(hashes),
            handoff.CACHE_HIT_KEY: all_hit,
        }
    )
    _capture(context, engine, values)
    verb = "cache hit" if all_hit else "stored"
    context.log.info(f"pivot: {verb} {key} for {len(pkeys)} partitions, one lock each")
    return True


def _forced_format(io: Any, context: OutputContext) -> str | None:
    forced = (context.definition_metadata or {}).get(handoff.FORMAT_KEY)
    if forced is None:
        forced = io.formats.get(context.asset_key.to_user_string())
    return handoff.value_of(forced)


def _capture(context: OutputContext, engine: Any, values: dict[str, Any]) -> None:
    """In-process runs (`asset_value`) see `{partition: value}`, hits loaded, as the miss."""
    step = getattr(context, "step_context", None)
    captures = [
        c
        for c in (getattr(step, "output_capture", None), getattr(step, "step_output_capture", None))
        if c is not None
    ]
    handle = StepOutputHandle(context.step_key, context.name, context.mapping_key)
    if not any(handle in c for c in captures):
        return
    plain = {
        pk: engine.load(v.lock.outputs[0], owner=pk) if isinstance(v, CacheHit) else v
        for pk, v in values.items()
    }
    for c in captures:
        if handle in c:
            c[handle] = plain


def _shape(value: Any) -> str:
    if isinstance(value, dict):
        return f"a dict with keys {sorted(map(str, value))[:5]}"
    return f"a {type(value).__module__}.{type(value).__qualname__}"
