"""Signed run-cache entries across two deployments (a moto S3 remote).

With PIVOT_SIGNING_KEY set, B reuses A's results only when the entry is signed
with the same key and every fetched object matches its signed SHA-256.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import boto3
import pytest
from dagster import asset, materialize

from pivot_dagster import PivotIOManager, cached
from pivot_store import runcache, signing, transfer
from pivot_store.config import Config, RemoteConfig
from pivot_store.hashing import canonical_json
from pivot_store.remote import open_remote
from pivot_store.repo import Repo
from tests.dagster.helpers import hits

CALLS: list[str] = []


@asset(code_version="1")
@cached
def numbers() -> list:
    CALLS.append("numbers")
    return [1, 2, 3]


@asset(code_version="1")
@cached
def total(numbers: list) -> int:
    CALLS.append("total")
    return sum(numbers)


def _project(root: Path, remote: dict[str, Any]) -> Repo:
    repo = Repo.open(root)
    repo.save_config(Config(remotes={"origin": RemoteConfig(**remote)}, default_remote="origin"))
    return repo


@pytest.fixture
def two(tmp_path: Path, s3_remote_config: dict[str, Any]) -> tuple[Repo, Repo, dict]:
    CALLS.clear()
    return (
        _project(tmp_path / "a", s3_remote_config),
        _project(tmp_path / "b", s3_remote_config),
        s3_remote_config,
    )


def _materialize(repo: Repo, instance: Any) -> Any:
    io = PivotIOManager(project_dir=str(repo.root))
    result = materialize([numbers, total], resources={"io_manager": io}, instance=instance)
    assert result.success
    return result


def _push(repo: Repo) -> None:
    remote = open_remote(repo.config, "origin")
    transfer.push(repo.objects, remote, list(repo.iter_locks())).raise_for_failures()


def _entries(cfg: dict[str, Any]) -> dict[str, dict]:
    s3 = boto3.client(
        "s3",
        endpoint_url=cfg["endpoint_url"],
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        region_name="us-east-1",
    )
    bucket, _, prefix = cfg["url"].removeprefix("s3://").partition("/")
    listed = s3.list_objects_v2(Bucket=bucket, Prefix=f"{prefix}/runs/".lstrip("/"))
    return {
        o["Key"]: json.loads(s3.get_object(Bucket=bucket, Key=o["Key"])["Body"].read())
        for o in listed.get("Contents", [])
    }


def test_signed_entries_are_reused_with_the_same_key(two, dagster_instance, monkeypatch) -> None:
    a, b, cfg = two
    monkeypatch.setenv(signing.ENV_KEY, "team-secret")
    _materialize(a, dagster_instance)
    _push(a)
    docs = list(_entries(cfg).values())
    assert docs and all(signing.SIGNATURE in d and signing.DIGESTS in d for d in docs)
    CALLS.clear()
    r = _materialize(b, dagster_instance)
    assert CALLS == []
    assert hits(dagster_instance, r.run_id) == {"numbers": True, "total": True}


def test_unsigned_or_foreign_entries_are_refused(two, dagster_instance, monkeypatch) -> None:
    a, b, _ = two
    monkeypatch.delenv(signing.ENV_KEY, raising=False)
    _materialize(a, dagster_instance)
    _push(a)  # unsigned: an attacker without the key could have written these
    monkeypatch.setenv(signing.ENV_KEY, "team-secret")
    CALLS.clear()
    _materialize(b, dagster_instance)
    assert sorted(CALLS) == ["numbers", "total"]


def test_object_that_does_not_match_its_signed_digest_is_refused(
    two, dagster_instance, monkeypatch
) -> None:
    a, b, _ = two
    monkeypatch.setenv(signing.ENV_KEY, "team-secret")
    _materialize(a, dagster_instance)
    lock = a.read_lock("numbers")
    remote = open_remote(a.config, "origin")
    # An entry signed with the key but naming a digest the object does not have:
    # what a replaced object (same xxh64 name, other bytes) looks like to B.
    transfer.push(a.objects, remote, [lock], run_cache=False).raise_for_failures()
    doc = json.loads(runcache.entry_bytes(lock, objects=a.objects))
    doc.pop(signing.SIGNATURE)
    doc = signing.sign(doc, b"team-secret", {lock.outputs[0].hash: "0" * 64})
    remote.put_bytes(remote.key(runcache.entry_rel(lock)), canonical_json(doc))
    CALLS.clear()
    result = materialize(
        [numbers],
        resources={"io_manager": PivotIOManager(project_dir=str(b.root))},
        instance=dagster_instance,
    )
    assert result.success and CALLS == ["numbers"]  # recomputed, not loaded
    assert hits(dagster_instance, result.run_id) == {"numbers": False}
