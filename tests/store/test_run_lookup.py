"""Run-cache lookups in one request: heads and the marker, on real moto S3.

Requests are counted by a real HTTP proxy in front of moto (`FaultyProxy` with
no faults), so what is counted is what went over the wire. Old writers and
attackers are played by raw writes (`RawRemote`) following docs/format.md.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from pivot_store import run_lookup, runcache, signing, transfer
from pivot_store.lockfile import Lock
from pivot_store.objects import ObjectStore
from tests.fixtures.faulty_proxy import FaultyProxy
from tests.fixtures.raw_remote import RawRemote
from tests.fixtures.run_cache import NAME, open_remote, result


def _requests(proxy: FaultyProxy, fn) -> tuple[object, list[str]]:
    start = len(proxy.log)
    out = fn()
    return out, proxy.log[start:]


def _entry_rel(lock: Lock) -> str:
    return f"runs/{lock.name}/{lock.fingerprint}/{runcache.entry_id(lock)}.json"


def _head_rel(lock: Lock) -> str:
    return f"runs/{lock.name}/{lock.fingerprint}/head.json"


def test_a_pushed_bucket_answers_a_hit_and_a_miss_in_one_get_each(
    raw: RawRemote, proxy: FaultyProxy, tmp_path: Path
) -> None:
    objects = ObjectStore(tmp_path / "cache")
    lock = result(objects, b"result")
    rem = open_remote(raw)
    assert transfer.push(objects, rem, [lock]).ok
    assert raw.get("runcache.json") == b'{"heads":1}'  # a fresh bucket is marked by its first push
    assert raw.get(_head_rel(lock)) == raw.get(_entry_rel(lock))
    rem = open_remote(raw)
    run_lookup.marked(rem)  # once per process and remote
    found, log = _requests(
        proxy, lambda: next(iter(run_lookup.lookup(rem, NAME, lock.fingerprint)))
    )
    assert found.lock == lock  # type: ignore[attr-defined]
    assert log == [f"GET /{raw.bucket}/store/{_head_rel(lock)}"]
    missing, log = _requests(proxy, lambda: list(run_lookup.lookup(rem, NAME, "e" * 16)))
    assert missing == []
    assert log == [f"GET /{raw.bucket}/store/runs/{NAME}/{'e' * 16}/head.json"]


def test_a_bucket_older_writers_filled_is_still_listed(
    raw: RawRemote, proxy: FaultyProxy, tmp_path: Path
) -> None:
    """Entries without heads (an older pivot wrote them): no marker, so a lookup lists
    the fingerprint's folder as before, and a push into it does not mark it."""
    objects = ObjectStore(tmp_path / "cache")
    old = result(objects, b"written by an older pivot")
    raw.put(_entry_rel(old), runcache.entry_bytes(old))
    rem = open_remote(raw)
    (found,), log = _requests(proxy, lambda: list(run_lookup.lookup(rem, NAME, old.fingerprint)))
    assert found.lock == old
    assert [line.split(" ")[0] for line in log] == ["GET", "GET", "GET"]  # marker, LIST, entry
    assert "list-type=2" in log[1] and f"runs%2F{NAME.replace('/', '%2F')}" in log[1]
    new = result(objects, b"a newer result", {"n": 2})
    assert transfer.push(objects, rem, [new]).ok
    assert not raw.exists("runcache.json")
    assert raw.exists(_head_rel(new))  # its own head is written all the same
    assert [e.lock for e in run_lookup.lookup(open_remote(raw), NAME, old.fingerprint)] == [old]


def test_a_head_that_fails_its_checks_sends_the_reader_to_the_listing(
    raw: RawRemote, tmp_path: Path
) -> None:
    objects = ObjectStore(tmp_path / "cache")
    lock = result(objects, b"the real result")
    other = result(objects, b"another fingerprint's result", {"n": 9})
    rem = open_remote(raw)
    assert transfer.push(objects, rem, [lock]).ok
    # An attacker replaces the head with garbage, then with a valid entry of
    # another fingerprint (a replayed record).
    for planted in (b"\x00not json", runcache.entry_bytes(other)):
        raw.put(_head_rel(lock), planted)
        found = list(run_lookup.lookup(open_remote(raw), NAME, lock.fingerprint))
        assert [e.lock for e in found] == [lock], planted


