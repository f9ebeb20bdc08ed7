"""`cached`: skip an asset's body when pivot already holds its result.

Dagster (1.8+) has no memoization, and nothing skips a launched step, so the
decision is made inside the step: the wrapper computes the fingerprint before
the body (see `fingerprint`), and on a hit returns
`MaterializeResult(value=CacheHit(...), data_version=...)` so the IO manager
only writes the lock and metadata. On a miss the body runs and the fingerprint
parts reach `handle_output` through the output metadata, which also works
under the multiprocess executor.

Annotations are rewritten (`T` -> `pivot_type(T)`, the return to
`MaterializeResult[pivot_type(T)]`) so Dagster's type checks accept the
markers; inputs then arrive as `Deferred` and are deserialized only on a miss,
from the upstream locks the fingerprint was computed from.

`pivot_asset` is `@asset` + `cached` in one, with the derived code version shown
in Dagster. A `@multi_asset`'s step is `multi_asset`'s; a range run under
`range_values=True` is `range_values`'.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Sequence
from datetime import timedelta
from typing import Any, NamedTuple

from dagster import (
    AssetExecutionContext,
    DagsterTypeCheckDidNotPass,
    DataVersion,
    MaterializeResult,
    asset,
)
from dagster._core.execution.plan.execute_step import do_type_check

from pivot_dagster import (
    asset_keys,
    explain,
    fingerprint,
    flights,
    formats,
    handoff,
    inputs,
    prefetch,
    returns,
    signature,
)
from pivot_dagster import multi_asset as multi
from pivot_dagster import range_values as ranges
from pivot_dagster.code_version import derive
from pivot_dagster.engine import Engine
from pivot_dagster.handoff import CacheHit, Deferred
from pivot_dagster.io_manager import PivotIOManager
from pivot_store.lockfile import FingerprintParts


class _Plan(NamedTuple):
    """What a cacheable step knows before its body: where, under which name, which parts,
    and the upstream locks those parts were computed from."""

    engine: Engine
    name: str
    parts: FingerprintParts
    upstream: fingerprint.UpstreamLocks
    expected: formats.Expected  # what the asset could produce: checks a remote hit
    wait_s: float  # how long to wait for another process computing this fingerprint


def cached(
    fn: Callable[..., Any] | None = None,
    *,
    code_version: str | None = None,
    code_deps: Sequence[Any] = (),
    max_age: timedelta | None = None,
    exclude: Sequence[str] = (),
    file_deps: Sequence[str] = (),
    exclude_resources: Sequence[str] = (),
    range_values: bool = False,
) -> Any:
    """Decorate an asset function (under `@asset`) so a fingerprint match skips its body.

    `code_version` overrides both the asset's and the one derived from the code
    the function reaches (see `code_version.derive`); `code_deps` adds roots to
    that walk: a package module counts by its version, user code is walked.
    `max_age`: a stored result computed longer ago than this is a miss (one
    with no recorded time too). `exclude`: config keys (`a.b` for nested ones)
    left out of the fingerprint; a change to them then REUSES results computed
    with other values, so name only keys that cannot change the value.
    A run tagged `pivot/refresh` (`true`, or asset keys) recomputes (see docs/fingerprint.md).
    `file_deps`: files and folders the body reads itself (relative to the pivot
    project root, or absolute); their content is part of the fingerprint.
    `exclude_resources`: resource keys (`"db"`) or fields (`"db.password"`)
    left out of the fingerprint's resource config (docs/fingerprint.md, Inputs).
    `range_values`: the body returns `{partition key: value}` for whatever partitions
    it runs for, one included, and a partition's value depends on that partition's
    inputs only; then single-run backfills are cached per partition and
    single-partition runs store `value` (see `range_values`, docs/io-manager.md).
    """
    if isinstance(file_deps, str) or isinstance(exclude_resources, str):
        raise TypeError("cached(file_deps=..., exclude_resources=...) take lists of strings")
    if fn is None:
        return lambda f: cached(
            f,
            code_version=code_version,
            code_deps=code_deps,
            max_age=max_age,
            exclude=exclude,
            file_deps=file_deps,
            exclude_resources=exclude_resources,
            range_values=range_values,
        )
    walk = None if code_version else derive(fn, code_deps)
    derived = code_version or walk.version
    code = walk.code if walk is not None else {}
    excluded = tuple(exclude)
    settings = multi.Settings(derived, code_version is not None, code, excluded, max_age)

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        ctx = AssetExecutionContext.get()
        if multi.applies(ctx):
            return multi.run(ctx, lambda up: _call(ctx, fn, args, kwargs, up), settings)
        if range_values and _is_range_run(ctx):
            plans = {
                pk: _plan(ctx, derived, code_version is not None, code, excluded, range_pk=pk)
                for pk in ctx.partition_keys
            }
            if all(p is not None for p in plans.values()):
                refresh = explain.refresh_requested(ctx.run.tags, ctx.asset_key.to_user_string())
                body = lambda up: _call(ctx, fn, args, kwargs, up)  # noqa: E731
                return ranges.run(ctx, plans, body, max_age=max_age, refresh=refresh)
        plan = _plan(ctx, derived, code_version is not None, code, excluded)
        causes: list[str] = []
        if plan is not None:
            refresh = explain.refresh_requested(ctx.run.tags, ctx.asset_key.to_user_string())
            found, causes = explain.decide(
                plan.engine, plan.name, plan.parts, plan.expected, max_age=max_age, refresh=refresh
            )
            if found is None and not fingerprint.has_missing(plan.parts):
                found = _claim_or_wait(ctx, plan, max_age, refresh)
            if found is not None:
                line = (
                    f"pivot: cache hit for {plan.name} (fingerprint {plan.parts.digest(plan.name)})"
                    f" {explain.hit_line(explain.source_label(found.source), found.lock.origin)}"
                )
                hit = MaterializeResult(
                    value=CacheHit(found.lock, plan.parts, found.source),
                    data_version=DataVersion(found.lock.outputs[0].hash),
                    metadata=handoff.parts_metadata(plan.parts),
                )
                return returns.on_hit(ctx, hit, line)
            ctx.log.info(f"pivot: cache miss for {plan.name}: {explain.joined(causes)}")
        upstream = plan.upstream if plan is not None else None
        started = time.perf_counter()
        try:
            value = _call(ctx, fn, args, kwargs, upstream)
            if range_values and _single_partition(ctx):
                value = ranges.unwrap_single(value, ctx.partition_key, _asset_name(ctx))
        except BaseException:
            if plan is not None:
                flights.release(plan.engine.repo, plan.name)
            raise
        if plan is None:
            return returns.on_miss(value, None)
        took = time.perf_counter() - started
        meta = {**handoff.parts_metadata(plan.parts), **handoff.miss_metadata(causes, took)}
        return returns.on_miss(value, meta, lambda: flights.release(plan.engine.repo, plan.name))

    wrapper.__signature__ = signature.rewrite(fn, range_values)  # type: ignore[attr-defined]
    wrapper.__pivot_code_version__ = derived  # type: ignore[attr-defined]
    wrapper.__pivot_explicit__ = code_version is not None  # type: ignore[attr-defined]
    wrapper.__pivot_code__ = code  # type: ignore[attr-defined]
    wrapper.__pivot_code_reason__ = walk.reason if walk else None  # type: ignore[attr-defined]
    wrapper.__pivot_max_age__ = max_age  # type: ignore[attr-defined]
    wrapper.__pivot_exclude__ = excluded  # type: ignore[attr-defined]
    declared = inputs.Declared(tuple(file_deps), tuple(exclude_resources))
    wrapper.__pivot_inputs__ = declared  # type: ignore[attr-defined]
    return wrapper


def pivot_asset(fn: Callable[..., Any] | None = None, **asset_kwargs: Any) -> Any:
    """Like `@asset(...)`; without `code_version`, the source-derived one is passed to Dagster
    so its staleness view and pivot's fingerprint agree."""
    if fn is None:
        return lambda f: pivot_asset(f, **asset_kwargs)
    wrapped = cached(fn, code_deps=asset_kwargs.pop("code_deps", ()))
    if asset_kwargs.get("code_version") is None:
        asset_kwargs["code_version"] = wrapped.__pivot_code_version__
    return asset(**asset_kwargs)(wrapped)


