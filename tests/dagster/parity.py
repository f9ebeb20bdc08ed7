"""Shared by the Dagster-parity tests (`test_dagster_parity_*.py`).

Those files port cases from Dagster's own IO-manager tests and run each one
against three setups: `FilesystemIOManager` (the reference, what a Dagster
user has today), `PivotIOManager`, and `PivotIOManager` with `cached` under
every asset. A case written once with `s.asset(...)` gets `cached` applied
only in the third setup; everything else (resources, instance) comes from
the `io_setup` fixture, so the three runs differ only in the IO manager.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from dagster import (
    DagsterInstance,
    FilesystemIOManager,
    PartitionMapping,
    asset,
    materialize,
    multi_asset,
)
from dagster._core.definitions.partitions.mapping.partition_mapping import (
    UpstreamPartitionsResult,
)

from pivot_dagster import PivotIOManager, cached

SETUPS = ("filesystem", "pivot", "cached")


@dataclass
class Setup:
    """One IO-manager setup; `asset` and `wrap` apply `cached` only where it belongs."""

    name: str
    io_manager: Any
    instance: DagsterInstance
    calls: list[str] = field(default_factory=list)

    @property
    def is_cached(self) -> bool:
        return self.name == "cached"

    @property
    def resources(self) -> dict[str, Any]:
        return {"io_manager": self.io_manager}

    def wrap(self, fn: Callable[..., Any]) -> Callable[..., Any]:
        """`cached(fn)` in the cached setup, `fn` elsewhere."""
        return cached(fn) if self.is_cached else fn

    def asset(self, fn: Callable[..., Any] | None = None, **kw: Any) -> Any:
        """`@asset(**kw)` over `wrap(fn)`: usable bare or with arguments."""
        if fn is None:
            return lambda f: asset(**kw)(self.wrap(f))
        return asset(**kw)(self.wrap(fn))

    def multi_asset(self, **kw: Any) -> Any:
        """`@multi_asset(**kw)` over `wrap(fn)`."""
        return lambda f: multi_asset(**kw)(self.wrap(f))

    def materialize(self, assets: list[Any], **kw: Any) -> Any:
        """`materialize` with this setup's IO manager and instance (raises on failure)."""
        kw.setdefault("resources", self.resources)
        return materialize(assets, instance=self.instance, **kw)


@pytest.fixture(params=SETUPS)
def io_setup(request: pytest.FixtureRequest, project: Path, tmp_path: Path) -> Iterator[Setup]:
    """Each of the three setups on a fresh project, store and ephemeral instance."""
    io: Any
    if request.param == "filesystem":
        io = FilesystemIOManager(base_dir=str(tmp_path / "fs"))
    else:
        io = PivotIOManager(project_dir=str(project))
    with DagsterInstance.ephemeral() as instance:
        yield Setup(request.param, io, instance)


def handled_outputs(result: Any) -> list[Any]:
    """The run's HANDLED_OUTPUT events (one per output the IO manager stored)."""
    return [e for e in result.all_node_events if e.is_handled_output]


def loaded_inputs(result: Any) -> list[Any]:
    return [e for e in result.all_node_events if e.is_loaded_input]


def user_metadata(mat: Any) -> dict[str, Any]:
    """A materialization's own metadata: without pivot's keys and FilesystemIOManager's path."""
    return {
        k: v.value for k, v in mat.metadata.items() if not k.startswith("pivot/") and k != "path"
    }


def differs(
    request: pytest.FixtureRequest,
    setup: Setup,
    reason: str,
    where: tuple[str, ...] = ("pivot", "cached"),
) -> None:
    """Mark this case xfail(strict) in the setups `where` pivot deliberately differs
    (docs/io-manager.md, "Where pivot differs from Dagster's IO managers")."""
    if setup.name in where:
        request.applymarker(pytest.mark.xfail(strict=True, reason=reason))


class UpstreamOnlyMapping(PartitionMapping):
    """A test partition mapping: subclasses say only which upstream partitions a
    downstream subset reads (`upstream_subset`) and how it is called."""

    label = "test mapping"

    def upstream_subset(self, downstream_subset: Any, upstream_partitions_def: Any) -> Any:
        raise NotImplementedError

    def get_upstream_mapped_partitions_result_for_partitions(
        self, downstream_subset: Any, downstream_def: Any, upstream_partitions_def: Any, *_: Any
    ) -> UpstreamPartitionsResult:
        return UpstreamPartitionsResult(
            partitions_subset=self.upstream_subset(downstream_subset, upstream_partitions_def),
            required_but_nonexistent_subset=upstream_partitions_def.empty_subset(),
        )

    def get_downstream_partitions_for_partitions(self, *args: Any, **kw: Any) -> Any:
        raise NotImplementedError

    def validate_partition_mapping(self, *args: Any, **kw: Any) -> None:
        return None

    @property
    def description(self) -> str:
        return self.label
