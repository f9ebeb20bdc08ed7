"""Run-cache entries: immutable, written beside each other, looked up newest first."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from pivot_store import run_lookup, runcache, signing, transfer
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
    found = list(run_lookup.lookup(remote, a.name, a.fingerprint))
    assert [e.lock for e in found] == [b, a]  # newest first
    # The same result again is not rewritten: the original timestamp stays.
    assert runcache.write_entry(remote, a, t0 + timedelta(days=1)) is False
    assert list(run_lookup.lookup(remote, a.name, a.fingerprint))[1].created_at.startswith(
        "2024-01-01T"
    )


def test_lookup_miss_is_empty(remote: Remote) -> None:
    assert list(run_lookup.lookup(remote, "nothing/here", "0123456789abcdef")) == []
    assert runcache.fingerprints(remote, "nothing/here") == []


def test_publish_then_fetch_for_dagster(remote: Remote, tmp_path: Path) -> None:
    """The Dagster layer's path: push(objects, entry) elsewhere; lookup + fetch here."""
    here = ObjectStore(tmp_path / "a" / "cache")
    lock = result(here, b"payload" * 100)
    res = transfer.push(here, remote, [lock])
    assert res.ok and res.entries == [runcache.entry_rel(lock)]
    assert runcache.fingerprints(remote, lock.name) == [lock.fingerprint]
    there = ObjectStore(tmp_path / "b" / "cache")
    (entry,) = list(run_lookup.lookup(remote, lock.name, lock.fingerprint))
    got = transfer.fetch(there, remote, [entry.lock])
    assert got.ok and there.read_bytes(lock.outputs[0].hash) == b"payload" * 100


def test_entry_is_published_after_its_objects(remote: Remote, tmp_path: Path) -> None:
    """No entry ever names an object the remote lacks: a missing object means no entry."""
    objects = ObjectStore(tmp_path / "cache")
    lock = result(objects, b"will vanish")
    objects.remove(lock.outputs[0].hash)
    res = transfer.push(objects, remote, [lock])
    assert not res.ok and res.entries == []
    assert list(run_lookup.lookup(remote, lock.name, lock.fingerprint)) == []


def test_tampered_entry_is_skipped(remote: Remote, tmp_path: Path) -> None:
    objects = ObjectStore(tmp_path / "cache")
    lock = result(objects, b"x")
    runcache.write_entry(remote, lock)
    other = result(objects, b"y")
    # An entry whose file name does not match its record is ignored.
    key = remote.key(runcache.entry_rel(lock).rsplit("/", 1)[0] + "/0000000000000000.json")
    remote.put_bytes(key, runcache.entry_bytes(other))
    assert [e.lock for e in run_lookup.lookup(remote, lock.name, lock.fingerprint)] == [lock]


def test_parse_refuses_newer_schema_and_garbage() -> None:
    with pytest.raises(LockError, match="not JSON"):
        runcache.parse_entry(b"{", "x")
    with pytest.raises(LockError, match="newer"):
        runcache.parse_entry(b'{"schema_version": 9, "created_at": "t", "lock": {}}', "x")


# --- the local run-cache ------------------------------------------------------------
def test_local_entry_layout_is_the_remote_one_under_runs(tmp_path: Path) -> None:
    """docs/format.md: `.pivot/runs/<name>/<fp>/<entry>.lock` holds the lock's own YAML."""
    objects = ObjectStore(tmp_path / "cache")
    runs = tmp_path / "runs"
    lock = result(objects, b"local")
    path = runcache.local_entry_path(runs, lock)
    assert path == runs / "sales" / "daily" / lock.fingerprint / f"{runcache.entry_id(lock)}.lock"
    assert runcache.write_local(runs, lock) is True
    assert path.read_bytes() == lock.to_yaml()
    assert list(runcache.iter_local(runs, lock.name, lock.fingerprint)) == [lock]


def test_local_entries_are_written_beside_never_over(tmp_path: Path) -> None:
    objects = ObjectStore(tmp_path / "cache")
    runs = tmp_path / "runs"
    a, b = result(objects, b"first"), result(objects, b"second")
    assert runcache.write_local(runs, a) and runcache.write_local(runs, b)
    before = runcache.local_entry_path(runs, a).stat().st_mtime_ns
    assert runcache.write_local(runs, a, b"not written") is False
    assert runcache.local_entry_path(runs, a).read_bytes() == a.to_yaml()
    assert runcache.local_entry_path(runs, a).stat().st_mtime_ns == before
    os.utime(runcache.local_entry_path(runs, a), (1, 1))  # a is the older one
    assert list(runcache.iter_local(runs, a.name, a.fingerprint)) == [b, a]  # newest first
    assert sorted(runcache.iter_all_local(runs), key=runcache.entry_id) == sorted(
        [a, b], key=runcache.entry_id
    )


