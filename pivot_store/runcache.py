"""Run-cache entries on a remote: fingerprint -> the results computed for it.

```
<remote>/runs/<name>/<fingerprint>/<entry-id>.json           unsigned
<remote>/runs/<name>/<fingerprint>/<entry-id>-<key-id>.json  signed (format 2)
<remote>/runs/<name>/<fingerprint>/head[-<key-id>].json      copy of the first (format 3)
```

An entry is a lock record plus the time it was published. Its file name is
the xxh64 of the lock record (canonical JSON, no timestamp), so the same result
pushed twice lands on the same name and is skipped, while a second, different
result for one fingerprint (a non-deterministic asset, a different library
version) gets its own name beside the first: entries are never overwritten
(contract line 2). Readers check that the name matches the record, so an entry
cannot claim a result it does not hold. A signed entry's name also carries the
signer's `signing.key_id`, so after a key rotation the new key's entries are
written beside the old ones and lookups skip the old key's without reading
them; names without a key id (format 1, or unsigned) are still read.

Publishing order is the writer's job (transfer.push: objects, then manifests,
then the entry); this module only names, writes and reads entries and heads
(and the local run-cache); `run_lookup` finds a fingerprint's entries on a
remote; `pointers` holds the `latest/` pointers, copies of entries.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from pivot_store import atomic, keys, signing
from pivot_store import oid as oids
from pivot_store.errors import LockError
from pivot_store.hashing import canonical_json, hash_json
from pivot_store.lockfile import Lock, parse_lock, read_lock
from pivot_store.manifest import read_manifest
from pivot_store.objects import ObjectStore
from pivot_store.remote import Remote, aretrying, retrying

log = logging.getLogger("pivot")
ENTRY_VERSION = 1
_HEX16 = re.compile(r"[0-9a-f]{16}")
# `<entry id>.json` (unsigned, or format 1) or `<entry id>-<key id>.json` (signed, format 2)
_ENTRY_NAME = re.compile(r"([0-9a-f]{16})(?:-([0-9a-f]{8}))?\.json")
# `head.json` (unsigned) or `head-<key id>.json`: a copy of the fingerprint's first entry
_HEAD_NAME = re.compile(r"head(?:-([0-9a-f]{8}))?\.json")
SUFFIX = ".json"
STAMP = "%Y-%m-%dT%H:%M:%S.%fZ"  # created_at


@dataclass(frozen=True)
class RunEntry:
    """One published result: `lock` names its objects; `created_at` orders entries."""

    lock: Lock
    created_at: str
    entry_id: str
    digests: dict[str, str] | None = None  # SHA-256 per object, on signed entries

    @property
    def name(self) -> str:
        return self.lock.name

    @property
    def fingerprint(self) -> str:
        return self.lock.fingerprint


def entry_id(lock: Lock) -> str:
    """The entry's name: the hash of the lock record, so equal results share it."""
    return hash_json(lock.to_data())


def entry_rel(lock: Lock) -> str:
    """`runs/<name>/<fingerprint>/<entry-id>[-<key-id>].json`, relative to the remote root.

    The key id is the configured signing key's (`signing.key_id`): a signed
    entry is named by its signer too, so a rotated key writes beside the old.
    """
    kid = signing.key_id()
    stem = entry_id(lock) + (f"-{kid}" if kid else "")
    return f"{keys.run_prefix(lock.name, lock.fingerprint)}/{stem}{SUFFIX}"


def head_rel(name: str, fingerprint: str) -> str:
    """`runs/<name>/<fingerprint>/head[-<key id>].json`: where this writer's (and
    reader's) key puts the copy of the fingerprint's first entry, so a hit is one
    GET of a name known without a listing (see `run_lookup`)."""
    return f"{keys.run_prefix(name, fingerprint)}/{head_name(signing.key_id())}"


def head_name(key_id: str | None) -> str:
    """`head.json`, or `head-<key id>.json` for the entries that key signed."""
    return f"head{f'-{key_id}' if key_id else ''}{SUFFIX}"


def is_head_name(file_name: str) -> bool:
    return _HEAD_NAME.fullmatch(file_name) is not None


