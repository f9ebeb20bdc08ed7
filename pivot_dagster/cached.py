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
in Dagster.
"""

from __future__ import annotations

import functools
import inspect
import typing
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

from dagster import AssetExecutionContext, DataVersion, MaterializeResult, asset

from pivot_dagster import asset_keys, fingerprint, flights, formats, handoff, inputs
from pivot_dagster.code_version import source_code_version
from pivot_dagster.engine import Engine
from pivot_dagster.handoff import CacheHit, Deferred, pivot_type
from pivot_dagster.io_manager import PivotIOManager
from pivot_store.lockfile import FingerprintParts

_CONTEXT_NAMES = ("context",)


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
    file_deps: Sequence[str] = (),
    exclude_resources: Sequence[str] = (),
) -> Any:
    """Decorate an asset function (under `@asset`) so a fingerprint match skips its body.

    `code_version` overrides both the asset's and the one derived from source.
    `file_deps`: files and folders the body reads itself (relative to the pivot
    project root, or absolute); their content is part of the fingerprint.
    `exclude_resources`: resource keys (`"db"`) or fields (`"db.password"`)
    left out of the fingerprint's resource config (docs/fingerprint.md, Inputs).
    """
    if isinstance(file_deps, str) or isinstance(exclude_resources, str):
        raise TypeError("cached(file_deps=..., exclude_resources=...) take lists of strings")
    if fn is None:
        return lambda f: cached(
            f,
            code_version=code_version,
            file_deps=file_deps,
            exclude_resources=exclude_resources,
        )
    derived = code_version or source_code_version(fn)

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        ctx = AssetExecutionContext.get()
        plan = _plan(ctx, derived, code_version is not None)
        if plan is not None:
            name, parts = plan.name, plan.parts
            missing = fingerprint.has_missing(parts)
            found = None if missing else plan.engine.find_result(name, parts, plan.expected)
            if found is None and not missing:
                found = _claim_or_wait(ctx, plan)
            if found is not None:
                h = found.lock.outputs[0].hash
                ctx.log.info(f"pivot: cache hit for {name} (fingerprint {parts.digest(name)})")
                return MaterializeResult(
                    value=CacheHit(found.lock, parts),
                    data_version=DataVersion(h),
                    metadata=handoff.parts_metadata(parts),
                )
        upstream = plan.upstream if plan is not None else None
        args = tuple(_resolve(a, upstream) for a in args)
        kwargs = {k: _resolve(v, upstream) for k, v in kwargs.items()}
        try:
            value = fn(*args, **kwargs)
        except BaseException:
            if plan is not None:
                flights.release(plan.engine.repo, plan.name)
            raise
        if plan is None:
            return value
        meta = handoff.parts_metadata(plan.parts)
        if isinstance(value, MaterializeResult):
            return value._replace(metadata={**(value.metadata or {}), **meta})
        return MaterializeResult(value=value, metadata=meta)

    wrapper.__signature__ = _rewrite_signature(fn)  # type: ignore[attr-defined]
    wrapper.__pivot_code_version__ = derived  # type: ignore[attr-defined]
    wrapper.__pivot_explicit__ = code_version is not None  # type: ignore[attr-defined]
    wrapper.__pivot_inputs__ = inputs.Declared(tuple(file_deps), tuple(exclude_resources))  # type: ignore[attr-defined]
    return wrapper


def pivot_asset(fn: Callable[..., Any] | None = None, **asset_kwargs: Any) -> Any:
    """Like `@asset(...)`; without `code_version`, the source-derived one is passed to Dagster
    so its staleness view and pivot's fingerprint agree."""
    if fn is None:
        return lambda f: pivot_asset(f, **asset_kwargs)
    wrapped = cached(fn)
    if asset_kwargs.get("code_version") is None:
        asset_kwargs["code_version"] = wrapped.__pivot_code_version__
    return asset(**asset_kwargs)(wrapped)


