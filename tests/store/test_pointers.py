"""`latest/` pointers: newest by signed content, never by an unchecked name (issue 12 item 5)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from pivot_store import keys, pointers, runcache
from pivot_store.errors import ConfigError
from pivot_store.lockfile import FingerprintParts, Lock, OutputRecord
from pivot_store.objects import ObjectStore
from pivot_store.remote import Remote


def result(objects: ObjectStore, data: bytes, name: str = "x") -> Lock:
    added = objects.add_bytes(data)
    return Lock.build(name, FingerprintParts(), [OutputRecord(hash=added.oid, size=added.size)])


def plant(
    remote: Remote, lock: Lock, stamp: datetime, created: datetime | None = None, folder: str = ""
) -> None:
    """A pointer written raw: name stamp `stamp`, content time `created` (default: the same)."""
    name = keys.pointer_name(stamp, runcache.entry_id(lock))
    data = runcache.entry_bytes(lock, created or stamp)
    remote.put_bytes(remote.key(f"latest/{folder or lock.name}/{name}"), data)


def test_latest_pointer_newest_wins_and_is_never_rewritten(remote: Remote, tmp_path: Path) -> None:
    objects = ObjectStore(tmp_path / "cache")
    first, second = result(objects, b"one"), result(objects, b"two")
    t0 = datetime(2024, 1, 1, tzinfo=UTC)
    assert pointers.latest_lock(remote, "x") is None
    assert pointers.publish_latest(remote, first, objects, t0)
    assert not pointers.publish_latest(remote, first, objects, t0 + timedelta(1))  # newest already
    assert pointers.publish_latest(remote, second, objects, t0 + timedelta(seconds=1))
    assert pointers.latest_lock(remote, "x") == second
    names = remote.list_names(remote.key("latest/x"))
    assert len(names) == 2  # beside, not over
    # The format on the remote: `<UTC stamp>-<entry id>.json` holding the run-cache entry.
    key = f"latest/x/20240101T000000.000000Z-{runcache.entry_id(first)}.json"
    assert remote.get_bytes(remote.key(key)) == runcache.entry_bytes(first, t0)


def test_latest_lock_skips_invalid_pointers(remote: Remote, tmp_path: Path) -> None:
    objects = ObjectStore(tmp_path / "cache")
    good, other = result(objects, b"good"), result(objects, b"other", "y")
    pointers.publish_latest(remote, good, objects, datetime(2024, 1, 1, tzinfo=UTC))
    newer = "latest/x/20250101T000000.000000Z-"
    # Newer by name but: an id that does not match the record, garbage, another name's record.
    remote.put_bytes(remote.key(newer + "0000000000000000.json"), runcache.entry_bytes(good))
    remote.put_bytes(remote.key(newer + f"{runcache.entry_id(good)}.json"), b"{")
    plant(remote, other, datetime(2026, 1, 1, tzinfo=UTC), folder="x")  # valid, for "y"
    remote.put_bytes(remote.key("latest/x/zzz.json"), runcache.entry_bytes(other))
    remote.put_bytes(remote.key("latest/x/20241399T000000.000000Z-" + "0" * 16 + ".json"), b"{}")
    assert pointers.latest_lock(remote, "x") == good


def test_name_must_agree_with_created_at(remote: Remote, tmp_path: Path) -> None:
    """An old pointer's content copied under a newer name is skipped, not taken as newest."""
    objects = ObjectStore(tmp_path / "cache")
    old, new = result(objects, b"old"), result(objects, b"new")
    t0 = datetime.now(UTC) - timedelta(hours=1)
    plant(remote, old, t0)
    plant(remote, new, t0 + timedelta(minutes=1))
    plant(remote, old, datetime.now(UTC) + timedelta(seconds=1), created=t0)  # renamed copy
    assert pointers.latest_lock(remote, "x") == new


@pytest.mark.parametrize("ahead", [timedelta(days=30), timedelta(days=365 * 900)])
def test_pointers_beyond_the_clock_skew_are_refused(
    remote: Remote, tmp_path: Path, ahead: timedelta
) -> None:
    """A clock running ahead (name and content agree) or a far-future stamp pins nothing."""
    objects = ObjectStore(tmp_path / "cache")
    honest, ahead_lock = result(objects, b"honest"), result(objects, b"from the future")
    plant(remote, honest, datetime.now(UTC) - timedelta(seconds=5))
    plant(remote, ahead_lock, datetime.now(UTC) + ahead)
    assert pointers.latest_lock(remote, "x") == honest


def test_clock_skew_is_configurable(
    remote: Remote, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    objects = ObjectStore(tmp_path / "cache")
    honest, ahead = result(objects, b"honest"), result(objects, b"a minute ahead")
    now = datetime.now(UTC)
    plant(remote, honest, now - timedelta(seconds=5))
    plant(remote, ahead, now + timedelta(minutes=1))
    assert pointers.latest_lock(remote, "x") == ahead  # within the default 300 s
    monkeypatch.setenv(pointers.ENV_SKEW, "10")
    assert pointers.max_clock_skew() == timedelta(seconds=10)
    assert pointers.latest_lock(remote, "x") == honest
    monkeypatch.setenv(pointers.ENV_SKEW, "soon")
    with pytest.raises(ConfigError, match=pointers.ENV_SKEW):
        pointers.max_clock_skew()


def test_publish_after_a_pointer_slightly_ahead_still_wins(remote: Remote, tmp_path: Path) -> None:
    """A clock 2 minutes ahead elsewhere (within the skew) does not shadow a newer result."""
    objects = ObjectStore(tmp_path / "cache")
    theirs, ours = result(objects, b"theirs"), result(objects, b"ours, computed later")
    plant(remote, theirs, datetime.now(UTC) + timedelta(minutes=2))
    assert pointers.publish_latest(remote, ours, objects)
    assert pointers.latest_lock(remote, "x") == ours
    entry = pointers.latest_entry(remote, "x")
    assert entry is not None and runcache.created_time(entry) > datetime.now(UTC)