def head_signer(file_name: str) -> str | None:
    """The key id a head's name carries (None: unsigned, or not a head's name)."""
    m = _HEAD_NAME.fullmatch(file_name)
    return m.group(1) if m else None


def parse_entry_name(file_name: str) -> tuple[str, str | None] | None:
    """(entry id, signer's key id or None) of an entry file name; None for anything else."""
    m = _ENTRY_NAME.fullmatch(file_name)
    return (m.group(1), m.group(2)) if m else None


def entry_bytes(
    lock: Lock, created_at: datetime | None = None, objects: ObjectStore | None = None
) -> bytes:
    """The entry's bytes; signed (see `signing`) when a signing key is configured.

    Signing needs the local objects: the entry carries each one's SHA-256.
    """
    when = (created_at or datetime.now(UTC)).astimezone(UTC)
    doc = {
        "schema_version": ENTRY_VERSION,
        "created_at": when.strftime(STAMP),
        "lock": lock.to_data(),
    }
    key = signing.signing_key()
    if key is not None:
        if objects is None:
            raise LockError(
                f"cannot sign the run-cache entry of {lock.name!r} without its objects",
                "push it with `pivot push` from the deployment that stored it",
            )
        digests = {
            oid: signing.sha256_file(objects.path(oid)) for oid in entry_objects(lock, objects)
        }
        doc = signing.sign(doc, key, digests)
    return canonical_json(doc)


def entry_objects(lock: Lock, objects: ObjectStore) -> list[str]:
    """Every object an entry's outputs need, a folder's files included."""
    found: list[str] = []
    for out in lock.outputs:
        found.append(out.hash)
        if oids.is_dir(out.hash):
            found += [e.hash for e in read_manifest(objects, out.hash).files()]  # type: ignore[misc]
    return found


def verify_objects(entry: RunEntry, objects: ObjectStore, source: str = "") -> None:
    """After fetching a signed entry's objects: each must match its signed SHA-256."""
    if entry.digests is None:
        return
    where = source or f"run-cache entry {entry.entry_id}"
    paths = [(oid, objects.path(oid)) for oid in entry_objects(entry.lock, objects)]
    signing.check_objects(paths, entry.digests, where)


def created_time(entry: RunEntry) -> datetime | None:
    """An entry's `created_at` as a UTC time, or None when it is not one."""
    try:
        return datetime.strptime(entry.created_at, STAMP).replace(tzinfo=UTC)
    except ValueError:
        return None


def parse_entry(data: bytes, source: str, expected_id: str | None = None) -> RunEntry:
    """Validate an entry; LockError names the source when anything is off.

    `expected_id` is the entry id its name claims (a file stem with a key id,
    `<id>-<key id>`, is accepted too).
    """
    try:
        doc = json.loads(data)
    except (ValueError, UnicodeDecodeError):
        raise LockError(
            f"run-cache entry {source} is not JSON", "delete it from the remote"
        ) from None
    if not isinstance(doc, dict) or not isinstance(doc.get("created_at"), str):
        raise LockError(f"run-cache entry {source} is malformed", "delete it from the remote")
    version = doc.get("schema_version")
    if not isinstance(version, int) or version > ENTRY_VERSION:
        raise LockError(
            f"run-cache entry {source} has schema_version {version!r}, "
            f"newer than this pivot ({ENTRY_VERSION})",
            "upgrade pivot-dagster",
        )
    digests = None
    key = signing.signing_key()
    if key is not None:
        digests = signing.verify(doc, key, source)
    lock = parse_lock(doc.get("lock"), source)
    eid = entry_id(lock)
    if expected_id is not None and eid != expected_id.split("-", 1)[0]:
        raise LockError(
            f"run-cache entry {source} holds a record that hashes to {eid}",
            "the entry was edited or corrupted; delete it from the remote",
        )
    return RunEntry(lock, doc["created_at"], eid, digests)


def write_entry(
    remote: Remote,
    lock: Lock,
    created_at: datetime | None = None,
    objects: ObjectStore | None = None,
) -> bool:
    """`awrite_entry` from sync code: create the entry for `lock` unless it exists."""
    return remote.run(awrite_entry, remote, lock, created_at, objects)


