"""`cached` under `@multi_asset`: one fingerprint for the body, a lock per output.

The body is one computation, so its fingerprint is one set of parts built as
a single asset's are (code version, config, resources, declared files, the
partition, and the content hashes of every upstream the op reads), from the
whole op, not from the outputs a run selects: a subset run (`can_subset`)
computes the same parts as a full one. Each output is stored under its own
lock (`<asset key>[/@partition]`, what downstreams read) and run-cache entry,
whose digest is those parts plus that lock name. A hit needs every selected
output's result for the fingerprint, all from one computation
(`output_group`); then the body does not run and each selected output is
yielded as a `CacheHit`. Otherwise the body runs and every output it
produces carries the parts (and the body's start, so their origins agree).

The code version covers every output of the op: an output's own
`code_version` (`AssetOut(code_version=...)`, `AssetSpec(code_version=...)`),
else the one `cached` derived; a change to any one of them is a miss for all.
"""

from __future__ import annotations

import inspect
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import timedelta
from typing import Any, NamedTuple

from dagster import AssetExecutionContext, AssetKey, DataVersion, MaterializeResult, Output
from dagster._core.definitions.utils import NoValueSentinel
from dagster._core.execution.plan.compute_generator import (
    validate_and_coerce_op_result_to_iterator,
)
from dagster._core.types.dagster_type import DagsterTypeKind

from pivot_dagster import (
    asset_keys,
    explain,
    fingerprint,
    flights,
    formats,
    handoff,
    inputs,
    output_group,
    returns,
)
from pivot_dagster.engine import Engine
from pivot_dagster.handoff import CacheHit, PivotType
from pivot_dagster.io_manager import PivotIOManager
from pivot_store.lockfile import FingerprintParts


class Settings(NamedTuple):
    """What `cached(...)` was given, for the step to build its plan."""

    derived: str | None
    explicit: bool
    code: dict[str, str]
    exclude: tuple[str, ...]
    max_age: timedelta | None


class _Out(NamedTuple):
    key: AssetKey
    output: str  # the op's output name
    name: str  # the lock name


class _Plan(NamedTuple):
    engine: Engine
    parts: FingerprintParts
    upstream: fingerprint.UpstreamLocks
    outs: list[_Out]  # the selected outputs, in the op's output order
    members: list[output_group.Member]
    wait_s: float


def applies(ctx: AssetExecutionContext) -> bool:
    """Whether the step's op computes several assets (whatever this run selects)."""
    return len(ctx.assets_def.node_keys_by_output_name) > 1


def run(ctx: AssetExecutionContext, body: Callable[[Any], Any], settings: Settings) -> Any:
    """The step's result: the stored outputs on a hit, else the body's, fingerprinted."""
    plan = _plan(ctx, settings)
    if plan is None:
        return body(None)
    names = [o.name for o in plan.outs]
    refresh = explain.refresh_requested(ctx.run.tags, ctx.op_def.name) or any(
        explain.refresh_requested(ctx.run.tags, o.key.to_user_string()) for o in plan.outs
    )
    found, causes = _decide(plan, settings.max_age, refresh)
    if found is None and not fingerprint.has_missing(plan.parts):
        found = _claim_or_wait(ctx, plan, settings.max_age, refresh)
    if found is not None:
        return _hits(ctx, plan, found)
    for o in plan.outs:
        ctx.log.info(f"pivot: cache miss for {o.name}: {explain.joined(causes.get(o.name, []))}")
    started_wall, started = time.time(), time.perf_counter()
    try:
        value = body(plan.upstream)
    except BaseException:
        _release(plan.engine, names)
        raise
    if inspect.isgenerator(value):
        return _fingerprinted(plan, value, causes, started_wall, None)
    took = time.perf_counter() - started
    return _fingerprinted(plan, _coerced(ctx, value), causes, started_wall, took)


