"""The run's chain of remote hits, resolved at once (`pivot_dagster.prefetch`), in real Dagster.

A deployment A computes raw -> doubled -> total and pushes to moto; a fresh
project B (same instance folder layout, its own `.pivot/`) runs the same job.
B talks to moto through a proxy that stamps each request, so the tests can
tell whether a step's lookup was made by the step itself or, earlier, by the
run's prefetch. The unit tests at the end cover the table file other step
processes read.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from dagster import DagsterEventType, execute_job, materialize, reconstructable

from pivot_dagster import prefetch_table, push_new_materializations
from pivot_dagster.remote_hits import Table
from pivot_store import run_lookup
from pivot_store.config import Config, RemoteConfig
from pivot_store.lockfile import FingerprintParts, Lock, OutputRecord
from pivot_store.repo import Repo
from pivot_store.runcache import RunEntry, entry_id
from tests.dagster import graph_defs
from tests.dagster.helpers import hits, load_stored
from tests.fixtures import timed_proxy as timing
from tests.fixtures.s3 import S3Server, remote_options
from tests.fixtures.timed_proxy import TimedProxy


@pytest.fixture
def timed_proxy(s3_server: S3Server) -> Iterator[TimedProxy]:
    with timing.timed_proxy(s3_server) as proxy:
        yield proxy


@pytest.fixture
def graph_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    # Step processes re-import graph_defs by module name: make the repo importable.
    root = str(Path(__file__).resolve().parents[2])
    monkeypatch.setenv(
        "PYTHONPATH", os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")]))
    )
    monkeypatch.chdir(root)
    return tmp_path


def _project(path: Path, bucket: str, endpoint: str) -> Path:
    path.mkdir(parents=True)
    rc = RemoteConfig(url=f"s3://{bucket}/store", **remote_options(endpoint))
    Repo.open(path).save_config(Config(remotes={"s3": rc}, default_remote="s3"))
    return path


def _starts(instance, run_id: str) -> dict[str, float]:
    logs = instance.all_logs(run_id, of_type=DagsterEventType.STEP_START)
    return {e.step_key: e.timestamp for e in logs}


def _deploy_a(graph_env: Path, s3_server: S3Server, instance, monkeypatch) -> str:
    bucket = s3_server.make_bucket("prefetch")
    a = _project(graph_env / "A", bucket, s3_server.endpoint_url)
    monkeypatch.setenv("PIVOT_TEST_PROJECT", str(a))
    assert materialize(graph_defs.ASSETS, resources={"io_manager": graph_defs.io_manager()},
                       instance=instance).success  # fmt: skip
    assert not push_new_materializations(instance, Repo.open(a), "s3").failed
    return bucket


def _all_hits(instance) -> None:
    """B's in-process run of the graph: every step a remote hit, no body run."""
    res = materialize(graph_defs.ASSETS, resources={"io_manager": graph_defs.io_manager()},
                      instance=instance)  # fmt: skip
    assert res.success
    assert hits(instance, res.run_id) == {"raw": True, "doubled": True, "total": True}
    assert graph_defs.counts() == {"raw": 0, "doubled": 0, "total": 0}


def test_multiprocess_b_looks_the_chain_up_once_before_its_second_step(
    graph_env: Path, s3_server: S3Server, timed_proxy: TimedProxy, dagster_instance, monkeypatch
) -> None:
    bucket = _deploy_a(graph_env, s3_server, dagster_instance, monkeypatch)
    b = _project(graph_env / "B", bucket, timed_proxy.url)
    monkeypatch.setenv("PIVOT_TEST_PROJECT", str(b))
    with execute_job(reconstructable(graph_defs.multiprocess_job), instance=dagster_instance) as r:
        assert r.success
        run_id = r.run_id
    assert hits(dagster_instance, run_id) == {"raw": True, "doubled": True, "total": True}
    assert graph_defs.counts() == {"raw": 0, "doubled": 0, "total": 0}
    assert load_stored(b, "total") == 6
    # Each step ran in its own process; raw's looked up doubled's and total's entries
    # (their fingerprints from the hashes raw's entry names) before doubled's began...
    second = _starts(dagster_instance, run_id)["doubled"]
    for asset in ("doubled", "total"):
        asked = timed_proxy.asked(asset)
        assert asked and all(t < second for t, _, _ in asked), (asset, asked, second)
    # ...and the later processes read that table instead of asking again: one lookup
    # each, the GET of its fingerprint's head (A's push marked the bucket: no LIST).
    assert len(timed_proxy.lookups()) == 3, timed_proxy.lookups()
    assert timed_proxy.lists() == []
    assert len(list((b / ".pivot" / "tmp" / "prefetch").glob("*.json"))) == 1


