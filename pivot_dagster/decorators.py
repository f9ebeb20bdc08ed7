"""`pivot_asset`: `@asset` + `cached` in one, with the derived code version shown in Dagster."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from dagster import asset

from pivot_dagster.cached import cached


def pivot_asset(fn: Callable[..., Any] | None = None, **asset_kwargs: Any) -> Any:
    """Like `@asset(...)`; without `code_version`, the source-derived one is passed to Dagster
    so its staleness view and pivot's fingerprint agree."""
    if fn is None:
        return lambda f: pivot_asset(f, **asset_kwargs)
    wrapped = cached(fn)
    if asset_kwargs.get("code_version") is None:
        asset_kwargs["code_version"] = wrapped.__pivot_code_version__
    return asset(**asset_kwargs)(wrapped)
