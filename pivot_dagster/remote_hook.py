"""The one place pivot_dagster talks to remotes (pivot_store.remote / transfer / runcache).

`fetch_output` pulls what one output needs into the local cache (every object
hash-checked by the store before it enters); `find_remote_result` asks the
remote run-cache for a fingerprint and pulls the objects of the first entry
that can be fetched completely. Remotes are opened once per process and name.

Latest pointers (remote-first mode): a step on an empty machine must learn
which result of an upstream is current without that upstream's local lock.
Each stored result also writes `latest/<lock name>/<UTC stamp>-<entry id>.json`
(a copy of the run-cache entry). Pointers are new immutable files, never
overwritten (contract line 2); the newest by name (= created_at) wins, so a
reader needs one LIST and one GET.
"""

from __future__ import annotations

import logging
import re
import threading
from datetime import UTC, datetime
from typing import Any

from pivot_store import keys, runcache, transfer
from pivot_store.errors import CorruptObject, LockError
from pivot_store.lockfile import FingerprintParts, Lock, OutputRecord
from pivot_store.remote import open_remote, retrying
from pivot_store.repo import Repo

log = logging.getLogger("pivot")

_REMOTES: dict[tuple[str, str], Any] = {}
_LOCK = threading.Lock()


def _remote(repo: Repo, name: str) -> Any:
    key = (str(repo.root), name)
    with _LOCK:
        if key not in _REMOTES:
            _REMOTES[key] = open_remote(repo.config, name)
        return _REMOTES[key]


def fetch_output(repo: Repo, remote: str, out: OutputRecord, owner: str) -> None:
    """Fetch an output's objects (a folder's manifest, then its files); errors name each."""
    carrier = Lock.build(owner, FingerprintParts(), [out])
    with repo.writing():
        result = transfer.fetch(repo.objects, _remote(repo, remote), [carrier])
    result.raise_for_failures()


def find_remote_result(
    repo: Repo, remote: str, name: str, fingerprint: str, *, allow_pickle: bool = False
) -> Lock | None:
    """A remote result for the fingerprint, its objects now local; pickles only if trusted."""
    rem = _remote(repo, remote)
    for entry in runcache.lookup(rem, name, fingerprint):
        if not allow_pickle and any(o.format == "pickle" for o in entry.lock.outputs):
            continue
        with repo.writing():
            result = transfer.fetch(repo.objects, rem, [entry.lock])
            if result.ok and _signed_objects_match(repo, entry, rem.name):
                return entry.lock
    return None


def _signed_objects_match(repo: Repo, entry: runcache.RunEntry, remote: str) -> bool:
    """With signing on, each fetched object must match the entry's signed SHA-256."""
    try:
        runcache.verify_objects(entry, repo.objects, f"{remote}:{entry.entry_id}")
    except CorruptObject as e:
        log.warning("pivot: refusing run-cache entry %s: %s", entry.entry_id, e)
        for oid in getattr(e, "oids", []):
            repo.objects.remove(oid)
        return False
    return True


def label(repo: Repo, remote: str) -> str:
    """`<name> (<url>)`: how events name where a result came from."""
    rem = _remote(repo, remote)
    return f"{rem.name} ({rem.url})"


def push_locks(repo: Repo, remote: str, locks: list[Lock], *, run_cache: bool = True) -> Any:
    """Objects, then run-cache entries, of `locks`: a `transfer.Result`, per-object errors kept."""
    with repo.writing():
        return transfer.push(repo.objects, _remote(repo, remote), locks, run_cache=run_cache)


_POINTER = re.compile(r"\d{8}T\d{6}\.\d{6}Z-[0-9a-f]{16}\.json")


def _pointer_dir(name: str) -> str:
    return f"latest/{keys.validate_name(name)}"


def publish_latest(repo: Repo, remote: str, lock: Lock) -> bool:
    """Name `lock` the newest result of its lock name (its objects must be pushed first).

    Skipped when the newest pointer already names the same entry; True if written.
    """
    rem = _remote(repo, remote)
    newest = latest_lock(repo, remote, lock.name)
    if newest is not None and runcache.entry_id(newest) == runcache.entry_id(lock):
        return False
    now = datetime.now(UTC)
    rel = f"{_pointer_dir(lock.name)}/{now:%Y%m%dT%H%M%S.%fZ}-{runcache.entry_id(lock)}.json"
    data = runcache.entry_bytes(lock, now, repo.objects)
    key = rem.key(rel)
    return retrying(rem, lambda: rem.put_bytes(key, data), f"latest pointer {key}")


def latest_lock(repo: Repo, remote: str, name: str) -> Lock | None:
    """The lock named by the newest pointer for `name`, or None (never a half-valid one)."""
    rem = _remote(repo, remote)
    prefix = rem.key(_pointer_dir(name))
    names = retrying(rem, lambda: rem.list_names(prefix), f"latest pointers {prefix}")
    for n in sorted((n for n in names if _POINTER.fullmatch(n)), reverse=True):
        key = f"{prefix}/{n}"
        try:
            data = retrying(rem, lambda key=key: rem.get_bytes(key), key)
            entry = runcache.parse_entry(data, f"{rem.name}:{key}", expected_id=n[-21:-5])
        except (LockError, FileNotFoundError):
            continue
        if entry.name == name:
            return entry.lock
    return None