def _claim_or_wait(
    ctx: AssetExecutionContext, plan: _Plan, max_age: timedelta | None, refresh: bool
) -> Any:
    """Claim this fingerprint's flight (held until the IO manager writes the lock).

    When another process on this machine held it, that process was computing
    the same result: look again, and its result is this step's hit (unless the
    run asked for a refresh: then this step computes its own, the flight held).
    """
    fp = plan.parts.digest(plan.name)
    step = f"{ctx.run_id}/{_step_key(ctx)}"
    got = flights.claim(plan.engine.repo, plan.name, fp, step, plan.wait_s)
    if got.timed_out:
        ctx.log.warning(
            f"pivot: another process is still computing {plan.name} (fingerprint {fp}) after"
            f" {got.waited_s:.0f} s; computing it here too (single_flight_timeout_s)"
        )
        return None
    if not got.waited or refresh:
        return None
    ctx.log.info(f"pivot: waited {got.waited_s:.1f} s for another process computing {plan.name}")
    too_old = lambda lk: explain.expiry(lk.origin, max_age)  # noqa: E731
    found = plan.engine.find_result(plan.name, plan.parts, plan.expected, too_old)
    if found is not None and explain.expiry(found.lock.origin, max_age) is not None:
        found = None
    if found is not None:
        flights.release(plan.engine.repo, plan.name)
    return found


def _step_key(ctx: AssetExecutionContext) -> str:
    return ctx.op_execution_context._step_execution_context.step.key  # internal


def _call(
    ctx: AssetExecutionContext,
    fn: Callable[..., Any],
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    upstream: fingerprint.UpstreamLocks | None,
) -> Any:
    """The body, its deferred inputs read from the upstream locks the fingerprint named."""
    args = tuple(_resolve(a, upstream) for a in args)
    kwargs = {k: _resolve_input(ctx, k, v, upstream) for k, v in kwargs.items()}
    return fn(*args, **kwargs)


