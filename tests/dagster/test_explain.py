"""Control (refresh tag, max_age, exclude) and Explain (why a miss ran, where a hit came
from): the pure functions of pivot_dagster.explain, then real runs read back from the
DagsterInstance."""

from __future__ import annotations

import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from dagster import (
    AssetExecutionContext,
    Config,
    DailyPartitionsDefinition,
    asset,
    materialize,
)

from pivot_dagster import PivotIOManager, cached, explain
from pivot_store import runcache
from pivot_store.lockfile import FingerprintParts, Lock, Origin, OutputRecord
from pivot_store.repo import Repo
from tests.dagster.helpers import materializations

H1, H2 = "ab12ab12ab12ab12", "cd34cd34cd34cd34"


# --- pure: the words ---------------------------------------------------------------------
def _parts(**kw: Any) -> FingerprintParts:
    base: dict[str, Any] = {"code_version": "src-a", "params": {}, "deps": {}}
    return FingerprintParts(**{**base, **kw})


def test_diff_names_each_changed_part() -> None:
    old = _parts(
        params={"lr": 0.1, "nested": {"k": 1}, "gone": 1},
        deps={"sales": H1},
        code={"mylib.data.fit": "1111", "mylib.model.run": "2222"},
        resources={"db": {"env": "prod"}},
        files={"export.csv": H1},
    )
    new = _parts(
        code_version="src-b",
        params={"lr": 0.2, "nested": {"k": 2}, "new": "x"},
        deps={"sales": H2},
        code={"mylib.data.fit": "3333", "mylib.model.run": "2222"},
        resources={"db": {"env": "staging"}},
        files={"export.csv": H2},
    )
    assert explain.diff_parts(old, new) == [
        "code version src-a -> src-b (changed: mylib.data.fit)",
        "config key `gone` removed (was 1)",
        "config key `lr` 0.1 -> 0.2",
        "config key `nested.k` 1 -> 2",
        "config key `new` added (= x)",
        "resource `db` config `env` prod -> staging",
        "upstream `sales` hash ab12ab12 -> cd34cd34",
        "file `export.csv` hash ab12ab12 -> cd34cd34",
    ]
    assert explain.diff_parts(new, new) == []


def _lock(name: str, parts: FingerprintParts, origin: Origin | None = None) -> Lock:
    return Lock.build(name, parts, [OutputRecord(hash=H1, size=1, format="json")], origin)


def test_miss_causes_without_and_with_an_earlier_result() -> None:
    parts = _parts(partition="2024-01-03")
    name = "daily/@2024-01-03"
    none = explain.Previous(None, None, None, siblings=False)
    assert explain.miss_causes(name, parts, none) == ["no earlier result"]
    others = explain.Previous(None, None, None, siblings=True)
    assert explain.miss_causes(name, parts, others) == ["new partition 2024-01-03"]
    same = explain.Previous(_lock(name, parts), "local lock", "objects missing: x", False)
    assert explain.miss_causes(name, parts, same) == [
        "stored result unusable here (objects missing: x)"
    ]
    older = explain.Previous(_lock(name, _parts(params={"lr": 1}, partition="2024-01-03")),
                             "local run-cache", None, False)  # fmt: skip
    assert explain.miss_causes(name, parts, older) == [
        "config key `lr` removed (was 1) (against the local run-cache)"
    ]
    gone = _parts(deps={"up": "missing"})
    assert explain.missing_upstreams(gone) == ["upstream `up` missing (no pivot result)"]


def test_refresh_tag_values() -> None:
    tag = explain.REFRESH_TAG
    assert explain.refresh_requested({tag: "true"}, "a/b")
    assert explain.refresh_requested({tag: "*"}, "a/b")
    assert explain.refresh_requested({tag: "x, a/b"}, "a/b")
    assert not explain.refresh_requested({tag: "x,a"}, "a/b")
    assert not explain.refresh_requested({}, "a/b")


