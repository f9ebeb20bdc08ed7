"""`latest/` pointers (remote-first): which result of a name is current.

```
<remote>/latest/<name>/<YYYYMMDDTHHMMSS.ffffffZ>-<entry id>.json
```

A step on an empty machine must learn which result of an upstream is current
without that upstream's local lock. Each stored result also writes a pointer (a
copy of its run-cache entry, signed like one); pointers are new immutable
files, never overwritten (contract line 2).

The order comes from the content, not the name: a pointer counts only when its
name's stamp equals its `created_at` (covered by the signature when a key is
set) and its name's entry id its record's, and a time more than the allowed
clock skew (`PIVOT_MAX_CLOCK_SKEW` seconds, default 300) ahead of this clock is
refused, so neither a copy under a far-future name nor a deployment whose clock
runs ahead pins "latest". Valid names then sort like their contents, so a
reader LISTs once and GETs from the newest name down to the first valid one.
"""

from __future__ import annotations

import logging
import os
from datetime import UTC, datetime, timedelta

from pivot_store import keys, run_lookup, runcache
from pivot_store.errors import ConfigError, LockError
from pivot_store.lockfile import Lock
from pivot_store.objects import ObjectStore
from pivot_store.remote import Remote, retrying

log = logging.getLogger("pivot")
ENV_SKEW = "PIVOT_MAX_CLOCK_SKEW"
DEFAULT_SKEW = 300  # seconds a pointer's time may lie ahead of this clock


def max_clock_skew() -> timedelta:
    """How far ahead of this clock a pointer's time may be (`PIVOT_MAX_CLOCK_SKEW` seconds)."""
    raw = os.environ.get(ENV_SKEW, "").strip()
    if not raw:
        return timedelta(seconds=DEFAULT_SKEW)
    try:
        seconds = float(raw)
    except ValueError:
        seconds = -1.0
    if not seconds >= 0:
        raise ConfigError(
            f"{ENV_SKEW}={raw!r} is not a number of seconds",
            f"set it to e.g. {DEFAULT_SKEW}, or unset it",
        )
    return timedelta(seconds=seconds)


def publish_latest(
    remote: Remote,
    lock: Lock,
    objects: ObjectStore | None = None,
    created_at: datetime | None = None,
) -> bool:
    """Name `lock` the newest result of its name (its objects must be pushed first).

    Skipped when the newest pointer already names the same entry; True if written.
    Without `created_at` the time is now, or just after the newest pointer's when
    that one is ahead of this clock (within the skew), so this result still wins.
    `objects` are needed only to sign the pointer (see `runcache.entry_bytes`).
    """
    eid = runcache.entry_id(lock)
    newest = latest_entry(remote, lock.name)
    if newest is not None and newest.entry_id == eid:
        return False
    when = (created_at or datetime.now(UTC)).astimezone(UTC)
    if created_at is None and newest is not None:
        last = runcache.created_time(newest)
        if last is not None and last >= when:
            when = last + timedelta(microseconds=1)
    key = remote.key(f"{keys.latest_prefix(lock.name)}/{keys.pointer_name(when, eid)}")
    data = runcache.entry_bytes(lock, when, objects)
    wrote = retrying(remote, lambda: remote.put_bytes(key, data), f"latest pointer {key}")
    if wrote and objects is not None:
        _restore(remote, lock, objects)
    return wrote


def _restore(remote: Remote, lock: Lock, objects: ObjectStore) -> None:
    """After the pointer: upload again what remote gc deleted since the push checked it.

    Remote gc (remote_gc.py) lists the records again after deleting; a pointer
    written after that listing is checked here instead, so one of the two sees
    the other. Only when this cache holds every object the lock names.
    """
    from pivot_store import oid as oids

    if not all(objects.exists(o.hash) for o in lock.outputs):
        return
    needed = runcache.entry_objects(lock, objects)
    if not all(objects.exists(o) for o in needed):
        return
    gone = set(needed) - remote.present(needed)
    for oid in sorted(gone, key=oids.is_dir):  # files before their manifests
        okey = remote.object_key(oid)
        path = objects.path(oid)
        retrying(remote, lambda okey=okey, path=path: remote.put_file(path, okey), okey)


def latest_entry(
    remote: Remote, name: str, now: datetime | None = None, *, output_hash: str | None = None
) -> runcache.RunEntry | None:
    """The newest valid pointer's entry for `name`, or None (never a half-valid one).

    `output_hash`: the newest valid pointer to that very result (its first
    output's hash), for a reader who already knows which value is current.

    With a signing key the entry keeps its signed digests: the caller checks
    the objects against them (`runcache.verify_objects`) after fetching.
    """
    prefix = remote.key(keys.latest_prefix(name))
    names = retrying(remote, lambda: remote.list_names(prefix), f"latest pointers {prefix}")
    limit = (now or datetime.now(UTC)) + max_clock_skew()
    claimed = [(*p, n) for n in names if (p := keys.parse_pointer(n)) is not None]
    for stamp, eid, n in sorted(claimed, reverse=True):
        key = f"{prefix}/{n}"
        if stamp > limit:
            log.warning("pivot: skipping latest pointer %s: its time is in the future", key)
            continue
        try:
            data = retrying(remote, lambda key=key: remote.get_bytes(key), key)
            entry = runcache.parse_entry(data, f"{remote.name}:{key}", expected_id=eid)
        except (LockError, FileNotFoundError) as e:
            log.warning("pivot: skipping latest pointer %s: %s", key, e)
            continue
        if runcache.created_time(entry) != stamp:
            log.warning("pivot: skipping latest pointer %s: its name and created_at differ", key)
            continue
        if entry.name != name:
            continue
        if output_hash is None or (
            entry.lock.outputs and entry.lock.outputs[0].hash == output_hash
        ):
            return entry
    return None


def latest_lock(remote: Remote, name: str) -> Lock | None:
    """The lock of `latest_entry` (for callers that need no digests)."""
    entry = latest_entry(remote, name)
    return entry.lock if entry is not None else None


def signed_record(
    remote: Remote, name: str, fingerprint: str, output_hash: str
) -> runcache.RunEntry | None:
    """A signed record of exactly this result (its run-cache entry, else a latest
    pointer to it), for re-fetching objects of a lock whose objects are gone locally:
    with a key, what comes back is checked against the record's signed digests, not
    by xxh64 alone. None when the remote holds no signed record of it."""
    for entry in run_lookup.lookup(remote, name, fingerprint):
        if entry.digests is not None and any(o.hash == output_hash for o in entry.lock.outputs):
            return entry
    entry = latest_entry(remote, name, output_hash=output_hash)
    return entry if entry is not None and entry.digests is not None else None