def test_run_config_that_changes_a_fingerprint_is_a_miss_not_a_prefetched_hit(
    graph_env: Path, s3_server: S3Server, timed_proxy: TimedProxy, dagster_instance, monkeypatch
) -> None:
    """raw's run config (n=4) gives other values than A computed (n=3): raw and its
    downstreams run; the prefetch predicted raw with the run's config, so it found
    nothing to reuse and guessed nothing below it (a prediction from the defaults
    would have found A's raw, and fetched A's doubled and total for nothing)."""
    bucket = _deploy_a(graph_env, s3_server, dagster_instance, monkeypatch)
    b = _project(graph_env / "B", bucket, timed_proxy.url)
    monkeypatch.setenv("PIVOT_TEST_PROJECT", str(b))
    res = materialize(
        graph_defs.ASSETS,
        resources={"io_manager": graph_defs.io_manager()},
        instance=dagster_instance,
        run_config={"ops": {"raw": {"config": {"n": 4}}}},
    )
    assert res.success
    assert graph_defs.counts() == {"raw": 1, "doubled": 1, "total": 1}
    assert load_stored(b, "total") == 12
    # The prefetch asked for raw under the run's config (the fingerprint raw's step then
    # computed), never under the defaults A used; doubled and total were asked only by
    # their own steps, after they began (their fingerprints need raw's new hash).
    locks = {lk.name: lk.fingerprint for lk in Repo.open(b).iter_locks()}
    raw_lists = [r for r in timed_proxy.lookups() if "store/runs/raw/" in r[2]]
    assert raw_lists and all(f"store/runs/raw/{locks['raw']}/" in r[2] for r in raw_lists)
    starts = _starts(dagster_instance, res.run_id)
    for asset in ("doubled", "total"):
        asked = timed_proxy.asked(asset)
        assert asked and all(t >= starts[asset] for t, _, _ in asked), (asset, asked)
        assert all(f"store/runs/{asset}/{locks[asset]}/" in r[2] for r in asked)


def test_a_levels_downloads_start_before_the_next_level_is_looked_up(
    graph_env: Path, s3_server: S3Server, dagster_instance, monkeypatch
) -> None:
    """raw -> doubled -> total are three levels: when doubled's entry is looked up,
    raw's objects are already being fetched (and both before total's lookup), so the
    first steps' downloads overlap the rest of the chain's lookups."""
    from pivot_dagster import prefetch
    from pivot_dagster.remote_hits import table_for

    bucket = _deploy_a(graph_env, s3_server, dagster_instance, monkeypatch)
    b = _project(graph_env / "B", bucket, s3_server.endpoint_url)
    monkeypatch.setenv("PIVOT_TEST_PROJECT", str(b))
    seen: list[tuple[list[str], set[str]]] = []  # (names looked up, names then fetching)
    lookups = prefetch._lookups

    def recording(rem, asks):
        table = table_for(Repo.open(b).root, "s3")
        fetching = {name for name, _ in table.fetching} if table is not None else set()
        seen.append(([a.name for a in asks], fetching))
        return lookups(rem, asks)

    monkeypatch.setattr(prefetch, "_lookups", recording)
    _all_hits(dagster_instance)
    assert seen == [(["raw"], set()), (["doubled"], {"raw"}), (["total"], {"raw", "doubled"})]
    assert load_stored(b, "total") == 6


