"""What a `cached` asset's body returns or yields, and what a hit returns instead.

Dagster gives an asset's result many shapes: a plain value, `Output(value,
metadata=, data_version=)`, `MaterializeResult` with or without a value (and
with check results), a generator yielding any of these (or nothing, with
`output_required=False`), or `None` for a Nothing-typed asset. `cached` must
keep each one's meaning, so this module is the one place that knows them:

- `annotation`: the return annotation the wrapper shows Dagster, chosen so the
  output's Dagster type is what plain Dagster would infer (Nothing stays
  Nothing, Any stays Any so a value-less `MaterializeResult` never reaches the
  IO manager), widened to accept pivot's hit marker only where a type check
  would refuse it.
- `not_cacheable`: why a step must run its body (a Nothing output, selected
  asset checks), asked before any fingerprint is built.
- `on_miss`: the body's result with pivot's fingerprint metadata merged in
  (`Output` becomes the equivalent `MaterializeResult`; a generator is wrapped
  item by item); a result with no value stores nothing and lets the flight go.
- `on_hit`: the hit carries the user's metadata and data version of the
  materialization that stored the result, read back from the instance.
"""

from __future__ import annotations

import inspect
import threading
import typing
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from dagster import (
    AssetExecutionContext,
    AssetKey,
    DataVersion,
    MaterializeResult,
    Output,
)
from dagster._core.definitions.data_version import DATA_VERSION_TAG
from dagster._core.definitions.utils import NoValueSentinel

from pivot_dagster import stored_events
from pivot_dagster.handoff import CacheHit, pivot_type

_RESULT_TYPES = (MaterializeResult, Output)
_LOGGED: set[tuple[str, str]] = set()
_LOGGED_GUARD = threading.Lock()


# --- the annotation Dagster sees ------------------------------------------------------
def annotation(fn: Callable[..., Any], ret: Any) -> Any:
    """The wrapper's return annotation for `fn`, whose own (resolved) one is `ret`.

    Generators: Dagster ignores their annotation (Any), and so does pivot.
    `None`: Nothing, as in Dagster; such assets are never cached (see
    `not_cacheable`). Unannotated, `Any` and bare `MaterializeResult`: left
    as they are (Any already accepts the hit marker, and only a true Any lets
    Dagster skip the IO manager for a value-less `MaterializeResult`; several
    outputs need these too). A tuple of result types is a `multi_asset`'s.
    `T`, `Output[T]`, `MaterializeResult[T]`: `MaterializeResult[pivot_type(T)]`.
    """
    if inspect.isgeneratorfunction(fn):
        return inspect.Signature.empty
    if ret is None or ret is type(None):
        return None
    if ret is inspect.Signature.empty or ret is Any or ret is MaterializeResult:
        return ret
    origin = typing.get_origin(ret)
    if origin is tuple and all(_is_result_annotation(a) for a in typing.get_args(ret)):
        return ret
    if origin in _RESULT_TYPES or ret is Output:
        args = typing.get_args(ret)
        ret = args[0] if args else Any
        if ret is Any:
            return inspect.Signature.empty
    return MaterializeResult[pivot_type(ret)]


def _is_result_annotation(ann: Any) -> bool:
    return ann in _RESULT_TYPES or typing.get_origin(ann) in _RESULT_TYPES


# --- steps that run their body ---------------------------------------------------------
def not_cacheable(ctx: AssetExecutionContext) -> str | None:
    """Why this step runs its body without a lookup, or None when it may be cached.

    A Nothing-typed asset (`-> None`, an `AssetSpec` without an IO manager) has
    no value for pivot to store, so a hit could only skip a side effect pivot
    cannot see; an asset whose checks are selected must report their results,
    and only the body computes them. For a multi_asset each selected output is
    asked; one that cannot be cached makes the whole body run.
    """
    assets_def, op_def = ctx.assets_def, ctx.op_def
    keys = sorted(ctx.selected_asset_keys, key=lambda k: k.to_user_string())
    for key in keys:
        name = assets_def.get_output_name_for_asset_key(key)
        if op_def.has_output(name) and op_def.output_def_named(name).dagster_type.is_nothing:
            if len(keys) == 1:
                return "a Nothing-typed asset (-> None) is not cached; its body always runs"
            return (
                f"output `{name}` is Nothing-typed (no value to store, give its AssetSpec an"
                " IO manager to store one); the body always runs"
            )
    if ctx.selected_asset_check_keys:
        return "its asset checks are selected and only the body computes them; running the body"
    return None


