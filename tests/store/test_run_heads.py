"""`pivot remote upgrade`: heads for a run-cache older pivots filled, then the marker.

The old buckets are written raw (`RawRemote`, docs/format.md's layout: entries
without heads, no marker), as an older pivot or an attacker would leave them;
requests are counted by a real HTTP proxy in front of moto.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from pivot_store import run_heads, run_lookup, runcache, signing, transfer
from pivot_store.lockfile import Lock
from pivot_store.objects import ObjectStore
from tests.fixtures.faulty_proxy import FaultyProxy
from tests.fixtures.raw_remote import RawRemote
from tests.fixtures.run_cache import NAME, open_remote, result

T0 = datetime(2024, 1, 1, tzinfo=UTC)


def _folder(lock: Lock) -> str:
    return f"runs/{lock.name}/{lock.fingerprint}"


def _old_entry(raw: RawRemote, lock: Lock, days: int, objects: ObjectStore) -> bytes:
    """What an older pivot pushed: the entry alone, no head."""
    data = runcache.entry_bytes(lock, T0 + timedelta(days=days), objects)
    kid = signing.key_id()
    raw.put(f"{_folder(lock)}/{runcache.entry_id(lock)}{f'-{kid}' if kid else ''}.json", data)
    return data


def test_an_upgraded_bucket_answers_each_lookup_in_one_get_with_its_first_result(
    raw: RawRemote, proxy: FaultyProxy, tmp_path: Path
) -> None:
    objects = ObjectStore(tmp_path / "cache")
    first, second = result(objects, b"run 1"), result(objects, b"run 2")
    other = result(objects, b"another fingerprint", {"n": 2})
    first_bytes = _old_entry(raw, first, 1, objects)
    _old_entry(raw, second, 2, objects)  # same fingerprint, newer
    _old_entry(raw, other, 3, objects)
    rem = open_remote(raw)
    assert run_lookup.lookup(rem, NAME, first.fingerprint).complete  # listed: not marked

    res = run_heads.upgrade_remote(open_remote(raw))
    assert res.marked and res.folders == 2 and res.present == 0 and res.headless == []
    assert res.written == [f"{_folder(first)}/head.json", f"{_folder(other)}/head.json"]
    assert raw.get(f"{_folder(first)}/head.json") == first_bytes  # the oldest, byte for byte
    assert raw.get("runcache.json") == run_lookup.MARKER_BYTES

    rem = open_remote(raw)
    run_lookup.marked(rem)
    for lock in (first, other):
        start = len(proxy.log)
        found = next(iter(run_lookup.lookup(rem, NAME, lock.fingerprint)))
        assert found.lock == lock
        assert proxy.log[start:] == [f"GET /{raw.bucket}/store/{_folder(lock)}/head.json"]
    assert [e.lock for e in run_lookup.lookup(rem, NAME, first.fingerprint)] == [first, second]

    again = run_heads.upgrade_remote(open_remote(raw))  # nothing left to do
    assert again.written == [] and again.present == 2 and again.marked


def test_entries_that_fail_a_readers_checks_are_never_copied_into_a_head(
    raw: RawRemote, tmp_path: Path
) -> None:
    """The oldest files of a folder are an attacker's: a valid record of another
    fingerprint filed here, and one under a name its record does not hash to.
    The head is the genuine entry's copy; a folder with nothing genuine gets no head
    and, marked, stays a miss."""
    objects = ObjectStore(tmp_path / "cache")
    genuine = result(objects, b"genuine")
    elsewhere = result(objects, b"a different fingerprint", {"n": 7})
    folder = _folder(genuine)
    raw.put(f"{folder}/{runcache.entry_id(elsewhere)}.json", runcache.entry_bytes(elsewhere, T0))
    raw.put(f"{folder}/{'0' * 16}.json", runcache.entry_bytes(genuine, T0))
    genuine_bytes = _old_entry(raw, genuine, 5, objects)
    victim = result(objects, b"victim", {"n": 8})
    raw.put(f"{_folder(victim)}/{runcache.entry_id(victim)}.json", b"\x00not json")

    res = run_heads.upgrade_remote(open_remote(raw))
    assert res.marked and res.written == [f"{folder}/head.json"]
    assert raw.get(f"{folder}/head.json") == genuine_bytes
    assert res.headless == [_folder(victim)]
    rem = open_remote(raw)
    assert [e.lock for e in run_lookup.lookup(rem, NAME, genuine.fingerprint)] == [genuine]
    assert list(run_lookup.lookup(rem, NAME, victim.fingerprint)) == []


def test_signed_an_entry_with_a_bad_signature_is_passed_over(
    raw: RawRemote, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PIVOT_SIGNING_KEY", "k1")
    objects = ObjectStore(tmp_path / "cache")
    lock = result(objects, b"signed result")
    forged = result(objects, b"forged result")  # same fingerprint, older, signature edited
    doc = json.loads(runcache.entry_bytes(forged, T0, objects))
    doc["signature"] = "0" * len(doc["signature"])
    kid = signing.key_id()
    raw.put(f"{_folder(lock)}/{runcache.entry_id(forged)}-{kid}.json", json.dumps(doc).encode())
    good = _old_entry(raw, lock, 3, objects)

    res = run_heads.upgrade_remote(open_remote(raw))
    head = f"{_folder(lock)}/head-{kid}.json"
    assert res.written == [head] and raw.get(head) == good
    (found,) = list(run_lookup.lookup(open_remote(raw), NAME, lock.fingerprint))
    assert found.lock == lock and found.digests is not None


def test_a_file_planted_at_the_markers_name_blocks_the_upgrade_and_is_reported(
    raw: RawRemote, tmp_path: Path
) -> None:
    objects = ObjectStore(tmp_path / "cache")
    old = result(objects, b"old")
    _old_entry(raw, old, 1, objects)
    raw.put("runcache.json", b'{"heads": "yes"}')
    res = run_heads.upgrade_remote(open_remote(raw))
    assert not res.marked and "runcache.json" in res.blocked
    assert raw.get("runcache.json") == b'{"heads": "yes"}'  # never replaced
    assert raw.exists(f"{_folder(old)}/head.json")
    assert run_lookup.lookup(open_remote(raw), NAME, old.fingerprint).complete  # still listed


def test_the_command_upgrades_a_folder_remote_and_fails_when_blocked(
    project: Path, cli, tmp_path: Path
) -> None:
    root = tmp_path / "remote"
    raw = RawRemote("file", {"url": root.as_uri()}, root=root)
    objects = ObjectStore(tmp_path / "cache")
    old = result(objects, b"pushed by an older pivot")
    data = _old_entry(raw, old, 1, objects)
    assert cli("init")[0] == 0
    assert cli("remote", "add", "origin", root.as_uri(), "--default")[0] == 0
    code, out, _ = cli("remote", "upgrade", "--json")
    assert code == 0, out
    doc = json.loads(out)
    assert doc["written"] == [f"{_folder(old)}/head.json"] and doc["marked"] is True
    assert raw.get(f"{_folder(old)}/head.json") == data
    code, out, _ = cli("remote", "upgrade")
    assert code == 0 and "wrote 0 head(s), 1 already there" in out and "marked" in out
    raw.put("runcache.json", b"planted")  # replaced by hand: no longer the marker
    code, out, _ = cli("remote", "upgrade", "origin")
    assert code == 1 and "not marked" in out and "runcache.json" in out


def test_on_a_marked_remote_it_gives_back_a_head_that_was_lost(
    raw: RawRemote, tmp_path: Path
) -> None:
    """A push that died between its entry and its head (played by deleting the head
    raw): marked readers miss the result until the upgrade writes the head again."""
    objects = ObjectStore(tmp_path / "cache")
    kept, lost = result(objects, b"kept"), result(objects, b"lost", {"n": 3})
    assert transfer.push(objects, open_remote(raw), [kept, lost]).ok
    raw.delete(f"{_folder(lost)}/head.json")
    assert list(run_lookup.lookup(open_remote(raw), NAME, lost.fingerprint)) == []
    res = run_heads.upgrade_remote(open_remote(raw))
    assert res.written == [f"{_folder(lost)}/head.json"] and res.present == 1 and res.marked
    assert [e.lock for e in run_lookup.lookup(open_remote(raw), NAME, lost.fingerprint)] == [lost]