def test_in_process_the_first_step_goes_on_while_later_levels_are_looked_up(
    graph_env: Path, s3_server: S3Server, dagster_instance, monkeypatch
) -> None:
    """In one process the table is built behind the steps: raw's step takes its hit
    once its own level is looked up, without waiting for doubled's and total's
    lookups (held here until raw's step has written its lock); built before raw's
    step went on, the table would never see that lock, and the hold would time out."""
    from pivot_dagster import prefetch

    bucket = _deploy_a(graph_env, s3_server, dagster_instance, monkeypatch)
    b = _project(graph_env / "B", bucket, s3_server.endpoint_url)
    monkeypatch.setenv("PIVOT_TEST_PROJECT", str(b))
    raw_lock = Repo.open(b).lock_path("raw")
    held: list[tuple[str, bool]] = []  # (name looked up, raw's lock already written)
    lookups = prefetch._lookups

    def after_raw(rem, asks):
        if asks and asks[0].name != "raw":
            deadline = time.monotonic() + 20
            while not raw_lock.exists() and time.monotonic() < deadline:
                time.sleep(0.01)
        held.append((asks[0].name if asks else "", raw_lock.exists()))
        return lookups(rem, asks)

    monkeypatch.setattr(prefetch, "_lookups", after_raw)
    _all_hits(dagster_instance)
    assert held == [("raw", False), ("doubled", True), ("total", True)]
    assert load_stored(b, "total") == 6


def test_the_prefetch_asks_the_instance_nothing_about_upstreams_of_its_own_run(
    graph_env: Path, s3_server: S3Server, dagster_instance, monkeypatch
) -> None:
    """doubled's upstream raw and total's upstream doubled are materialized by this run
    (predicted hits): their steps will find this run's own records of them, so the
    prediction (in its own thread) queries the instance about neither."""
    bucket = _deploy_a(graph_env, s3_server, dagster_instance, monkeypatch)
    b = _project(graph_env / "B", bucket, s3_server.endpoint_url)
    monkeypatch.setenv("PIVOT_TEST_PROJECT", str(b))
    asked: list[tuple[str, str]] = []  # (thread, asset) of each materialization query
    real = dagster_instance.fetch_materializations

    def fetch(records_filter, *args, **kwargs):
        key = records_filter.asset_key.to_user_string()
        asked.append((threading.current_thread().name, key))
        return real(records_filter, *args, **kwargs)

    monkeypatch.setattr(dagster_instance, "fetch_materializations", fetch)
    _all_hits(dagster_instance)
    assert ("MainThread", "raw") in asked  # a step does ask (the counter counts)
    assert [q for q in asked if q[0] == "pivot-prefetch-build"] == [], asked


# --- the table other step processes read --------------------------------------------------
def _entry(name: str, fp_parts: FingerprintParts) -> RunEntry:
    out = OutputRecord(name="result", hash="0123456789abcdef", size=3, format="json")
    lock = Lock.build(name, fp_parts, [out])
    return RunEntry(lock, "2026-12-02T00:00:00.000000Z", entry_id(lock))


def test_table_round_trips_and_refuses_what_it_does_not_name(tmp_path: Path) -> None:
    entry = _entry("sales", FingerprintParts(code_version="1"))
    head = _entry("orders", FingerprintParts(code_version="1"))
    rows = {
        (entry.name, entry.fingerprint): run_lookup.Entries([entry]),
        # a head the build took, its folder never listed
        (head.name, head.fingerprint): run_lookup.Entries([head], lambda: [head]),
    }
    table = Table("run-1", rows)
    path = tmp_path / "t.json"
    path.write_bytes(prefetch_table.table_bytes(table, "s3"))
    back = prefetch_table.read_table(path, "run-1", "s3")
    assert back is not None
    assert {k: v.loaded for k, v in back.entries.items()} == {k: v.loaded for k, v in rows.items()}
    assert back.partial == {(head.name, head.fingerprint)}  # its step may list the rest
    # Another run's or another remote's table is not this run's.
    assert prefetch_table.read_table(path, "run-2", "s3") is None
    assert prefetch_table.read_table(path, "run-1", "other") is None
    # A row whose entry names another fingerprint (edited, or a bug) makes it unusable.
    other = _entry("sales", FingerprintParts(code_version="2"))
    bad = Table("run-1", {(entry.name, entry.fingerprint): run_lookup.Entries([other])})
    path.write_bytes(prefetch_table.table_bytes(bad, "s3"))
    assert prefetch_table.read_table(path, "run-1", "s3") is None