def test_expiry_and_hit_words() -> None:
    now = 1_000_000.0
    hour = timedelta(hours=1)
    old = Origin(run_id="r1", deployment="prod", computed_at=now - 3 * 3600, duration_s=12.5)
    assert explain.expiry(old, hour, now) == "expired (computed 3 h ago, max_age 1 h)"
    assert explain.expiry(old, timedelta(hours=4), now) is None
    assert explain.expiry(old, None, now) is None
    assert explain.expiry(Origin(run_id="r"), hour, now) == (
        "expired (no computed_at recorded, max_age 1 h)"
    )
    assert explain.expiry(None, hour, now) == "expired (no computed_at recorded, max_age 1 h)"
    assert explain.hit_line("local lock", old, now) == (
        "from local lock (deployment prod, run r1, computed 3 h ago); saved 12.5 s"
    )
    assert explain.source_label("lock") == "local lock"
    assert explain.source_label("origin (s3://b)") == "remote run-cache origin (s3://b)"
    assert explain.duration(90) == "1.5 min" and explain.duration(0.25) == "0.25 s"


# --- real runs ------------------------------------------------------------------------------
CALLS: list[str] = []


class Cfg(Config):
    lr: float = 0.1
    workers: int = 1


@asset(code_version="1")
@cached(exclude=["workers"])
def fit(config: Cfg) -> float:
    CALLS.append("fit")
    return config.lr * 10


@asset(code_version="1")
@cached
def report(fit: float) -> str:
    CALLS.append("report")
    return f"{fit:.1f}"


def _run(project: Path, instance: Any, assets: list, **kw: Any) -> Any:
    r = materialize(
        assets,
        resources={"io_manager": PivotIOManager(project_dir=str(project))},
        instance=instance,
        **kw,
    )
    assert r.success
    return r


def _meta(instance: Any, key: str, index: int = -1) -> dict[str, Any]:
    m = materializations(instance, key)[index]
    return {k: v.value for k, v in m.metadata.items()}


def _log(instance: Any, run_id: str) -> list[str]:
    """The run log's messages (what `context.log` wrote)."""
    return [e.user_message for e in instance.all_logs(run_id) if e.user_message]


def _cfg(**fit_cfg: Any) -> dict:
    return {"ops": {"fit": {"config": fit_cfg}}}


def test_miss_reasons_in_metadata_and_hit_source(project: Path, dagster_instance) -> None:
    CALLS.clear()
    _run(project, dagster_instance, [fit, report])
    assert _meta(dagster_instance, "fit")["pivot/why"] == "no earlier result"
    _run(project, dagster_instance, [fit, report], run_config=_cfg(lr=0.2))
    assert CALLS == ["fit", "report"] * 2
    assert _meta(dagster_instance, "fit")["pivot/why"] == "config key `lr` 0.1 -> 0.2"
    run_id = dagster_instance.get_runs()[0].run_id
    assert "pivot: cache miss for fit: config key `lr` 0.1 -> 0.2" in _log(dagster_instance, run_id)
    why = _meta(dagster_instance, "report")["pivot/why"]
    assert why.startswith("upstream `fit` hash ") and " -> " in why
    # A hit names where it came from, who computed it, and the time it saved.
    hit = _run(project, dagster_instance, [fit, report], run_config=_cfg(lr=0.2))
    assert CALLS == ["fit", "report"] * 2
    first_run = dagster_instance.get_runs()[1].run_id  # newest first: the lr=0.2 run
    meta = _meta(dagster_instance, "fit")
    assert meta["pivot/cache_hit"] is True and "pivot/why" not in meta
    assert meta["pivot/found_in"] == "local lock"
    assert meta["pivot/computed_by"].endswith(f"run {first_run}")
    assert meta["pivot/saved_s"] >= 0 and "pivot/source" not in meta
    lock = Repo.open(project).read_lock("fit")
    assert lock.origin is not None and lock.origin.run_id == first_run  # kept on a hit
    assert lock.origin.duration_s == meta["pivot/saved_s"]
    logs = [m for m in _log(dagster_instance, hit.run_id) if "cache hit for fit" in m]
    assert logs and "from local lock" in logs[0] and "saved" in logs[0]
    # Back to lr=0.1: the lock holds lr=0.2, the local run-cache still has 0.1's result.
    _run(project, dagster_instance, [fit], run_config=_cfg(lr=0.1))
    assert _meta(dagster_instance, "fit")["pivot/found_in"] == "local run-cache"


def test_origin_written_on_a_miss(project: Path, dagster_instance, monkeypatch) -> None:
    monkeypatch.setenv("PIVOT_DEPLOYMENT", "staging-eu")
    before = time.time()
    r = _run(project, dagster_instance, [fit])
    origin = Repo.open(project).read_lock("fit").origin
    assert origin.deployment == "staging-eu" and origin.run_id == r.run_id
    assert before - 1 <= origin.computed_at <= time.time()
    assert 0 <= origin.duration_s < 5
    assert _meta(dagster_instance, "fit")["pivot/duration_s"] == pytest.approx(
        origin.duration_s, abs=1e-3
    )