def _resolve(value: Any, upstream: fingerprint.UpstreamLocks | None) -> Any:
    return value.resolve(upstream) if isinstance(value, Deferred) else value


def _resolve_input(
    ctx: AssetExecutionContext, name: str, value: Any, upstream: fingerprint.UpstreamLocks | None
) -> Any:
    """A deferred input's value, type-checked against the input's own annotation.

    Dagster's input type check saw only the deferred marker (which `PivotType`
    accepts), so without this a value of the wrong type (say the dict of several
    partitions into a `str` input) would reach the body; plain Dagster fails
    the step before the body, with the same error.
    """
    if not isinstance(value, Deferred):
        return value
    resolved = value.resolve(upstream)
    step = ctx.op_execution_context._step_execution_context  # internal
    input_def = step.op_def.input_def_named(name) if step.op_def.has_input(name) else None
    dagster_type = getattr(input_def, "dagster_type", None)
    if isinstance(dagster_type, handoff.PivotType):
        check = do_type_check(step.for_type(dagster_type.inner), dagster_type.inner, resolved)
        if not check.success:
            raise DagsterTypeCheckDidNotPass(
                description=(
                    f'Type check failed for step input "{name}" - expected type'
                    f' "{dagster_type.inner.display_name}". Description: {check.description}'
                ),
                metadata=check.metadata,
                dagster_type=dagster_type.inner,
            )
    return resolved


def _single_partition(ctx: AssetExecutionContext) -> bool:
    return ctx.assets_def.partitions_def is not None and ctx.has_partition_key


def _asset_name(ctx: AssetExecutionContext) -> str:
    return ctx.asset_key.to_user_string()


def _is_range_run(ctx: AssetExecutionContext) -> bool:
    op_ctx = ctx.op_execution_context
    partitioned = ctx.assets_def.partitions_def is not None
    return partitioned and op_ctx.has_partition_key_range and not op_ctx.has_partition_key


def _plan(
    ctx: AssetExecutionContext,
    derived: str | None,
    explicit: bool,
    code: dict[str, str],
    exclude: Sequence[str] = (),
    range_pk: str | None = None,
) -> _Plan | None:
    """The step's plan, or None when this step cannot be cached. `range_pk`: the plan
    of that one partition of a range run (`cached(range_values=True)`), its upstream
    partitions mapped by the asset graph as a run of that partition alone gets them."""
    assets_def = ctx.assets_def
    why = returns.not_cacheable(ctx)
    if why is not None:
        returns.log_once(ctx, why)
        return None
    key = ctx.asset_key
    op_ctx = ctx.op_execution_context
    step = op_ctx._step_execution_context  # internal: the step's IO manager lives here
    io = getattr(step.resources, assets_def.get_io_manager_key_for_asset_key(key), None)
    if not isinstance(io, PivotIOManager):
        ctx.log.warning("pivot: the asset's IO manager is not PivotIOManager; not cached")
        return None
    own = assets_def.partitions_def is not None  # an unpartitioned asset ignores the run's
    if own and range_pk is None and _is_range_run(ctx):
        return None
    partition = op_ctx.partition_key if own and op_ctx.has_partition_key else None
    partition = range_pk if range_pk is not None else partition
    engine = io.engine()
    prefetch.warm(ctx, io)  # the run's remote hits looked up at once (a cache warmer only)
    cv, code = fingerprint.resolve_code(assets_def, key, derived, explicit, code)
    if cv is None:
        fn = fingerprint.pivot_function(assets_def)
        why = getattr(fn, "__pivot_code_reason__", None) or "no source"
        ctx.log.warning(f"pivot: no code_version and none could be derived ({why}); not cached")
        return None

    def partitions_for(input_name: str, up_key: Any) -> list[Any] | None:
        if range_pk is not None:
            return ranges.parent_partitions(job.asset_layer.asset_graph, key, up_key, range_pk)
        if step.has_asset_partitions_for_input(input_name):
            return list(op_ctx.asset_partition_keys_for_input(input_name))
        return None

    job = step.job_def
    declared = inputs.declared(fingerprint.pivot_function(assets_def))
    upstream: fingerprint.UpstreamLocks = {}
    parts = fingerprint.asset_parts(
        engine.repo,
        assets_def,
        key,
        code_version=cv,
        code=code,
        params=fingerprint.without_keys(op_ctx.op_config, exclude),
        partition=partition,
        partitions_for=partitions_for,
        resolve=io.upstream_resolver(ctx.instance),
        seen=upstream,
        **inputs.extra_parts(
            engine.repo,
            assets_def,
            declared,
            asset_graph=job.asset_layer.asset_graph,
            resource_defs=job.resource_defs,
            run_resources=step.run_config.get("resources"),
            instance=ctx.instance,
            step=step,
        ),
    )
    for why in fingerprint.missing_reasons(parts):
        ctx.log.warning(f"pivot: {why}")
    expected = formats.expect.for_asset(assets_def, key, io.formats)
    name = asset_keys.lock_name(key, partition)
    return _Plan(engine, name, parts, upstream, expected, io.single_flight_timeout_s)