def test_with_signing_an_edited_head_is_refused_and_the_signed_entry_found(
    raw: RawRemote, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Unsigned, an edited head is no worse than a planted entry (anyone who can
    write the bucket can add one: that is what signing is for). Signed, it fails
    its signature like any entry, and the listing still finds the signed result."""
    monkeypatch.setenv("PIVOT_SIGNING_KEY", "k1")
    objects = ObjectStore(tmp_path / "cache")
    lock = result(objects, b"signed result")
    rem = open_remote(raw)
    assert transfer.push(objects, rem, [lock]).ok
    head = runcache.head_rel(NAME, lock.fingerprint)
    assert head.endswith(f"/head-{signing.key_id()}.json")
    data = raw.get(head)
    raw.put(head, data.replace(lock.outputs[0].hash.encode(), b"0" * 16))
    entries = run_lookup.lookup(open_remote(raw), NAME, lock.fingerprint)
    assert entries.complete  # the head was refused: the folder was listed at once
    (found,) = list(entries)
    assert found.lock == lock and found.digests is not None


def test_a_planted_head_for_a_fingerprint_with_no_entries_is_no_hit(
    raw: RawRemote, tmp_path: Path
) -> None:
    objects = ObjectStore(tmp_path / "cache")
    rem = open_remote(raw)
    assert transfer.push(objects, rem, [result(objects, b"marks the bucket")]).ok
    victim = result(objects, b"x", {"n": 5})
    raw.put(
        f"runs/{NAME}/{victim.fingerprint}/head.json", runcache.entry_bytes(result(objects, b"y"))
    )
    assert list(run_lookup.lookup(open_remote(raw), NAME, victim.fingerprint)) == []


def test_a_planted_marker_turns_headless_entries_into_misses_never_into_wrong_hits(
    raw: RawRemote, tmp_path: Path
) -> None:
    objects = ObjectStore(tmp_path / "cache")
    old = result(objects, b"headless")
    raw.put(_entry_rel(old), runcache.entry_bytes(old))
    raw.put("runcache.json", b'{"heads":1}')
    assert list(run_lookup.lookup(open_remote(raw), NAME, old.fingerprint)) == []
    raw.put("runcache.json", b'{"heads":"yes"}')  # not the marker: listed as before
    assert [e.lock for e in run_lookup.lookup(open_remote(raw), NAME, old.fingerprint)] == [old]


def test_past_the_head_the_rest_come_newest_first_and_only_when_asked(
    raw: RawRemote, proxy: FaultyProxy, tmp_path: Path
) -> None:
    """The head is the fingerprint's first result; a caller that passes over it (an
    expired max_age, a refused format) gets the newer ones, listed then."""
    objects = ObjectStore(tmp_path / "cache")
    t0 = datetime(2024, 1, 1, tzinfo=UTC)
    first, second, third = (result(objects, f"run {i}".encode()) for i in range(3))
    rem = open_remote(raw)
    assert transfer.push(objects, rem, [first]).ok
    for i, lock in ((1, second), (2, third)):
        assert runcache.write_entry(rem, lock, t0 + timedelta(days=i))
    rem = open_remote(raw)
    entries = run_lookup.lookup(rem, NAME, first.fingerprint)
    assert not entries.complete and [e.lock for e in entries.loaded] == [first]
    seen, log = _requests(proxy, lambda: [e.lock for e in entries])
    assert seen == [first, third, second]
    assert entries.complete and any("list-type=2" in line for line in log)
    again, log = _requests(proxy, lambda: [e.lock for e in entries])
    assert again == seen and log == []
