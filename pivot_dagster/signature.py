"""The signature `cached` gives a body: Dagster type-checks inputs and outputs
against annotations, and under `cached` an input may arrive as a lock and an
output leaves as a hit marker, so annotations are rewritten (`T` ->
`pivot_type(T)`) while context, config and resource parameters keep theirs."""

from __future__ import annotations

import inspect
import typing
from collections.abc import Callable
from typing import Any

from pivot_dagster import range_values as ranges
from pivot_dagster import returns
from pivot_dagster.handoff import pivot_type

CONTEXT_NAMES = ("context",)


def rewrite(fn: Callable[..., Any], range_values: bool = False) -> inspect.Signature:
    """The signature Dagster sees: inputs as `pivot_type(T)` (a lock or a value), the
    return as `returns.annotation` says; context, config and resources untouched."""
    sig = inspect.signature(fn)
    try:
        hints = typing.get_type_hints(fn, include_extras=True)
    except Exception:
        hints = {}
    params = []
    for i, p in enumerate(sig.parameters.values()):
        ann = hints.get(p.name, p.annotation)
        is_ctx = i == 0 and (p.name in CONTEXT_NAMES or is_context_type(ann))
        if is_ctx or is_config_or_resource(ann) or p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            params.append(p.replace(annotation=ann))
        else:
            inner = Any if ann is inspect.Parameter.empty else ann
            params.append(p.replace(annotation=pivot_type(inner)))
    ret = hints.get("return", sig.return_annotation)
    if range_values and ret is not inspect.Signature.empty:
        ret = ranges.value_annotation(ret)  # the output is one partition's value
    ret = returns.annotation(fn, ret)
    return sig.replace(parameters=params, return_annotation=ret)


def is_context_type(ann: Any) -> bool:
    return isinstance(ann, type) and ann.__name__ in (
        "AssetExecutionContext",
        "OpExecutionContext",
    )


def is_config_or_resource(ann: Any) -> bool:
    """Config and resource parameters are Dagster's, not inputs: leave their annotations."""
    from dagster import Config, ConfigurableResource, ResourceDefinition

    if typing.get_origin(ann) is typing.Annotated:
        return True  # ResourceParam[...] and friends
    return isinstance(ann, type) and issubclass(
        ann, Config | ConfigurableResource | ResourceDefinition
    )
