"""A hit's user metadata comes from the materialization that stored its result.

Issue 17: a query per hit was most of an all-hit step's own cost. A process
taking its second hit of a run asks once for the latest materialization of the
run's assets; a later hit whose result is that latest one takes its metadata
from there, and any other hit still asks the instance (so it never carries
another result's metadata).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from dagster import AssetIn, MaterializeResult, asset, materialize

from pivot_dagster import PivotIOManager, cached, returns, stored_events
from tests.dagster.helpers import QueryCounter, hits, materializations

CALLS: list[str] = []
SEED = {"value": 1}
N = 5


@asset(key="seed")
def seed() -> int:
    return SEED["value"]


def _step(i: int) -> Any:
    def body(prev: int) -> Any:
        CALLS.append(f"s{i}")
        return MaterializeResult(value=prev * 10 + i, metadata={"note": f"s{i} from {prev}"})

    body.__name__ = f"s{i}"
    ins = {"prev": AssetIn(f"s{i - 1}" if i else "seed")}
    return asset(name=f"s{i}", ins=ins, code_version="1")(cached(body))


CHAIN = [seed, *(_step(i) for i in range(N))]


def _run(project: Path, instance: Any) -> Any:
    res = {"io_manager": PivotIOManager(project_dir=str(project))}
    r = materialize(CHAIN, resources=res, instance=instance)
    assert r.success
    return r


def _notes(instance: Any) -> dict[str, str]:
    return {
        f"s{i}": materializations(instance, f"s{i}")[-1].metadata["note"].value for i in range(N)
    }


def _expected(seed: int) -> dict[str, str]:
    """The notes a chain from `seed` records: each step names its input."""
    notes, value = {}, seed
    for i in range(N):
        notes[f"s{i}"] = f"s{i} from {value}"
        value = value * 10 + i
    return notes


def test_an_all_hit_run_asks_once_and_keeps_each_assets_metadata(
    project: Path, dagster_instance: Any, monkeypatch: Any
) -> None:
    CALLS.clear()
    SEED["value"] = 1
    _run(project, dagster_instance)
    counting = QueryCounter(dagster_instance, monkeypatch)
    r = _run(project, dagster_instance)
    assert hits(dagster_instance, r.run_id) == {"seed": False, **{f"s{i}": True for i in range(N)}}
    assert len(CALLS) == N  # the first run only
    # the first hit asks for its own asset; the second asks once for the run's assets,
    # and it and every later hit take their metadata from that one answer
    assert [k for k in counting.keys if k.startswith("s")] == ["s0"]
    assert _notes(dagster_instance) == _expected(1)


def test_a_hit_that_is_not_the_latest_result_asks_for_its_own(
    project: Path, dagster_instance: Any, monkeypatch: Any
) -> None:
    """seed 1, then seed 2, then seed 1 again: every hit of the third run is a result
    whose materialization is not the latest (seed 2's is); each carries its own note."""
    CALLS.clear()
    for value in (1, 2):
        SEED["value"] = value
        _run(project, dagster_instance)
    assert _notes(dagster_instance) == _expected(2)
    SEED["value"] = 1
    counting = QueryCounter(dagster_instance, monkeypatch)
    r = _run(project, dagster_instance)
    assert hits(dagster_instance, r.run_id) == {"seed": False, **{f"s{i}": True for i in range(N)}}
    assert len(CALLS) == 2 * N
    assert [k for k in counting.keys if k.startswith("s")] == [f"s{i}" for i in range(N)]
    assert _notes(dagster_instance) == _expected(1)


def test_the_run_answer_is_kept_for_few_runs() -> None:
    with stored_events._GUARD:
        assert len(stored_events._hits_by_run) <= stored_events._RUNS_KEPT
        assert len(stored_events._latest_by_run) <= stored_events._RUNS_KEPT


def _pivot_lines(instance: Any, run_id: str) -> dict[str, list[str]]:
    """Each step's pivot log lines in run `run_id`."""
    out: dict[str, list[str]] = {}
    for e in instance.all_logs(run_id):
        if e.user_message.startswith("pivot:") and e.step_key:
            out.setdefault(e.step_key, []).append(e.user_message)
    return out


def test_hits_in_an_instance_that_never_saw_their_runs_ask_once_and_log_once(
    project: Path, tmp_path: Path, monkeypatch: Any
) -> None:
    """The results were stored by another instance (another deployment, or a new
    DAGSTER_HOME): every hit is metadata-only. The run's one answer says none of the
    assets was ever materialized here, so only the first hit asks for its own; and
    each hit says so in its one line, not in a second event Dagster must store."""
    from dagster import DagsterInstance

    CALLS.clear()
    SEED["value"] = 1
    (tmp_path / "first").mkdir()
    (tmp_path / "second").mkdir()
    with DagsterInstance.local_temp(str(tmp_path / "first")) as first:
        _run(project, first)
    with DagsterInstance.local_temp(str(tmp_path / "second")) as second:
        counting = QueryCounter(second, monkeypatch)
        r = _run(project, second)
        assert hits(second, r.run_id) == {"seed": False, **{f"s{i}": True for i in range(N)}}
        assert len(CALLS) == N  # the first instance's run only
        assert [k for k in counting.keys if k.startswith("s")] == ["s0"]
        lines = _pivot_lines(second, r.run_id)
        for i in range(N):
            (line,) = lines[f"s{i}"]
            assert line.startswith(f"pivot: cache hit for s{i} ")
            assert line.endswith(returns.NOT_HERE)
        notes = {f"s{i}": materializations(second, f"s{i}")[-1].metadata for i in range(N)}
        assert all("note" not in m for m in notes.values())  # no other result's metadata