def test_iter_local_skips_a_record_for_another_fingerprint(tmp_path: Path) -> None:
    objects = ObjectStore(tmp_path / "cache")
    runs = tmp_path / "runs"
    lock = result(objects, b"x")
    other = Lock.build(lock.name, FingerprintParts(code_version="v2"), list(lock.outputs))
    runcache.write_local(runs, other)
    misplaced = runcache.local_entry_path(runs, lock).parent / "0000000000000000.lock"
    misplaced.parent.mkdir(parents=True)
    misplaced.write_bytes(other.to_yaml())
    assert list(runcache.iter_local(runs, lock.name, lock.fingerprint)) == []
    assert list(runcache.iter_local(runs, "never/stored", lock.fingerprint)) == []
    assert list(runcache.iter_all_local(tmp_path / "no-runs")) == []


# --- signed entries: named by their signer (issue 12 item 9) ---------------------
def test_signed_entries_are_named_by_key_and_written_beside(
    remote: Remote, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A rotated key writes beside the old entry; each key's lookup finds only its own."""
    objects = ObjectStore(tmp_path / "cache")
    lock = result(objects, b"deterministic")
    monkeypatch.delenv("PIVOT_SIGNING_KEY_FILE", raising=False)
    monkeypatch.delenv("PIVOT_SIGNING_KEY", raising=False)
    assert runcache.write_entry(remote, lock, objects=objects)  # unsigned: `<id>.json`
    plain = runcache.entry_rel(lock)
    assert plain.endswith(f"/{runcache.entry_id(lock)}.json")
    rels = {}
    for key in ("k1", "k2"):
        monkeypatch.setenv("PIVOT_SIGNING_KEY", key)
        rels[key] = runcache.entry_rel(lock)
        assert rels[key] == plain.removesuffix(".json") + f"-{signing.key_id()}.json"
        assert not runcache.entry_exists(remote, lock)  # the other key's is not "present"
        assert runcache.write_entry(remote, lock, objects=objects)
        (found,) = list(run_lookup.lookup(remote, lock.name, lock.fingerprint))
        assert found.lock == lock and found.digests is not None
    assert rels["k1"] != rels["k2"]
    names = remote.list_names(remote.key(plain.rsplit("/", 1)[0]))
    assert len([n for n in names if runcache.parse_entry_name(n)]) == 3  # unsigned, k1, k2
    assert len([n for n in names if runcache.is_head_name(n)]) == 3  # a head per key too
    monkeypatch.delenv("PIVOT_SIGNING_KEY")
    # Without a key every name is read, one result once.
    assert [e.lock for e in run_lookup.lookup(remote, lock.name, lock.fingerprint)] == [lock]


def test_format_1_signed_entry_is_still_read(
    remote: Remote, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An entry signed before key ids (`<id>.json`) is found under the same key."""
    objects = ObjectStore(tmp_path / "cache")
    lock = result(objects, b"old format")
    monkeypatch.setenv("PIVOT_SIGNING_KEY", "k1")
    old_rel = runcache.entry_rel(lock).rsplit("-", 1)[0] + ".json"
    remote.put_bytes(remote.key(old_rel), runcache.entry_bytes(lock, objects=objects))
    (found,) = list(run_lookup.lookup(remote, lock.name, lock.fingerprint))
    assert found.lock == lock and found.digests is not None
    stem = runcache.entry_rel(lock).rsplit("/", 1)[1].removesuffix(".json")
    data = runcache.entry_bytes(lock, objects=objects)
    assert runcache.parse_entry(data, "x", expected_id=stem).lock == lock


@pytest.mark.parametrize(
    "name", ["0123456789abcdef.json", "0123456789abcdef-0a1b2c3d.json", "x.json", "0123-zz.json"]
)
def test_parse_entry_name(name: str) -> None:
    parsed = runcache.parse_entry_name(name)
    if name.startswith("0123456789abcdef"):
        kid = name.removesuffix(".json").partition("-")[2] or None
        assert parsed == ("0123456789abcdef", kid)
    else:
        assert parsed is None


def test_newest_local_is_across_fingerprints(tmp_path: Path) -> None:
    """What a miss is explained against when the name has no lock: the newest result of
    any fingerprint of that name (and of no other name, a partition's folder included)."""
    objects = ObjectStore(tmp_path / "cache")
    runs = tmp_path / "runs"
    assert runcache.newest_local(runs, "sales") is None
    old = result(objects, b"old", name="sales")
    other_parts = FingerprintParts(code_version="v2")
    new = Lock.build("sales", other_parts, [OutputRecord(hash=old.outputs[0].hash, size=3)])
    part = result(objects, b"part", name="sales/@2024-01-01")
    for lock in (old, new, part):
        runcache.write_local(runs, lock)
    os.utime(runcache.local_entry_path(runs, old), (1, 1))
    assert old.fingerprint != new.fingerprint
    assert runcache.newest_local(runs, "sales") == new
    assert runcache.newest_local(runs, "sales/@2024-01-01") == part
    assert runcache.newest_local(runs, "other") is None
