"""Two deployments that share only an S3 remote (moto on 127.0.0.1): B reuses A's results.

Each deployment is a subprocess running `tests/e2e/xdeploy_defs.py` with its
own project dir, DAGSTER_HOME and counter folder; nothing is shared on disk.
A materializes the graph (a partitioned asset, a DataFrame, a folder written
through a Path output) and runs one push-sensor tick. Then B, with the same
code, either materializes (no body runs, values equal A's) or runs one
pull-sensor tick (every asset recorded as a runless materialization whose
data version is the content hash). A changed body in B re-runs exactly that
asset and its downstream; a tampered remote object is refused and recomputed.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from pivot_store.config import Config, RemoteConfig
from pivot_store.remote import open_remote
from pivot_store.repo import Repo
from tests.fixtures import timed_proxy as timing
from tests.fixtures.s3 import S3Server, remote_options
from tests.fixtures.timed_proxy import TimedProxy

ROOT = Path(__file__).resolve().parents[2]
ALL = {"raw", "table", "summary", "features", "report"}
pytestmark = pytest.mark.slow


@dataclass
class Deployment:
    """One deployment's private folders; `run` starts a fresh process of the shared code."""

    base: Path
    remote_config: dict[str, Any]
    variant: str = ""

    def __post_init__(self) -> None:
        for sub in ("project", "home", "counter"):
            (self.base / sub).mkdir(parents=True, exist_ok=True)
        repo = Repo.open(self.base / "project")
        repo.save_config(
            Config(remotes={"s3": RemoteConfig(**self.remote_config)}, default_remote="s3")
        )

    @property
    def project(self) -> Path:
        return self.base / "project"

    def run(self, *actions: str) -> dict[str, Any]:
        env = {
            **os.environ,
            "DAGSTER_HOME": str(self.base / "home"),
            "XDEPLOY_PROJECT": str(self.project),
            "XDEPLOY_COUNTER": str(self.base / "counter"),
            "XDEPLOY_VARIANT": self.variant,
        }
        proc = subprocess.run(
            [sys.executable, "-m", "tests.e2e.xdeploy_defs", *actions],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert proc.returncode == 0, proc.stderr[-4000:]
        found: dict[str, Any] = {}
        for line in proc.stdout.splitlines():
            if line.startswith("XDEPLOY "):
                o = json.loads(line[8:])
                name = o.pop("action")
                found[name if name not in found else name + "2"] = o  # a second tick: "push2"
        return found

    def counts(self) -> dict[str, int]:
        folder = self.base / "counter"
        return {p.name: len(p.read_text().splitlines()) for p in folder.iterdir()}


def _deploy_a(tmp: Path, cfg: dict[str, Any]) -> tuple[Deployment, dict[str, Any]]:
    a = Deployment(tmp / "A", cfg)
    out = a.run("materialize", "push", "push", "pull", "values")
    assert out["materialize"]["success"]
    assert a.counts() == {"raw": 2, "table": 1, "summary": 1, "features": 1, "report": 1}
    assert "pushed 6 result(s)" in out["push"]["skip"], out["push"]
    return a, out


@pytest.fixture(scope="module")
def deployment_a(
    tmp_path_factory: pytest.TempPathFactory, s3_server: S3Server
) -> tuple[Deployment, dict[str, Any]]:
    bucket = s3_server.make_bucket("xdeploy")
    cfg = {"url": f"s3://{bucket}/store", **remote_options(s3_server.endpoint_url)}
    return _deploy_a(tmp_path_factory.mktemp("xdeploy"), cfg)


def test_push_tick_is_idempotent_and_a_does_not_rereport_itself(deployment_a) -> None:
    _, out = deployment_a
    # The second tick of one sensor (cursor carried over) finds nothing new.
    assert out["push2"]["skip"].startswith("pivot: pushed 0 result(s)")
    assert "FAILED" not in out["push2"]["skip"]
    # A's own pull tick matches its own locks: nothing re-reported.
    assert out["pull"]["events"] == []


def test_b_materialize_runs_no_body(deployment_a, tmp_path: Path) -> None:
    a, a_out = deployment_a
    b = Deployment(tmp_path / "B", a.remote_config)
    out = b.run("materialize", "values", "events")
    assert out["materialize"]["success"]
    assert b.counts() == {}, "B ran asset bodies although A's results were on the remote"
    assert out["values"] == a_out["values"]
    assert out["values"]["report"]["features.json"] == json.dumps({"mean": 17.0})
    assert (b.project / "reports" / "README.txt").read_text() == "a folder output\n"


def test_b_pull_tick_records_everything_without_a_run(deployment_a, tmp_path: Path) -> None:
    a, a_out = deployment_a
    b = Deployment(tmp_path / "B", a.remote_config)
    out = b.run("pull", "events", "pull", "values")
    assert out["pull2"]["events"] == [], "a second tick re-reported what B already has"
    events = out["pull"]["events"]
    assert sorted((e["key"], e["partition"]) for e in events) == [
        ("features", None),
        ("raw", "p1"),
        ("raw", "p2"),
        ("report", None),
        ("summary", None),
        ("table", None),
    ]
    for e in events:
        assert e["tags"]["dagster/data_version"] == e["hash"]
        assert e["tags"]["dagster/code_version"]
        assert e["source"].startswith("s3 (s3://")
    log = out["events"]
    assert set(log) == ALL
    for key, recs in log.items():
        assert recs, f"{key} has no materialization in B's event log"
        for r in recs:
            assert r["run_id"] == "" and r["data_version"] == r["hash"]
    assert b.counts() == {}
    assert out["values"] == a_out["values"]
    # A later materialize in B: all hits, no body.
    assert b.run("materialize")["materialize"]["success"] and b.counts() == {}


def test_b_changed_code_reruns_exactly_that_asset_and_downstream(
    deployment_a, tmp_path: Path
) -> None:
    a, a_out = deployment_a
    b = Deployment(tmp_path / "B", a.remote_config, variant="features-v2")
    out = b.run("materialize", "values")
    assert out["materialize"]["success"]
    assert b.counts() == {"features": 1, "report": 1}
    assert out["values"]["features"] == {"mean": 17.0, "max": 24}
    assert out["values"]["summary"] == a_out["values"]["summary"]
    # The pull sensor of the changed B matches the unchanged upstream only.
    c = Deployment(tmp_path / "C", a.remote_config, variant="features-v2")
    pulled = {e["key"] for e in c.run("pull")["pull"]["events"]}
    assert pulled == {"raw", "table", "summary"}


def test_tampered_remote_object_is_refused_and_recomputed(
    tmp_path: Path, s3_server: S3Server, s3_bucket: str
) -> None:
    cfg = {"url": f"s3://{s3_bucket}/store", **remote_options(s3_server.endpoint_url)}
    a, a_out = _deploy_a(tmp_path, cfg)
    lock = Repo.open(a.project).read_lock("features")
    remote = open_remote(Repo.open(a.project).config, "s3")
    key = remote.object_key(lock.outputs[0].hash)
    bucket, _, path = key.partition("/")
    s3_server.client().put_object(Bucket=bucket, Key=path, Body=b'{"mean": 666.0}')
    b = Deployment(tmp_path / "B", cfg)
    out = b.run("materialize", "values")
    assert out["materialize"]["success"]
    # Only the tampered asset runs again; its (deterministic) result matches A's, so
    # the downstream report is still a hit.
    assert b.counts() == {"features": 1}
    assert out["values"] == a_out["values"]


# --- the run's chain of hits, resolved at once (issue 17) -------------------------------
def _locks(project: Path) -> dict[str, str]:
    repo = Repo.open(project)
    return {lk.name: lk.fingerprint for lk in repo.iter_locks()}


def _prefetched(project: Path) -> set[tuple[str, str]]:
    """(lock name, fingerprint) of every lookup a prefetch table of this project holds."""
    found = set()
    for p in (project / ".pivot" / "tmp" / "prefetch").glob("*.json"):
        for row in json.loads(p.read_text())["results"]:
            found.add((row["name"], row["fingerprint"]))
    return found


@pytest.fixture
def timed_proxy(s3_server: S3Server) -> Iterator[TimedProxy]:
    with timing.timed_proxy(s3_server) as proxy:
        yield proxy


def test_b_resolves_the_runs_chain_of_hits_from_its_first_step(
    deployment_a, tmp_path: Path, timed_proxy: TimedProxy
) -> None:
    a, a_out = deployment_a
    cfg = {**a.remote_config, "endpoint_url": timed_proxy.url}
    b = Deployment(tmp_path / "B", cfg)
    out = b.run("materialize", "values", "steps")
    assert out["materialize"]["success"] and b.counts() == {}
    assert out["values"] == a_out["values"]
    # The run of table -> {summary, features} -> report: its first step started the
    # lookup of every level (each level's fingerprints need the level above's hashes,
    # which only the remote entries name), none before the run began, and the later
    # steps asked the remote nothing themselves (the lookups below, one request each).
    run = next(r for r in out["steps"]["runs"] if "report" in r["starts"])
    first = run["starts"]["table"]
    for asset in ("summary", "features", "report"):
        asked = timed_proxy.asked(asset)
        assert asked, f"{asset}'s entry was never looked up"
        assert all(r[0] >= first for r in asked), (asset, asked, first)
    assert any("prefetched 4 remote hit(s) of 4 asset(s)" in n for n in run["prefetch"])
    # One lookup per asset partition, none repeated by the steps that the prefetch
    # had answered: one request each, the GET of the fingerprint's head.
    lookups = timed_proxy.lookups()
    assert len(lookups) == 6 and timed_proxy.lists() == [], lookups
    # The prefetch looked up exactly the fingerprints the steps then computed.
    assert _prefetched(b.project) == set(_locks(b.project).items())


def test_b_changed_upstream_is_not_served_from_as_entry(
    deployment_a, tmp_path: Path, timed_proxy: TimedProxy
) -> None:
    a, _ = deployment_a
    cfg = {**a.remote_config, "endpoint_url": timed_proxy.url}
    b = Deployment(tmp_path / "B", cfg, variant="features-v2")
    out = b.run("materialize", "values")
    assert out["materialize"]["success"]
    # features' code changed: it and its downstream run; nothing of A's is used for them.
    assert b.counts() == {"features": 1, "report": 1}
    assert out["values"]["features"] == {"mean": 17.0, "max": 24}
    assert json.loads(out["values"]["report"]["features.json"]) == {"mean": 17.0, "max": 24}
    a_repo = Repo.open(a.project)
    for name in ("features", "report"):
        stale = a_repo.read_lock(name).outputs[0].hash
        key = f"store/files/{stale[:2]}/{stale[2:]}"
        fetched = [r for r in timed_proxy.timed if r[1] == "GET" and key in r[2]]
        assert not fetched, f"B downloaded A's {name} result although its code changed"
    # The prefetch predicted the unchanged chain only (table, summary); it never guessed
    # at features' downstream, whose fingerprint needs a hash only features' body gives.
    predicted = {name for name, _ in _prefetched(b.project)}
    assert {"table", "summary"} <= predicted and "report" not in predicted
