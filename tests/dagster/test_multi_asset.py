"""`cached` under `@multi_asset`: a fingerprint for the body, a lock per output (issue 14 C5).

Every test counts body calls: a hit never runs the body, and a miss runs it
once for all selected outputs. Bodies that return a new number each call
(`_next()`) show which run a stored output came from, so a test can tell a
hit that mixed the outputs of two runs from one that did not.
"""

from __future__ import annotations

import itertools
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import dagster as dg
import pytest
from dagster import (
    AssetExecutionContext,
    AssetOut,
    AssetSpec,
    Config,
    MaterializeResult,
    Output,
    StaticPartitionsDefinition,
    asset,
    materialize,
    multi_asset,
)

from pivot_dagster import PivotIOManager, cached
from pivot_store import runcache
from pivot_store.repo import Repo
from tests.dagster.helpers import hits, load_stored, materializations

CALLS: list[str] = []
_SEQ = itertools.count(1)


def _next() -> int:
    return next(_SEQ)


@pytest.fixture(autouse=True)
def _clear() -> None:
    CALLS.clear()


def _res(project: Path) -> dict[str, Any]:
    return {"io_manager": PivotIOManager(project_dir=str(project))}


def _run(assets: list[Any], project: Path, instance: Any, **kw: Any) -> Any:
    r = materialize(assets, resources=_res(project), instance=instance, **kw)
    assert r.success
    return r


def _meta(instance: Any, key: str) -> dict[str, Any]:
    """The newest materialization's metadata of `key`, as plain values."""
    return {k: v.value for k, v in materializations(instance, key)[-1].metadata.items()}


def _forget(project: Path, key: str) -> None:
    """Delete an output's lock and its local run-cache entries: pivot holds no result."""
    repo = Repo.open(project)
    lock = repo.read_lock(key)
    assert lock is not None
    runcache.local_entry_path(repo.runs_dir, lock).unlink()
    repo.lock_path(key).unlink()


# --- returned as a tuple ------------------------------------------------------------------
@multi_asset(outs={"left": AssetOut(), "right": AssetOut()})
@cached
def pair():
    CALLS.append("pair")
    n = _next()
    return n, -n


def test_tuple_return_hits_and_skips_the_body(project: Path, dagster_instance) -> None:
    first = _run([pair], project, dagster_instance)
    second = _run([pair], project, dagster_instance)
    assert CALLS == ["pair"]
    n = first.asset_value("left")
    assert (second.asset_value("left"), second.asset_value("right")) == (n, -n)
    assert hits(dagster_instance, first.run_id) == {"left": False, "right": False}
    assert hits(dagster_instance, second.run_id) == {"left": True, "right": True}
    assert (load_stored(project, "left"), load_stored(project, "right")) == (n, -n)


def test_hit_metadata_per_output(project: Path, dagster_instance) -> None:
    first = _run([pair], project, dagster_instance)
    computed = {k: _meta(dagster_instance, k) for k in ("left", "right")}
    _run([pair], project, dagster_instance)
    for key in ("left", "right"):
        hit = _meta(dagster_instance, key)
        assert hit["pivot/cache_hit"] is True and hit["pivot/found_in"] == "local lock"
        assert hit["pivot/computed_by"].endswith(f"run {first.run_id}")
        assert hit["pivot/saved_s"] == computed[key]["pivot/duration_s"]
        assert hit["pivot/hash"] == computed[key]["pivot/hash"]
        assert hit["pivot/fingerprint"] == computed[key]["pivot/fingerprint"]
        assert computed[key]["pivot/why"] == "no earlier result"
    # one fingerprint per output (the body's parts, digested with the output's lock name)
    assert computed["left"]["pivot/fingerprint"] != computed["right"]["pivot/fingerprint"]


# --- yielded Output(value, output_name=...) -----------------------------------------------
@multi_asset(outs={"first": AssetOut(), "second": AssetOut()})
@cached
def yielded():
    CALLS.append("yielded")
    n = _next()
    yield Output(n, output_name="first", metadata={"rows": 1})
    yield Output(str(n), output_name="second", metadata={"rows": 2})


