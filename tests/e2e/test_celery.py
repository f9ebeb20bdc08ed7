"""Remote-first on dagster-celery: long-lived workers that keep their `.pivot/` (issue 16).

Two Celery workers, each in its own directory with its own `.pivot/` (no
config file: the remote comes from PIVOT_REMOTE_*), share only a moto bucket
(behind a counting proxy) and a sqlite DAGSTER_HOME; the broker is our own
redis-server. Steps are routed so `report` and `shown` run on worker 1 while
their upstream `prices` runs on worker 2. Runs: all computed; all hits; after
`prices`' code version changes, exactly `prices` and its downstreams run and
the values recorded are the new ones (worker 1's stale lock is not trusted);
a new empty worker runs nothing.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.dagster.helpers import load_stored
from tests.fixtures.faulty_proxy import FaultyProxy
from tests.fixtures.parts import require
from tests.fixtures.s3 import KEY, REGION, SECRET, S3Server

pytestmark = [pytest.mark.slow, pytest.mark.timeout(400)]

DEFS = Path(__file__).with_name("celery_defs.py")
CACHED = {"raw", "prices", "report", "counts", "daily"}


class Cluster:
    def __init__(self, tmp: Path, env: dict[str, str], broker: str) -> None:
        self.tmp, self.env, self.broker = tmp, env, broker
        self.calls = tmp / "calls.log"
        self.workers: dict[str, subprocess.Popen[bytes]] = {}

    def start(self, name: str, queues: str, version: str) -> Path:
        folder = self.tmp / name
        folder.mkdir(exist_ok=True)
        log = folder.with_suffix(".log")
        exe = Path(sys.executable).with_name("celery")
        opts = "--pool solo -c 1 --without-gossip --without-mingle --without-heartbeat -l INFO"
        proc = subprocess.Popen(
            [
                str(exe),
                "-A",
                "dagster_celery.app",
                "-b",
                self.broker,
                "--result-backend",
                self.broker,
                "worker",
                "-Q",
                queues,
                "-n",
                f"{name}@%h",
                *opts.split(),
            ],
            cwd=folder,
            env={**self.env, "PIVOT_TEST_PRICES_VERSION": version},
            stdout=open(log, "wb"),  # noqa: SIM115
            stderr=subprocess.STDOUT,
        )
        self.workers[name] = proc
        deadline = time.monotonic() + 60
        while b" ready." not in log.read_bytes():
            if proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"worker {name} did not start:\n{log.read_text()[-3000:]}")
            time.sleep(0.2)
        return folder

    def stop(self, name: str) -> None:
        proc = self.workers.pop(name)
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)

    def run(self, version: str) -> set[tuple[str, str]]:
        """One run of the job (the orchestrator in its own process); the bodies that ran."""
        self.calls.write_text("")
        done = subprocess.run(
            [sys.executable, str(DEFS)],
            cwd=self.tmp,
            env={**self.env, "PIVOT_TEST_PRICES_VERSION": version},
            capture_output=True,
            timeout=180,
        )
        assert done.returncode == 0, done.stderr.decode()[-4000:]
        return {tuple(line.split()) for line in self.calls.read_text().splitlines()}  # type: ignore[misc]


@pytest.fixture
def cluster(
    tmp_path: Path, s3_server: S3Server, s3_bucket: str, redis_url: str
) -> Iterator[tuple[Cluster, FaultyProxy]]:
    require(shutil.which("celery", path=str(Path(sys.executable).parent)) is not None,
            "dagster-celery", "pip install -e '.[test]'")  # fmt: skip
    counting = FaultyProxy(s3_server.port, every=10**9).start()  # counts, never fails
    home = tmp_path / "dagster_home"
    home.mkdir()
    env = {
        **os.environ,
        "DAGSTER_HOME": str(home),
        "AWS_ACCESS_KEY_ID": KEY,
        "AWS_SECRET_ACCESS_KEY": SECRET,
        "PIVOT_REMOTE_URL": f"s3://{s3_bucket}/store",
        "PIVOT_REMOTE_ENDPOINT_URL": counting.url,
        "PIVOT_REMOTE_REGION": REGION,
        "PIVOT_TEST_CALLS": str(tmp_path / "calls.log"),
        "PIVOT_TEST_BROKER": redis_url,
    }
    c = Cluster(tmp_path, env, redis_url)
    try:
        yield c, counting
    finally:
        for name in list(c.workers):
            c.stop(name)
        counting.stop()


def _instance_hash(home: Path, key: str) -> Any:
    from dagster import AssetKey, DagsterInstance

    from pivot_dagster import handoff

    with DagsterInstance.from_config(str(home)) as inst:
        rec = inst.fetch_materializations(AssetKey(key), limit=1).records[0]
        return handoff.recorded(rec.asset_materialization.metadata)


def test_celery_workers_keep_their_disk_and_never_serve_a_stale_upstream(
    cluster: tuple[Cluster, FaultyProxy],
) -> None:
    c, counting = cluster
    w1 = c.start("w1", "w1", "1")
    w2 = c.start("w2", "w2", "1")
    ran = c.run("1")
    assert ran == {("raw", "w1"), ("prices", "w2"), ("report", "w1"), ("counts", "w2"),
                   ("daily", "w1"), ("shown", "w1")}  # fmt: skip
    assert load_stored(w1, "report") == {"total": 60}
    assert load_stored(w1, "daily", "d1") == "d1:60"

    before = len(counting.log)
    assert c.run("1") == {("shown", "w1")}  # every cached step hits
    made = counting.log[before:]
    print(f"all-hit run: {len(made)} S3 requests ({len(CACHED)} hit steps, 1 plain step):")
    print("\n".join(made))
    # Each hit step: its run-cache lookup and the pointer check of its result (the plain
    # step `shown` stores a new output and pushes it: a few more).
    assert len(made) <= 4 * (len(CACHED) + 1)

    # A deploy changes prices' code version: the workers restart, their disks stay.
    for name in ("w1", "w2"):
        c.stop(name)
    c.start("w1", "w1", "2")
    c.start("w2", "w2", "2")
    ran = c.run("2")
    assert ran == {("prices", "w2"), ("report", "w1"), ("daily", "w1"), ("shown", "w1")}
    assert load_stored(w2, "prices") == [20, 40, 60]
    assert load_stored(w1, "report") == {"total": 120}  # not the old entry
    assert load_stored(w1, "shown") == "max=60"
    assert load_stored(w1, "daily", "d1") == "d1:120"
    home = Path(c.env["DAGSTER_HOME"])
    report_lock = load_lock(w1, "report")
    assert _instance_hash(home, "report")[1] == report_lock.outputs[0].hash

    # A brand-new empty worker serving both queues: nothing cached runs.
    for name in ("w1", "w2"):
        c.stop(name)
    w3 = c.start("w3", "w1,w2", "2")
    assert c.run("2") == {("shown", "w3")}
    assert load_stored(w3, "report") == {"total": 120}
    assert load_stored(w3, "shown") == "max=60"
    assert load_stored(w3, "daily", "d1") == "d1:120"


def load_lock(project: Path, name: str) -> Any:
    from pivot_store.repo import Repo

    lock = Repo.open(project).read_lock(name)
    assert lock is not None
    return lock