def test_refresh_tag_recomputes_once_then_hits(project: Path, dagster_instance) -> None:
    CALLS.clear()
    _run(project, dagster_instance, [fit, report])
    _run(project, dagster_instance, [fit, report], tags={"pivot/refresh": "fit"})
    assert CALLS == ["fit", "report", "fit"]  # report's input hash is unchanged: a hit
    assert _meta(dagster_instance, "fit")["pivot/why"] == explain.REFRESH_CAUSE
    assert _meta(dagster_instance, "report")["pivot/cache_hit"] is True
    _run(project, dagster_instance, [fit, report])
    assert CALLS == ["fit", "report", "fit"]
    _run(project, dagster_instance, [fit, report], tags={"pivot/refresh": "true"})
    assert CALLS == ["fit", "report", "fit", "fit", "report"]


def test_excluded_config_key_reuses_results(project: Path, dagster_instance) -> None:
    CALLS.clear()
    _run(project, dagster_instance, [fit], run_config=_cfg(workers=1))
    _run(project, dagster_instance, [fit], run_config=_cfg(workers=8))
    assert CALLS == ["fit"]
    assert "workers" not in Repo.open(project).read_lock("fit").parts.params
    _run(project, dagster_instance, [fit], run_config=_cfg(workers=8, lr=0.3))
    assert CALLS == ["fit", "fit"]


@asset(code_version="1")
@cached(max_age=timedelta(hours=1))
def short_lived() -> int:
    CALLS.append("short_lived")
    return 1


def _age(repo: Repo, name: str, seconds: float) -> None:
    """Make `name`'s stored result `seconds` older: its lock and local run-cache entry
    rewritten with an earlier `origin.computed_at` (the fingerprint is unchanged)."""
    lock = repo.read_lock(name)
    aged = lock.replace(origin=lock.origin.replace(computed_at=lock.origin.computed_at - seconds))
    for path in repo.runs_dir.rglob("*.lock"):
        path.unlink()
    repo.write_lock(aged)
    runcache.write_local(repo.runs_dir, aged)


def test_max_age_expires_a_stored_result(project: Path, dagster_instance) -> None:
    CALLS.clear()
    _run(project, dagster_instance, [short_lived])
    _run(project, dagster_instance, [short_lived])
    assert CALLS == ["short_lived"]  # fresh: a hit
    _age(Repo.open(project), "short_lived", 3 * 3600)
    _run(project, dagster_instance, [short_lived])
    assert CALLS == ["short_lived"] * 2
    assert _meta(dagster_instance, "short_lived")["pivot/why"] == (
        "expired (computed 3 h ago, max_age 1 h)"
    )
    _run(project, dagster_instance, [short_lived])  # the new result is fresh again
    assert CALLS == ["short_lived"] * 2


def test_max_age_without_computed_at_is_a_miss(project: Path, dagster_instance) -> None:
    CALLS.clear()
    _run(project, dagster_instance, [short_lived])
    repo = Repo.open(project)
    lock = repo.read_lock("short_lived")
    repo.write_lock(lock.replace(origin=None))  # as written before origins existed
    for path in repo.runs_dir.rglob("*.lock"):
        path.unlink()
    _run(project, dagster_instance, [short_lived])
    assert CALLS == ["short_lived"] * 2
    assert _meta(dagster_instance, "short_lived")["pivot/why"] == (
        "expired (no computed_at recorded, max_age 1 h)"
    )


DAYS = DailyPartitionsDefinition(start_date="2024-01-01", end_date="2024-01-05")


@asset(partitions_def=DAYS, code_version="1")
@cached
def daily(context: AssetExecutionContext) -> str:
    return context.partition_key


def test_new_partition_is_named(project: Path, dagster_instance) -> None:
    _run(project, dagster_instance, [daily], partition_key="2024-01-02")
    assert _meta(dagster_instance, "daily")["pivot/why"] == "no earlier result"
    _run(project, dagster_instance, [daily], partition_key="2024-01-03")
    assert _meta(dagster_instance, "daily")["pivot/why"] == "new partition 2024-01-03"