def log_once(ctx: AssetExecutionContext, why: str) -> None:
    """Log `why` once per asset and reason in this process (it holds for every run)."""
    key = (
        ctx.asset_key.to_user_string() if len(ctx.assets_def.keys) == 1 else ctx.op_def.name,
        why,
    )  # a multi_asset by its op's name
    with _LOGGED_GUARD:
        if key in _LOGGED:
            return
        _LOGGED.add(key)
    ctx.log.warning(f"pivot: {key[0]}: {why}")


# --- a miss: the body's result, with the fingerprint attached ---------------------------
def on_miss(
    value: Any, meta: Mapping[str, Any] | None, release: Callable[[], None] | None = None
) -> Any:
    """The body's result as Dagster should see it, carrying `meta` (None: not cached).

    `release` lets the fingerprint's flight go when no value will reach the IO
    manager (a value-less `MaterializeResult`, a generator yielding nothing or
    failing); otherwise `handle_output` does.
    """
    if inspect.isgenerator(value):  # not cached: as it is (its Outputs may name outputs)
        return value if meta is None else _each(value, meta, release or _noop)
    if isinstance(value, Output | MaterializeResult) or meta is not None:
        value = _as_result(value, meta)
        if _has_no_value(value) and release is not None:
            release()
    return value


def _each(items: Iterator[Any], meta: Mapping[str, Any] | None, release: Callable[[], None]) -> Any:
    produced = False
    try:
        for item in items:
            if isinstance(item, Output | MaterializeResult):
                item = _as_result(item, meta)
                produced = produced or not _has_no_value(item)
            yield item
    except BaseException:
        release()
        raise
    if not produced:
        release()


def _as_result(value: Any, meta: Mapping[str, Any] | None) -> MaterializeResult:
    """`value` as a `MaterializeResult` with `meta` merged over the user's metadata.

    An `Output` becomes the `MaterializeResult` Dagster itself would turn it
    into (value, metadata, data version, tags), so `Output[T]` annotations pass.
    A value-less result gets no pivot metadata: nothing of it is stored.
    """
    if isinstance(value, Output):
        value = MaterializeResult(
            value=value.value,
            metadata=value.metadata,
            data_version=value.data_version,
            tags=value.tags,
        )
    elif not isinstance(value, MaterializeResult):
        value = MaterializeResult(value=value)
    if meta and not _has_no_value(value):
        value = value._replace(metadata={**(value.metadata or {}), **meta})
    return value


def _has_no_value(result: MaterializeResult) -> bool:
    return result.value is NoValueSentinel


def _noop() -> None:
    return None


# --- a hit: the stored result, with the user's metadata --------------------------------
#: Appended to a hit's line when the instance has no record of the run that stored it.
NOT_HERE = (
    "the run that stored this result is not in this instance: the hit carries pivot's metadata only"
)


def on_hit(ctx: AssetExecutionContext, result: MaterializeResult, line: str) -> MaterializeResult:
    """The hit `result`, with the user's metadata and data version of the run that stored it;
    logs the hit's `line` (see `with_user_metadata`)."""
    return _yielded(ctx, with_user_metadata(ctx, ctx.asset_key, result, line))


def with_user_metadata(
    ctx: AssetExecutionContext, key: AssetKey, result: MaterializeResult, line: str
) -> MaterializeResult:
    """The hit `result` for asset `key`, with the user's metadata and data version
    of the materialization that stored it; logs `line`, the hit's one log message.

    Pivot's lock holds the value, not the event: the metadata an asset
    attached (row counts, previews, its own `data_version`) lives in the
    instance's materialization of that result, found by its recorded
    fingerprint and content hash. A result made in another deployment has
    none here; the hit then carries pivot's metadata only, and its line says
    so. One line, not a second message: each is an event Dagster writes to
    its storage, which cost a cross-deployment hit ~15 ms (bench/xdeploy.py).
    """
    hit = result.value
    if not isinstance(hit, CacheHit):
        ctx.log.info(line)
        return result
    earlier = stored_events.earlier(ctx, key, hit.lock.fingerprint, hit.lock.outputs[0].hash)
    if earlier is None:
        ctx.log.info(f"{line}; {NOT_HERE}")
        return result
    ctx.log.info(line)
    user = {k: v for k, v in earlier.metadata.items() if not k.startswith("pivot/")}
    data_version = result.data_version
    recorded = (earlier.tags or {}).get(DATA_VERSION_TAG)
    if recorded and recorded != hit.lock.outputs[0].hash:
        data_version = DataVersion(recorded)  # the user's own, given on the miss
    return result._replace(metadata={**user, **(result.metadata or {})}, data_version=data_version)


def _yielded(ctx: AssetExecutionContext, result: MaterializeResult) -> Any:
    """`result`, yielded when the op has other outputs (its unselected checks'): Dagster
    reads a returned result there as a tuple, one entry per output."""
    return (r for r in [result]) if len(ctx.op_def.output_defs) > 1 else result