# --- the plan ------------------------------------------------------------------------------
def _plan(ctx: AssetExecutionContext, settings: Settings) -> _Plan | None:
    """The step's plan, or None (logged once) when this step runs uncached."""
    why = returns.not_cacheable(ctx) or _untyped_outputs(ctx)
    if why is not None:
        returns.log_once(ctx, why)
        return None
    assets_def, op_ctx = ctx.assets_def, ctx.op_execution_context
    step = op_ctx._step_execution_context  # internal: the step's IO managers live here
    outs = _selected(ctx)
    keys = {assets_def.get_io_manager_key_for_asset_key(o.key) for o in outs}
    ios = {id(r): r for r in (getattr(step.resources, k, None) for k in keys)}.values()
    io = next(iter(ios)) if len(ios) == 1 else None  # one manager: one repo, one fingerprint
    if not isinstance(io, PivotIOManager):
        ctx.log.warning(
            "pivot: the multi_asset's outputs are not all stored by one PivotIOManager; not cached"
        )
        return None
    own = assets_def.partitions_def is not None
    if own and op_ctx.has_partition_key_range and not op_ctx.has_partition_key:
        returns.log_once(ctx, "a partition-range run is not cached; running the body")
        return None
    partition = op_ctx.partition_key if own and op_ctx.has_partition_key else None
    cv, code = _code_version(ctx, settings)
    if cv is None:
        ctx.log.warning("pivot: no code_version and none could be derived; not cached")
        return None
    outs = [o._replace(name=asset_keys.lock_name(o.key, partition)) for o in outs]
    engine = io.engine()
    job = step.job_def
    extra = inputs.extra_parts(
        engine.repo,
        assets_def,
        inputs.declared(fingerprint.pivot_function(assets_def)),
        asset_graph=job.asset_layer.asset_graph,
        resource_defs=job.resource_defs,
        run_resources=step.run_config.get("resources"),
        instance=ctx.instance,
    )
    upstream: fingerprint.UpstreamLocks = {}
    deps = fingerprint.dep_hashes(
        engine.repo,
        _upstream_pairs(ctx, step, partition),
        io.upstream_resolver(ctx.instance),
        upstream,
        extra["source"],
    )
    parts = fingerprint.build_parts(
        code_version=cv,
        code=code,
        params=fingerprint.without_keys(op_ctx.op_config, settings.exclude),
        deps=deps,
        partition=partition,
        resources=extra["resources"],
        files=extra["files"],
    )
    for why in fingerprint.missing_reasons(parts):
        ctx.log.warning(f"pivot: {why}")
    members = [
        output_group.Member(o.name, formats.expect.for_asset(assets_def, o.key, io.formats))
        for o in outs
    ]
    return _Plan(engine, parts, upstream, outs, members, io.single_flight_timeout_s)


def _selected(ctx: AssetExecutionContext) -> list[_Out]:
    """The outputs this run selects, in the op's output order made topological: Dagster
    refuses an output yielded before another output of the op it depends on."""
    selected = set(ctx.selected_asset_keys)
    by_output = ctx.assets_def.node_keys_by_output_name
    outs = [
        _Out(by_output[d.name], d.name, "")
        for d in ctx.op_def.output_defs
        if d.name in by_output and by_output[d.name] in selected
    ]
    deps = {s.key: {d.asset_key for d in s.deps} for s in ctx.assets_def.specs}
    ordered: list[_Out] = []
    while outs:  # stable: the first output none of the rest feed
        ready = next(
            (o for o in outs if not deps.get(o.key, set()) & {p.key for p in outs}), outs[0]
        )
        ordered.append(ready)
        outs.remove(ready)
    return ordered


def _untyped_outputs(ctx: AssetExecutionContext) -> str | None:
    """Why a selected output's Dagster type would refuse the hit marker, or None.

    Unannotated outputs are Any; a `dagster_type` given on `AssetOut` (or a
    typed tuple annotation) is checked against the value Dagster sees, which on
    a hit is pivot's marker, so such a step runs its body.
    """
    for o in _selected(ctx):
        t = ctx.op_def.output_def_named(o.output).dagster_type
        if not (isinstance(t, PivotType) or t.kind == DagsterTypeKind.ANY):
            return (
                f"output `{o.output}` is typed {t.display_name}, which pivot's hit marker"
                " would fail; not cached (leave multi_asset outputs untyped to cache them)"
            )
    return None


def _code_version(ctx: AssetExecutionContext, settings: Settings) -> tuple[str | None, dict]:
    """One code version for the op's outputs, all of them (selected or not)."""
    by_output = ctx.assets_def.node_keys_by_output_name
    versions = {}
    for d in ctx.op_def.output_defs:
        if d.name in by_output:
            own = None if settings.explicit else d.code_version
            versions[d.name] = own or settings.derived
    if not versions or any(v is None for v in versions.values()):
        return None, {}
    uses_derived = not settings.explicit and any(
        d.code_version is None for d in ctx.op_def.output_defs if d.name in by_output
    )
    distinct = set(versions.values())
    cv = (
        next(iter(distinct))
        if len(distinct) == 1
        else ";".join(f"{k}={v}" for k, v in sorted(versions.items()))
    )
    return cv, (dict(settings.code) if uses_derived else {})


def _upstream_pairs(ctx: AssetExecutionContext, step: Any, partition: Any) -> list[tuple]:
    """(upstream key, partition or None) for every input of the op, selected or not.

    The op's own outputs at this run's partition are left out: a subsettable
    multi_asset gets an input per internal dep (`__subset_input__<name>`), and
    naming the output this very step writes would make each result's fingerprint
    depend on the one before it. An own output at another partition (a
    self-dependency through a partition mapping) is an upstream like any other.
    """
    op_ctx = ctx.op_execution_context
    own = set(ctx.assets_def.node_keys_by_output_name.values())
    pairs: list[tuple] = []
    for input_name, up_key in sorted(ctx.assets_def.node_keys_by_input_name.items()):
        if step.has_asset_partitions_for_input(input_name):
            pks = list(op_ctx.asset_partition_keys_for_input(input_name))
        else:
            pks = [None]
        pairs += [(up_key, pk) for pk in pks if not (up_key in own and pk == partition)]
    return pairs