def test_yielded_outputs_hit_with_the_users_metadata(project: Path, dagster_instance) -> None:
    first = _run([yielded], project, dagster_instance)
    second = _run([yielded], project, dagster_instance)
    assert CALLS == ["yielded"]
    assert hits(dagster_instance, second.run_id) == {"first": True, "second": True}
    n = first.asset_value("first")
    assert (second.asset_value("first"), second.asset_value("second")) == (n, str(n))
    assert [_meta(dagster_instance, k)["rows"] for k in ("first", "second")] == [1, 2]


# --- specs, MaterializeResult(asset_key=...) ----------------------------------------------
@multi_asset(
    specs=[
        AssetSpec("s_one", code_version="1").with_io_manager_key("io_manager"),
        AssetSpec("s_two", code_version="1").with_io_manager_key("io_manager"),
    ]
)
@cached
def from_specs():
    CALLS.append("specs")
    n = _next()
    yield MaterializeResult(asset_key="s_one", value=n, metadata={"which": "one"})
    yield MaterializeResult(asset_key="s_two", value=n * 10)


def test_specs_with_materialize_results_hit(project: Path, dagster_instance) -> None:
    first = _run([from_specs], project, dagster_instance)
    second = _run([from_specs], project, dagster_instance)
    assert CALLS == ["specs"]
    assert hits(dagster_instance, second.run_id) == {"s_one": True, "s_two": True}
    n = first.asset_value("s_one")
    assert (second.asset_value("s_one"), second.asset_value("s_two")) == (n, n * 10)
    assert _meta(dagster_instance, "s_one")["which"] == "one"


# --- can_subset ---------------------------------------------------------------------------
@multi_asset(
    outs={"sa": AssetOut(is_required=False), "sb": AssetOut(is_required=False)},
    can_subset=True,
)
@cached
def subsettable(context: AssetExecutionContext):
    CALLS.append(",".join(sorted(context.selected_output_names)))
    n = _next()
    for name in sorted(context.selected_output_names):
        yield Output(f"{name}{n}", output_name=name)


def test_subset_hits_what_a_full_run_stored(project: Path, dagster_instance) -> None:
    full = _run([subsettable], project, dagster_instance)
    subsets = [_run([subsettable], project, dagster_instance, selection=[k]) for k in ("sa", "sb")]
    assert CALLS == ["sa,sb"]
    assert [hits(dagster_instance, r.run_id) for r in subsets] == [{"sa": True}, {"sb": True}]
    assert subsets[0].asset_value("sa") == full.asset_value("sa")
    assert subsets[1].asset_value("sb") == full.asset_value("sb")


def test_outputs_of_two_runs_are_never_mixed(project: Path, dagster_instance) -> None:
    """`sa` stored by one subset run and `sb` by another, same fingerprint: a full run
    must not pair them (a body that is not deterministic would give an inconsistent
    pair); it computes both, together."""
    _run([subsettable], project, dagster_instance, selection=["sa"])
    _run([subsettable], project, dagster_instance, selection=["sb"])
    full = _run([subsettable], project, dagster_instance)
    assert CALLS == ["sa", "sb", "sa,sb"]
    assert hits(dagster_instance, full.run_id) == {"sa": False, "sb": False}
    a, b = full.asset_value("sa"), full.asset_value("sb")
    assert a[2:] == b[2:]  # one run's number in both
    why = _meta(dagster_instance, "sa")["pivot/why"]
    assert "no result from the same computation" in why and "`sb`" in why
    again = _run([subsettable], project, dagster_instance)
    assert hits(dagster_instance, again.run_id) == {"sa": True, "sb": True}
    assert (again.asset_value("sa"), again.asset_value("sb")) == (a, b)


# --- what makes a miss --------------------------------------------------------------------
class Scale(Config):
    factor: int = 1


@asset
@cached
def base(config: Scale) -> int:
    CALLS.append("base")
    return 10 * config.factor


