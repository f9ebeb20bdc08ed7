"""The inputs of a `cached` asset beyond its code, config and pivot upstreams.

One place builds them for both callers, so a step and the pull sensor compute
the same parts: the resources' config (`resource_config`), the declared file
deps (`file_deps`), and the judge that counts non-pivot upstreams through
their Dagster data version (`upstream_versions`). A step passes its job's
asset graph, resource definitions and run config; the sensor passes the
repository's and no run config (what a run launched without config gets).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NamedTuple

from pivot_dagster import file_deps, resource_config, upstream_versions
from pivot_store.repo import Repo


class Declared(NamedTuple):
    """What `cached(...)` was told beyond the code: file deps, resource exclusions."""

    file_deps: tuple[str, ...] = ()
    exclude_resources: tuple[str, ...] = ()


def declared(fn: Any) -> Declared:
    """The `cached` wrapper's declarations (a wrapper from before they existed: none)."""
    found = getattr(fn, "__pivot_inputs__", None)
    return found if isinstance(found, Declared) else Declared()


def extra_parts(
    repo: Repo,
    assets_def: Any,
    decl: Declared,
    *,
    asset_graph: Any,
    resource_defs: Mapping[str, Any],
    run_resources: Mapping[str, Any] | None,
    instance: Any,
    step: Any = None,
) -> dict[str, Any]:
    """`fingerprint.asset_parts`' `source`, `resources` and `files` arguments.

    `step`: the `StepExecutionContext` asking (None outside a run); its record of the
    upstreams' latest materializations saves a query per upstream (`upstream_versions`).

    Raises `resource_config.ResourceConfigError` when a resource's config
    cannot be resolved (outside a run: an env var this process lacks).
    """
    required = assets_def.op.required_resource_keys
    return {
        "source": upstream_versions.for_graph(
            asset_graph,
            resource_defs,
            instance,
            upstream_versions.step_latest(step) if step is not None else None,
        ),
        "resources": resource_config.resource_parts(
            required, resource_defs, run_resources, decl.exclude_resources
        ),
        "files": file_deps.file_hashes(repo, decl.file_deps),
    }
