"""On a hit, `cached` assets do not deserialize their inputs (Deferred); on a miss they do."""

from __future__ import annotations

from pathlib import Path

import pytest
from dagster import asset, materialize

from pivot_dagster import PivotIOManager, cached
from pivot_dagster.engine import Engine
from pivot_store.repo import Repo


@asset(code_version="1")
def source() -> list:
    return [1, 2, 3]


@asset(code_version="1")
@cached
def consumer(source: list) -> int:
    return sum(source)


@asset(code_version="1")
def plain_consumer(source: list) -> int:
    return sum(source)


def test_hit_loads_no_inputs(
    project: Path, dagster_instance, monkeypatch: pytest.MonkeyPatch
) -> None:
    loads: list[str | None] = []
    real = Engine.load

    def counting(self, out, python_type=None, **kw):
        # Inputs only: an in-process hit also loads its own value for `output_for_node`.
        if kw.get("owner") == "source":
            loads.append(out.format)
        return real(self, out, python_type, **kw)

    monkeypatch.setattr(Engine, "load", counting)
    io = {"io_manager": PivotIOManager(project_dir=str(project))}
    assets = [source, consumer, plain_consumer]
    assert materialize(assets, resources=io, instance=dagster_instance).success
    assert len(loads) == 2  # both consumers read `source` on the first run
    loads.clear()
    assert materialize(
        assets, resources=io, instance=dagster_instance, selection=[consumer, plain_consumer]
    ).success
    assert len(loads) == 1  # only the plain asset read it; the cached hit did not


@asset(code_version="1")
@cached
def other_consumer(source: list) -> int:
    return len(source)


def test_a_miss_reads_each_upstream_lock_once(
    project: Path, dagster_instance, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The fingerprint's upstream locks are the ones loaded: parsed once, never re-read."""
    io = {"io_manager": PivotIOManager(project_dir=str(project))}
    assets = [source, other_consumer]
    assert materialize(assets, resources=io, instance=dagster_instance, selection=[source]).success
    reads: list[str] = []
    real = Repo.read_lock

    def counting(self, name):
        reads.append(name)
        return real(self, name)

    monkeypatch.setattr(Repo, "read_lock", counting)
    assert materialize(
        assets, resources=io, instance=dagster_instance, selection=[other_consumer]
    ).success
    assert reads.count("source") == 1
