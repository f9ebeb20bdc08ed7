"""Run-cache entries: immutable, written beside each other, looked up newest first."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from pivot_store import runcache, transfer
from pivot_store.errors import LockError
from pivot_store.lockfile import FingerprintParts, Lock, OutputRecord
from pivot_store.objects import ObjectStore
from pivot_store.remote import Remote


def result(objects: ObjectStore, data: bytes, name: str = "sales/daily") -> Lock:
    added = objects.add_bytes(data)
    parts = FingerprintParts(code_version="v1", params={"n": 1}, partition="2024-01-01")
    return Lock.build(name, parts, [OutputRecord(hash=added.oid, size=added.size)])


def test_second_result_is_written_beside_the_first(remote: Remote, tmp_path: Path) -> None:
    """Contract line 2: same fingerprint, different result -> a second entry, not a replacement."""
    objects = ObjectStore(tmp_path / "cache")
    a = result(objects, b"first run")
    b = result(objects, b"second run, different bytes")
    assert a.fingerprint == b.fingerprint
    t0 = datetime(2024, 1, 1, tzinfo=UTC)
    assert runcache.write_entry(remote, a, t0) is True
    assert runcache.write_entry(remote, b, t0 + timedelta(seconds=5)) is True
    found = runcache.lookup(remote, a.name, a.fingerprint)
    assert [e.lock for e in found] == [b, a]  # newest first
    # The same result again is not rewritten: the original timestamp stays.
    assert runcache.write_entry(remote, a, t0 + timedelta(days=1)) is False
    assert runcache.lookup(remote, a.name, a.fingerprint)[1].created_at.startswith("2024-01-01T")


def test_lookup_miss_is_empty(remote: Remote) -> None:
    assert runcache.lookup(remote, "nothing/here", "0123456789abcdef") == []
    assert runcache.fingerprints(remote, "nothing/here") == []


def test_publish_then_fetch_for_dagster(remote: Remote, tmp_path: Path) -> None:
    """The Dagster layer's path: push(objects, entry) elsewhere; lookup + fetch here."""
    here = ObjectStore(tmp_path / "a" / "cache")
    lock = result(here, b"payload" * 100)
    res = transfer.push(here, remote, [lock])
    assert res.ok and res.entries == [runcache.entry_rel(lock)]
    assert runcache.fingerprints(remote, lock.name) == [lock.fingerprint]
    there = ObjectStore(tmp_path / "b" / "cache")
    (entry,) = runcache.lookup(remote, lock.name, lock.fingerprint)
    got = transfer.fetch(there, remote, [entry.lock])
    assert got.ok and there.read_bytes(lock.outputs[0].hash) == b"payload" * 100


def test_entry_is_published_after_its_objects(remote: Remote, tmp_path: Path) -> None:
    """No entry ever names an object the remote lacks: a missing object means no entry."""
    objects = ObjectStore(tmp_path / "cache")
    lock = result(objects, b"will vanish")
    objects.remove(lock.outputs[0].hash)
    res = transfer.push(objects, remote, [lock])
    assert not res.ok and res.entries == []
    assert runcache.lookup(remote, lock.name, lock.fingerprint) == []


def test_tampered_entry_is_skipped(remote: Remote, tmp_path: Path) -> None:
    objects = ObjectStore(tmp_path / "cache")
    lock = result(objects, b"x")
    runcache.write_entry(remote, lock)
    other = result(objects, b"y")
    # An entry whose file name does not match its record is ignored.
    key = remote.key(runcache.entry_rel(lock).rsplit("/", 1)[0] + "/0000000000000000.json")
    remote.put_bytes(key, runcache.entry_bytes(other))
    assert [e.lock for e in runcache.lookup(remote, lock.name, lock.fingerprint)] == [lock]


def test_parse_refuses_newer_schema_and_garbage() -> None:
    with pytest.raises(LockError, match="not JSON"):
        runcache.parse_entry(b"{", "x")
    with pytest.raises(LockError, match="newer"):
        runcache.parse_entry(b'{"schema_version": 9, "created_at": "t", "lock": {}}', "x")