def _two_deployments(tmp_path: Path) -> tuple[Path, list[Repo]]:
    from pivot_store.config import Config, RemoteConfig

    remote_dir = tmp_path / "remote"
    remote_dir.mkdir()
    repos = []
    for name in ("a", "b"):
        repo = Repo.open(tmp_path / name)
        repo.save_config(
            Config(remotes={"origin": RemoteConfig(url=str(remote_dir))}, default_remote="origin")
        )
        repos.append(repo)
    return remote_dir, repos


def _push(repo: Repo) -> None:
    from pivot_store import transfer
    from pivot_store.remote import open_remote

    remote = open_remote(repo.config, "origin")
    transfer.push(repo.objects, remote, list(repo.iter_locks())).raise_for_failures()


def test_remote_hit_names_the_deployment_and_run(
    tmp_path: Path, dagster_instance, monkeypatch
) -> None:
    """A hit from another deployment's result says which remote, deployment and run."""
    remote_dir, repos = _two_deployments(tmp_path)
    monkeypatch.setenv("PIVOT_DEPLOYMENT", "deploy-a")
    first = _run(repos[0].root, dagster_instance, [fit])
    _push(repos[0])
    monkeypatch.setenv("PIVOT_DEPLOYMENT", "deploy-b")
    CALLS.clear()
    _run(repos[1].root, dagster_instance, [fit])
    assert CALLS == []
    meta = _meta(dagster_instance, "fit")
    assert meta["pivot/found_in"] == f"remote run-cache origin ({remote_dir})"
    assert meta["pivot/computed_by"] == f"deployment deploy-a, run {first.run_id}"
    assert meta["pivot/saved_s"] == repos[0].read_lock("fit").origin.duration_s
    assert repos[1].read_lock("fit").origin.deployment == "deploy-a"


def test_an_expired_head_does_not_hide_a_fresh_result_beside_it(
    tmp_path: Path, dagster_instance
) -> None:
    """A remote's head is its fingerprint's first result, here too old for max_age; a
    newer result of the same fingerprint was pushed beside it. B takes the newer one
    (one too old is passed over, not taken as the answer)."""
    remote_dir, (a, b) = _two_deployments(tmp_path)
    CALLS.clear()
    _run(a.root, dagster_instance, [short_lived])
    _age(a, "short_lived", 3 * 3600)
    _push(a)  # the first entry: the fingerprint's head, 3 h old
    _run(a.root, dagster_instance, [short_lived])  # expired here too: computed again
    _push(a)
    assert CALLS == ["short_lived"] * 2
    folders = list((remote_dir / "runs" / "short_lived").iterdir())
    assert len(folders) == 1 and len(list(folders[0].glob("*.json"))) == 3  # 2 + the head
    _run(b.root, dagster_instance, [short_lived])
    assert CALLS == ["short_lived"] * 2  # B hit the fresh result
    assert _meta(dagster_instance, "short_lived")["pivot/found_in"] == (
        f"remote run-cache origin ({remote_dir})"
    )
    assert b.read_lock("short_lived") == a.read_lock("short_lived")


def test_pull_sensor_applies_exclude_and_max_age(tmp_path: Path, dagster_instance) -> None:
    """The pull walk computes the fingerprint as a run does: without excluded keys (a
    result computed with workers=8 matches the defaults), and too old is not pulled."""
    from dagster import Definitions

    from pivot_dagster import pull_matching

    _, (a, b) = _two_deployments(tmp_path)
    _run(a.root, dagster_instance, [fit, short_lived], run_config=_cfg(workers=8))
    _age(a, "short_lived", 2 * 3600)
    _push(a)
    defs = Definitions(
        assets=[fit, short_lived],
        resources={"io_manager": PivotIOManager(project_dir=str(b.root))},
    )
    events = pull_matching(defs, b, "origin", instance=dagster_instance)
    assert [e.asset_key.to_user_string() for e in events] == ["fit"]
    found_in = events[0].metadata["pivot/found_in"].value
    assert found_in == f"remote run-cache origin ({tmp_path / 'remote'})"
    assert b.read_lock("short_lived") is None


def test_missing_objects_are_named(project: Path, dagster_instance) -> None:
    CALLS.clear()
    _run(project, dagster_instance, [fit])
    repo = Repo.open(project)
    h = repo.read_lock("fit").outputs[0].hash
    repo.objects.remove(h)
    for path in repo.runs_dir.rglob("*.lock"):
        path.unlink()
    _run(project, dagster_instance, [fit])
    assert CALLS == ["fit", "fit"]
    assert _meta(dagster_instance, "fit")["pivot/why"] == (
        f"stored result unusable here (objects missing: {h})"
    )