# --- the decision --------------------------------------------------------------------------
def _decide(
    plan: _Plan, max_age: timedelta | None, refresh: bool
) -> tuple[dict[str, Any] | None, dict[str, list[str]]]:
    """(a stored result per selected output, or None and why not, per lock name)."""
    shared = explain.missing_upstreams(plan.parts)
    if refresh:
        shared.append(explain.REFRESH_CAUSE)
    if shared:
        return None, {o.name: list(shared) for o in plan.outs}
    found, causes = output_group.find(plan.engine, plan.members, plan.parts)
    if found is None:
        if len(plan.outs) == 1:  # one output: explained as a single asset's miss
            name = plan.outs[0].name
            prev = explain.previous(plan.engine.repo, name)
            causes = {name: explain.miss_causes(name, plan.parts, prev)}
        return None, causes
    too_old = {explain.expiry(f.lock.origin, max_age) for f in found.values()} - {None}
    if too_old:
        return None, {o.name: sorted(too_old) for o in plan.outs}
    return found, {}


def _claim_or_wait(
    ctx: AssetExecutionContext, plan: _Plan, max_age: timedelta | None, refresh: bool
) -> dict[str, Any] | None:
    """Claim every selected output's flight (in name order, so two steps cannot hold
    one each); if another process held one, it was computing them: look again."""
    step = f"{ctx.run_id}/{ctx.op_execution_context._step_execution_context.step.key}"
    waited = False
    for o in sorted(plan.outs, key=lambda o: o.name):
        fp = plan.parts.digest(o.name)
        got = flights.claim(plan.engine.repo, o.name, fp, step, plan.wait_s)
        if got.timed_out:
            ctx.log.warning(
                f"pivot: another process is still computing {o.name} (fingerprint {fp}) after"
                f" {got.waited_s:.0f} s; computing it here too (single_flight_timeout_s)"
            )
        waited = waited or (got.waited and not got.timed_out)
    if not waited or refresh:
        return None
    found, _ = _decide(plan, max_age, refresh)
    if found is not None:
        _release(plan.engine, [o.name for o in plan.outs])
    return found


def _release(engine: Engine, names: Sequence[str]) -> None:
    for name in names:
        flights.release(engine.repo, name)


# --- results -------------------------------------------------------------------------------
def _hits(ctx: AssetExecutionContext, plan: _Plan, found: Mapping[str, Any]) -> Iterator[Any]:
    """Each selected output's stored result, with the user's metadata of the run that made it."""
    results = []
    for o in plan.outs:
        f = found[o.name]
        line = (
            f"pivot: cache hit for {o.name} (fingerprint {plan.parts.digest(o.name)})"
            f" {explain.hit_line(explain.source_label(f.source), f.lock.origin)}"
        )
        hit = MaterializeResult(
            asset_key=o.key,
            value=CacheHit(f.lock, plan.parts, f.source),
            data_version=DataVersion(f.lock.outputs[0].hash),
            metadata=handoff.parts_metadata(plan.parts),
        )
        results.append(returns.with_user_metadata(ctx, o.key, hit, line))
    return (r for r in results)


def _coerced(ctx: AssetExecutionContext, value: Any) -> Iterator[Any]:
    """A returned result (a tuple, one per output) as the events Dagster makes of it."""
    return validate_and_coerce_op_result_to_iterator(value, ctx, ctx.op_def.output_defs)


def _fingerprinted(
    plan: _Plan,
    events: Iterator[Any],
    causes: Mapping[str, list[str]],
    started_wall: float,
    took: float | None,
) -> Iterator[Any]:
    """The body's events, each output carrying the parts, why it ran, when the body
    started and its time (`took` for a returned result; for a generator, the time spent
    in it up to that output, without Dagster's handling of the outputs before); every
    flight still held is let go when the body is done (or fails)."""
    by_output = {o.output: o for o in plan.outs}
    by_key = {o.key: o for o in plan.outs}
    spent = 0.0
    try:
        while True:
            t0 = time.perf_counter()
            try:
                event = next(events)
            except StopIteration:
                return
            spent += time.perf_counter() - t0
            out = None
            if isinstance(event, Output):
                out = by_output.get(event.output_name)
            elif isinstance(event, MaterializeResult) and event.value is not NoValueSentinel:
                key = event.asset_key
                out = by_key.get(AssetKey.from_coercible(key)) if key is not None else None
            if out is not None:
                meta = {
                    **handoff.parts_metadata(plan.parts),
                    **handoff.miss_metadata(
                        causes.get(out.name, []), spent if took is None else took, started_wall
                    ),
                }
                event = _with_metadata(event, meta)
            yield event
    finally:
        _release(plan.engine, [o.name for o in plan.outs])


def _with_metadata(event: Any, meta: Mapping[str, Any]) -> Any:
    merged = {**(event.metadata or {}), **meta}
    if isinstance(event, Output):
        return Output(
            value=event.value,
            output_name=event.output_name,
            metadata=merged,
            data_version=event.data_version,
            tags=event.tags,
        )
    return event._replace(metadata=merged)