def _split(left_version: str = "1") -> Any:
    @multi_asset(
        outs={"lo": AssetOut(code_version=left_version), "hi": AssetOut(code_version="1")},
        name="split",
    )
    @cached
    def split(base: int):
        CALLS.append("split")
        return base - 1, base + 1

    return split


def test_a_changed_upstream_misses_all_outputs(project: Path, dagster_instance) -> None:
    split = _split()
    _run([base, split], project, dagster_instance)
    _run([base, split], project, dagster_instance)
    cfg = {"ops": {"base": {"config": {"factor": 2}}}}
    changed = _run([base, split], project, dagster_instance, run_config=cfg)
    assert CALLS == ["base", "split", "base", "split"]
    assert hits(dagster_instance, changed.run_id) == {"base": False, "lo": False, "hi": False}
    assert (changed.asset_value("lo"), changed.asset_value("hi")) == (19, 21)
    assert "upstream `base` hash" in _meta(dagster_instance, "hi")["pivot/why"]


def test_one_outputs_code_version_misses_all(project: Path, dagster_instance) -> None:
    _run([base, _split("1")], project, dagster_instance)
    r = _run([base, _split("2")], project, dagster_instance)
    assert CALLS == ["base", "split", "split"]
    assert hits(dagster_instance, r.run_id) == {"base": True, "lo": False, "hi": False}
    assert "code version" in _meta(dagster_instance, "hi")["pivot/why"]


class Offset(Config):
    offset: int = 0


@multi_asset(outs={"c_one": AssetOut(), "c_two": AssetOut()})
@cached
def configured(config: Offset):
    CALLS.append("configured")
    return config.offset + 1, config.offset + 2


def test_a_changed_config_misses(project: Path, dagster_instance) -> None:
    cfg = {"ops": {"configured": {"config": {"offset": 5}}}}
    _run([configured], project, dagster_instance)
    r = _run([configured], project, dagster_instance, run_config=cfg)
    again = _run([configured], project, dagster_instance, run_config=cfg)
    assert CALLS == ["configured", "configured"]
    assert (r.asset_value("c_one"), r.asset_value("c_two")) == (6, 7)
    assert hits(dagster_instance, again.run_id) == {"c_one": True, "c_two": True}


# --- a partial store ----------------------------------------------------------------------
def test_one_output_missing_recomputes_all(project: Path, dagster_instance) -> None:
    first = _run([pair], project, dagster_instance)
    _forget(project, "right")
    second = _run([pair], project, dagster_instance)
    assert CALLS == ["pair", "pair"]
    assert hits(dagster_instance, second.run_id) == {"left": False, "right": False}
    n = second.asset_value("left")
    assert n != first.asset_value("left")  # the stored `left` of the first run is not reused
    assert second.asset_value("right") == -n and load_stored(project, "left") == n


def test_a_deleted_lock_hits_from_the_run_cache(project: Path, dagster_instance) -> None:
    """Only the lock gone: the run-cache entry still holds the result, as for one asset."""
    first = _run([pair], project, dagster_instance)
    Repo.open(project).lock_path("right").unlink()
    second = _run([pair], project, dagster_instance)
    assert CALLS == ["pair"]
    assert _meta(dagster_instance, "right")["pivot/found_in"] == "local run-cache"
    assert (
        second.asset_value("right") == first.asset_value("right") == load_stored(project, "right")
    )


# --- downstream of an output --------------------------------------------------------------
@asset(code_version="1")
@cached
def after_hi(hi: int) -> int:
    CALLS.append("after_hi")
    return hi * 100


def test_downstream_of_an_output(project: Path, dagster_instance) -> None:
    split = _split()
    assets = [base, split, after_hi]
    _run(assets, project, dagster_instance)
    hit = _run(assets, project, dagster_instance)
    assert CALLS == ["base", "split", "after_hi"]
    assert hits(dagster_instance, hit.run_id)["after_hi"] is True
    changed = _run(
        assets, project, dagster_instance, run_config={"ops": {"base": {"config": {"factor": 3}}}}
    )
    assert CALLS[3:] == ["base", "split", "after_hi"]
    assert hits(dagster_instance, changed.run_id)["after_hi"] is False
    assert changed.asset_value("after_hi") == 3100
    assert "upstream `hi` hash" in _meta(dagster_instance, "after_hi")["pivot/why"]


