"""Partitions as UPathIOManager users expect, plus skip-on-hit per partition."""

from __future__ import annotations

from pathlib import Path

from dagster import (
    AssetIn,
    DynamicPartitionsDefinition,
    MultiPartitionKey,
    MultiPartitionsDefinition,
    StaticPartitionsDefinition,
    asset,
    materialize,
)

from pivot_dagster import PivotIOManager, cached
from tests.dagster.helpers import hits, load_stored

PARTS = StaticPartitionsDefinition(["a", "b c", "d/e"])
CALLS: list[str] = []


@asset(partitions_def=PARTS, code_version="1")
@cached
def per_part(context) -> dict:
    CALLS.append(context.partition_key)
    return {"p": context.partition_key}


@asset(code_version="1")
@cached
def combined(per_part: dict[str, dict]) -> list:
    CALLS.append("combined")
    return sorted(v["p"] for v in per_part.values())


@asset(code_version="1", ins={"per_part": AssetIn(metadata={"allow_missing_partitions": True})})
def tolerant(per_part: dict[str, dict]) -> list:
    return sorted(per_part)


def _run(project: Path, instance, assets, **kw):
    r = materialize(
        assets,
        resources={"io_manager": PivotIOManager(project_dir=str(project))},
        instance=instance,
        **kw,
    )
    assert r.success
    return r


def test_downstream_reads_all_partitions_as_dict(project: Path, dagster_instance) -> None:
    CALLS.clear()
    for pk in PARTS.get_partition_keys():
        _run(project, dagster_instance, [per_part], partition_key=pk)
    _run(project, dagster_instance, [per_part, combined], selection=[combined])
    assert load_stored(project, "combined") == ["a", "b c", "d/e"]
    assert load_stored(project, "per_part", "d/e") == {"p": "d/e"}
    r = _run(project, dagster_instance, [per_part], partition_key="d/e")
    assert hits(dagster_instance, r.run_id) == {"per_part": True}
    r = _run(project, dagster_instance, [per_part, combined], selection=[combined])
    assert hits(dagster_instance, r.run_id) == {"combined": True}
    assert CALLS == ["a", "b c", "d/e", "combined"]
    locks = sorted(p.name for p in (project / ".pivot/stages/per_part").iterdir())
    assert locks == ["@a.lock", "@b%20c.lock", "@d%2Fe.lock"]  # a `/` never makes folders


def test_allow_missing_partitions(project: Path, dagster_instance) -> None:
    _run(project, dagster_instance, [per_part], partition_key="a")
    _run(project, dagster_instance, [per_part, tolerant], selection=[tolerant])
    assert load_stored(project, "tolerant") == ["a"]
    r = materialize(
        [per_part, combined],
        resources={"io_manager": PivotIOManager(project_dir=str(project))},
        instance=dagster_instance,
        selection=[combined],
        raise_on_error=False,
    )
    assert not r.success  # without the metadata a missing partition is an error


MULTI = MultiPartitionsDefinition(
    {
        "date": StaticPartitionsDefinition(["2024-01-01", "2024-01-02"]),
        "color": StaticPartitionsDefinition(["red", "blue"]),
    }
)


@asset(partitions_def=MULTI, code_version="1")
@cached
def multi(context) -> str:
    CALLS.append(str(context.partition_key))
    return str(context.partition_key)


@asset(partitions_def=MULTI, code_version="1")
@cached
def multi_down(multi: str) -> str:
    return multi.upper()


def test_multi_partitions(project: Path, dagster_instance) -> None:
    CALLS.clear()
    key = MultiPartitionKey({"date": "2024-01-02", "color": "red"})
    _run(project, dagster_instance, [multi, multi_down], partition_key=key)
    r = _run(project, dagster_instance, [multi, multi_down], partition_key=key)
    assert hits(dagster_instance, r.run_id) == {"multi": True, "multi_down": True}
    assert CALLS == ["red|2024-01-02"]
    assert load_stored(project, "multi_down", "red|2024-01-02") == "RED|2024-01-02"


DYN = DynamicPartitionsDefinition(name="files")


@asset(partitions_def=DYN)
def dyn(context) -> bytes:
    return context.partition_key.encode()


def test_dynamic_keys_with_slashes(project: Path, dagster_instance) -> None:
    dagster_instance.add_dynamic_partitions("files", ["/etc/x", "../up", "ok.csv"])
    for pk in ("/etc/x", "../up", "ok.csv"):
        _run(project, dagster_instance, [dyn], partition_key=pk)
        assert load_stored(project, "dyn", pk) == pk.encode()
    stages = project / ".pivot/stages"
    assert all(p.resolve().is_relative_to(stages) for p in stages.rglob("*"))