async def awrite_entry(
    remote: Remote,
    lock: Lock,
    created_at: datetime | None = None,
    objects: ObjectStore | None = None,
) -> bool:
    """Create the entry for `lock` unless it exists, then its fingerprint's head
    unless it has one; True if this call wrote the entry.

    The caller must have pushed the objects the lock names first (a push,
    `transfer`, writes both itself, each failure under its own name).
    """
    data = entry_bytes(lock, created_at, objects)
    wrote = await aput_record(remote, entry_rel(lock), data)
    await aput_record(remote, head_rel(lock.name, lock.fingerprint), data)
    return wrote


async def aput_record(remote: Remote, rel: str, data: bytes) -> bool:
    """Create a run-cache entry or head at `rel` unless it exists (never replaced:
    the first writer of a head wins, as with objects); True if this call wrote it."""
    key = remote.key(rel)
    return await aretrying(remote, lambda: remote.aput_bytes(key, data), f"run-cache {key}")


def entry_exists(remote: Remote, lock: Lock) -> bool:
    key = remote.key(entry_rel(lock))
    return retrying(remote, lambda: remote.exists(key), f"run-cache entry {key}")


def fingerprints(remote: Remote, name: str) -> list[str]:
    """The fingerprints with at least one entry for `name` (for a pull sensor's scan)."""
    prefix = remote.key(f"runs/{keys.validate_name(name)}")
    found = retrying(remote, lambda: remote.list_dirs(prefix), f"run-cache {prefix}")
    return sorted(f for f in found if _HEX16.fullmatch(f))


# --- the local run-cache: .pivot/runs/<name>/<fingerprint>/<entry id>.lock ---------
# The remote layout under the project's `runs_dir`, one lock file per result, named
# like the remote entry (`entry_id`) so equal results share a file. Written beside,
# never over: a second result for one fingerprint lands next to the first.


def local_entry_path(runs_dir: Path, lock: Lock) -> Path:
    """The local run-cache file of `lock`."""
    folder = keys.run_dir(runs_dir, lock.name, lock.fingerprint)
    return folder / f"{entry_id(lock)}{keys.LOCK_SUFFIX}"


def write_local(runs_dir: Path, lock: Lock, data: bytes | None = None) -> bool:
    """Create the local entry of `lock` unless it exists; True if this call wrote it.

    `data` is `lock.to_yaml()` when the caller has it already. The objects the
    lock names must be stored first.
    """
    path = local_entry_path(runs_dir, lock)
    if path.exists():
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic.write_replace(path, lock.to_yaml() if data is None else data, fsync=False)
    return True


def iter_local(runs_dir: Path, name: str, fingerprint: str) -> Iterator[Lock]:
    """The local results for (name, fingerprint), newest file first.

    Read lazily, so a caller that stops at the first usable one parses no more;
    a file whose record has another fingerprint is skipped (it claims a result
    it does not hold).
    """
    folder = keys.run_dir(runs_dir, name, fingerprint)
    if not folder.is_dir():
        return
    for path in sorted(folder.glob("*" + keys.LOCK_SUFFIX), key=lambda p: -p.stat().st_mtime):
        lock = read_lock(path)
        if lock.fingerprint == fingerprint:
            yield lock


def iter_all_local(runs_dir: Path) -> Iterator[Lock]:
    """Every lock in the local run-cache (for gc: what they name stays reachable)."""
    if runs_dir.is_dir():
        for path in sorted(runs_dir.rglob("*" + keys.LOCK_SUFFIX)):
            yield read_lock(path)


def newest_local(runs_dir: Path, name: str) -> Lock | None:
    """The newest local result for `name` under any fingerprint (what a miss is explained
    against when the name has no lock); None when there is none. Unreadable files are
    skipped: this only explains, it never decides."""
    folder = keys.run_dir(runs_dir, name, "0" * 16).parent
    if not folder.is_dir():
        return None
    found: list[tuple[float, Path]] = []
    for fp_dir in folder.iterdir():
        if _HEX16.fullmatch(fp_dir.name) and fp_dir.is_dir():
            found += [(p.stat().st_mtime, p) for p in fp_dir.glob("*" + keys.LOCK_SUFFIX)]
    for _, path in sorted(found, reverse=True):
        try:
            return read_lock(path)
        except LockError:
            continue
    return None