# --- partitions ---------------------------------------------------------------------------
PARTS = StaticPartitionsDefinition(["p", "q"])


@multi_asset(outs={"pa": AssetOut(), "pb": AssetOut()}, partitions_def=PARTS)
@cached
def by_partition(context: AssetExecutionContext):
    CALLS.append(context.partition_key)
    return context.partition_key * 2, context.partition_key * 3


def test_partitions_have_their_own_results(project: Path, dagster_instance) -> None:
    runs = [_run([by_partition], project, dagster_instance, partition_key=pk) for pk in "pqpq"]
    assert CALLS == ["p", "q"]
    assert [hits(dagster_instance, r.run_id) for r in runs[2:]] == [{"pa": True, "pb": True}] * 2
    assert (runs[3].asset_value("pa"), runs[3].asset_value("pb")) == ("qq", "qqq")
    assert load_stored(project, "pb", "p") == "ppp"


# --- what is not cached -------------------------------------------------------------------
@multi_asset(outs={"t_one": AssetOut(dagster_type=int), "t_two": AssetOut()})
@cached
def typed():
    CALLS.append("typed")
    return 1, 2


def test_a_typed_output_runs_the_body(project: Path, dagster_instance) -> None:
    """A hit's marker would fail `int`'s type check: the body runs, values stored as usual."""
    for _ in range(2):
        r = _run([typed], project, dagster_instance)
        assert (r.asset_value("t_one"), r.asset_value("t_two")) == (1, 2)
    assert CALLS == ["typed", "typed"]


# --- an output that reads another output of the same op -------------------------------------
@multi_asset(
    outs={"clean": AssetOut(is_required=False), "raw": AssetOut(is_required=False)},
    can_subset=True,
    internal_asset_deps={"raw": set(), "clean": {dg.AssetKey("raw")}},
)
@cached
def chain(context: AssetExecutionContext):
    CALLS.append(",".join(sorted(context.selected_output_names)))
    for name in ("raw", "clean"):  # Dagster wants an op's outputs in topological order
        if name in context.selected_output_names:
            yield Output(name.upper(), output_name=name)


def test_internal_deps_are_not_upstreams(project: Path, dagster_instance) -> None:
    """Dagster gives a subsettable op an input per internal dep; that input names an
    output of this very step, which must not enter its own fingerprint (each result
    would then depend on the one before it, and a first run could never be reused)."""
    runs = [_run([chain], project, dagster_instance) for _ in "12"]
    sub = _run([chain], project, dagster_instance, selection=["clean"])
    assert CALLS == ["clean,raw"]
    assert hits(dagster_instance, runs[1].run_id) == {"raw": True, "clean": True}
    assert hits(dagster_instance, sub.run_id) == {"clean": True}
    assert sub.asset_value("clean") == "CLEAN"


# --- control: refresh, max_age -----------------------------------------------------------
@multi_asset(outs={"m_one": AssetOut(), "m_two": AssetOut()})
@cached(max_age=timedelta(hours=1))
def aged():
    CALLS.append("aged")
    return _next(), "two"


def test_refresh_and_max_age(project: Path, dagster_instance, monkeypatch) -> None:
    _run([aged], project, dagster_instance)
    _run([aged], project, dagster_instance, tags={"pivot/refresh": "m_two"})  # one named: all
    assert CALLS == ["aged", "aged"]
    assert "refresh requested" in _meta(dagster_instance, "m_one")["pivot/why"]
    hit = _run([aged], project, dagster_instance)
    assert hits(dagster_instance, hit.run_id) == {"m_one": True, "m_two": True}
    later = time.time() + 2 * 3600
    monkeypatch.setattr(time, "time", lambda: later)
    old = _run([aged], project, dagster_instance)
    assert CALLS == ["aged", "aged", "aged"]
    assert hits(dagster_instance, old.run_id) == {"m_one": False, "m_two": False}
    assert "expired" in _meta(dagster_instance, "m_one")["pivot/why"]