def _claim_or_wait(ctx: AssetExecutionContext, plan: _Plan) -> Any:
    """Claim this fingerprint's flight (held until the IO manager writes the lock).

    When another process on this machine held it, that process was computing
    the same result: look again, and its result is this step's hit.
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
    if not got.waited:
        return None
    ctx.log.info(f"pivot: waited {got.waited_s:.1f} s for another process computing {plan.name}")
    found = plan.engine.find_result(plan.name, plan.parts, plan.expected)
    if found is not None:
        flights.release(plan.engine.repo, plan.name)
    return found


def _step_key(ctx: AssetExecutionContext) -> str:
    return ctx.op_execution_context._step_execution_context.step.key  # internal


def _resolve(value: Any, upstream: fingerprint.UpstreamLocks | None) -> Any:
    return value.resolve(upstream) if isinstance(value, Deferred) else value


def _rewrite_signature(fn: Callable[..., Any]) -> inspect.Signature:
    sig = inspect.signature(fn)
    try:
        hints = typing.get_type_hints(fn, include_extras=True)
    except Exception:
        hints = {}
    params = []
    for i, p in enumerate(sig.parameters.values()):
        ann = hints.get(p.name, p.annotation)
        is_ctx = i == 0 and (p.name in _CONTEXT_NAMES or _is_context_type(ann))
        if is_ctx or _is_config_or_resource(ann) or p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            params.append(p.replace(annotation=ann))
        else:
            inner = Any if ann is inspect.Parameter.empty else ann
            params.append(p.replace(annotation=pivot_type(inner)))
    ret = hints.get("return", sig.return_annotation)
    if typing.get_origin(ret) is MaterializeResult:
        args = typing.get_args(ret)
        ret = args[0] if args else Any
    elif ret is MaterializeResult or ret is inspect.Signature.empty:
        ret = Any
    return sig.replace(parameters=params, return_annotation=MaterializeResult[pivot_type(ret)])


def _is_context_type(ann: Any) -> bool:
    return isinstance(ann, type) and ann.__name__ in (
        "AssetExecutionContext",
        "OpExecutionContext",
    )


def _is_config_or_resource(ann: Any) -> bool:
    """Config and resource parameters are Dagster's, not inputs: leave their annotations."""
    from dagster import Config, ConfigurableResource, ResourceDefinition

    if typing.get_origin(ann) is typing.Annotated:
        return True  # ResourceParam[...] and friends
    return isinstance(ann, type) and issubclass(
        ann, Config | ConfigurableResource | ResourceDefinition
    )


def _plan(ctx: AssetExecutionContext, derived: str | None, explicit: bool) -> _Plan | None:
    """The step's plan, or None when this step cannot be cached."""
    assets_def = ctx.assets_def
    if len(assets_def.keys) != 1:
        ctx.log.warning("pivot: `cached` supports single-asset definitions; running the body")
        return None
    key = ctx.asset_key
    op_ctx = ctx.op_execution_context
    step = op_ctx._step_execution_context  # internal: the step's IO manager lives here
    io = getattr(step.resources, assets_def.get_io_manager_key_for_asset_key(key), None)
    if not isinstance(io, PivotIOManager):
        ctx.log.warning("pivot: the asset's IO manager is not PivotIOManager; not cached")
        return None
    if op_ctx.has_partition_key_range and not op_ctx.has_partition_key:
        return None
    partition = op_ctx.partition_key if op_ctx.has_partition_key else None
    engine = io.engine()
    cv = fingerprint.resolve_code_version(assets_def, key, derived, explicit)
    if cv is None:
        ctx.log.warning("pivot: no code_version and no source to derive one; not cached")
        return None

    def partitions_for(input_name: str, up_key: Any) -> list[Any] | None:
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
        params=op_ctx.op_config,
        partition=partition,
        partitions_for=partitions_for,
        fallback=io.upstream_fallback(ctx.instance),
        seen=upstream,
        **inputs.extra_parts(
            engine.repo,
            assets_def,
            declared,
            asset_graph=job.asset_layer.asset_graph,
            resource_defs=job.resource_defs,
            run_resources=step.run_config.get("resources"),
            instance=ctx.instance,
        ),
    )
    for why in fingerprint.missing_reasons(parts):
        ctx.log.warning(f"pivot: {why}")
    expected = formats.expect.for_asset(assets_def, key, io.formats)
    name = asset_keys.lock_name(key, partition)
    return _Plan(engine, name, parts, upstream, expected, io.single_flight_timeout_s)
