"""What a remote holds, read for remote gc: objects, run-cache entries, pointers.

Everything here is untrusted input (contract line 7). A key is used only
when it parses back into pivot's own layout (`files/<oid>`,
`runs/<name>/<fingerprint>/<entry>.json`, a fingerprint's `head[-<key id>].json`
(a copy of one of its entries: its entry id comes from its record),
`latest/<name>/<stamp>-<entry>.json`,
each part validated and the key rebuilt from the parts), so nothing outside
that layout is ever named for deletion. An entry or pointer is read for the
objects it names only: structurally (JSON, a lock that parses, a name that
matches the record); its signature is not checked, because a record gc cannot
verify may still be someone's result, and keeping its objects costs only
space. What does not parse names nothing and is never deleted: it is reported.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime

from pivot_store import keys, runcache
from pivot_store import oid as oids
from pivot_store.errors import LockError, PivotError, RemoteError
from pivot_store.hashing import hash_bytes
from pivot_store.lockfile import SCHEMA_VERSION, Lock, parse_lock
from pivot_store.manifest import Manifest
from pivot_store.objects import ObjectStore
from pivot_store.remote import Listed, Remote, amap, aretrying

_HEX16 = re.compile(r"[0-9a-f]{16}")


@dataclass
class Record:
    """A run-cache entry or a `latest/` pointer found on the remote."""

    rel: str  # relative to the remote root, rebuilt from validated parts
    name: str
    size: int
    mtime: float  # the remote's own clock
    entry_id: str
    stamp: datetime | None = None  # a pointer's name's time
    lock: Lock | None = None  # None: did not parse (see `problem`)
    created: datetime | None = None  # min(created_at, mtime + skew)
    problem: str = ""

    @property
    def pointer(self) -> bool:
        return self.rel.startswith(keys.LATEST + "/")

    @property
    def head(self) -> bool:
        return not self.pointer and runcache.is_head_name(self.rel.rpartition("/")[2])

    @property
    def folder(self) -> str:
        """`runs/<name>/<fingerprint>` of an entry or head."""
        return self.rel.rpartition("/")[0]


@dataclass
class Snapshot:
    """One listing of the remote: objects by id, records by relative key."""

    objects: dict[str, Listed] = field(default_factory=dict)
    records: dict[str, Record] = field(default_factory=dict)
    foreign: list[str] = field(default_factory=list)  # keys outside the layout: left alone


def _rel(remote: Remote, key: str) -> str | None:
    root = remote.root + "/"
    return key[len(root) :] if key.startswith(root) else None


def parse_record_key(rel: str) -> tuple[str, str, datetime | None] | None:
    """(name, entry id, pointer stamp) of a record key in pivot's layout, else None.

    The key is rebuilt from its validated parts and must equal `rel`.
    """
    parts = rel.split("/")
    try:
        if parts[0] == "runs" and len(parts) >= 4:
            name, fp, file = "/".join(parts[1:-2]), parts[-2], parts[-1]
            parsed = runcache.parse_entry_name(file)
            if runcache.is_head_name(file):
                parsed = ("", None)  # its entry id is read from its record
            if parsed is None or not _HEX16.fullmatch(fp):
                return None
            if f"{keys.run_prefix(name, fp)}/{file}" != rel:
                return None
            return name, parsed[0], None
        if parts[0] == keys.LATEST and len(parts) >= 3:
            name, file = "/".join(parts[1:-1]), parts[-1]
            found = keys.parse_pointer(file)
            if found is None or f"{keys.latest_prefix(name)}/{file}" != rel:
                return None
            return name, found[1], found[0]
    except PivotError:  # an unsafe name
        return None
    return None


def _newer_than_us(data: bytes) -> bool:
    """A record from a newer pivot: gc cannot know what it names."""
    try:
        doc = json.loads(data)
        version = doc.get("schema_version")
        lock_version = (doc.get("lock") or {}).get("schema_version")
    except (ValueError, UnicodeDecodeError, AttributeError):
        return False
    return any(
        isinstance(v, int) and not isinstance(v, bool) and v > top
        for v, top in ((version, runcache.ENTRY_VERSION), (lock_version, SCHEMA_VERSION))
    )


def parse_record(rec: Record, data: bytes, skew_s: float) -> None:
    """Fill `rec.lock` and `rec.created` from its bytes, or `rec.problem`.

    Raises RemoteError for a record of a newer pivot: gc stops rather than
    delete the objects of a result it cannot read.
    """
    if _newer_than_us(data):
        raise RemoteError(
            f"{rec.rel} on the remote was written by a newer pivot",
            "run remote gc with that newer pivot",
        )
    try:
        doc = json.loads(data)
        if not isinstance(doc, dict) or not isinstance(doc.get("created_at"), str):
            raise LockError("not a run-cache record", "")
        lock = parse_lock(doc.get("lock"), rec.rel)
        created = datetime.strptime(doc["created_at"], runcache.STAMP).replace(tzinfo=UTC)
    except (ValueError, UnicodeDecodeError, LockError) as e:
        rec.problem = str(e).split("\n")[0] or type(e).__name__
        return
    if rec.head:
        rec.entry_id = runcache.entry_id(lock)
    if runcache.entry_id(lock) != rec.entry_id or lock.name != rec.name:
        rec.problem = "its name does not match its record"
        return
    if not rec.pointer and f"/{lock.fingerprint}/" not in rec.rel:
        rec.problem = "its folder does not match its record's fingerprint"
        return
    if rec.stamp is not None and rec.stamp != created:
        rec.problem = "its name's time and its created_at differ (readers skip it)"
        return
    rec.lock = lock
    # A record cannot have been made after the remote stored it: a far-future
    # created_at does not push genuine results out of --keep-last.
    limit = datetime.fromtimestamp(rec.mtime + skew_s, UTC)
    rec.created = min(created, limit)


async def ascan_records(
    remote: Remote, skew_s: float, jobs: int, known: dict[str, Record] | None = None
) -> tuple[dict[str, Record], list[str]]:
    """List `runs/` and `latest/`, read every record not in `known` (those are reused)."""
    known = known or {}
    found: dict[str, Record] = {}
    foreign: list[str] = []
    for top in ("runs", keys.LATEST):
        prefix = f"{remote.root}/{top}"
        listed = await aretrying(remote, lambda p=prefix: remote.alist_info(p), f"listing {prefix}")
        for item in listed:
            rel = _rel(remote, item.key)
            parsed = parse_record_key(rel) if rel else None
            if rel is None or parsed is None:
                foreign.append(item.key)
                continue
            if rel in known:
                found[rel] = known[rel]
                continue
            name, eid, stamp = parsed
            found[rel] = Record(rel, name, item.size, item.mtime, eid, stamp)

    async def read(rec: Record) -> None:
        key = remote.key(rec.rel)
        try:
            data = await aretrying(remote, lambda: remote.aget_bytes(key), key)
        except FileNotFoundError:
            rec.problem = "gone while gc read it"
            return
        parse_record(rec, data, skew_s)

    await amap(jobs, read, [r for r in found.values() if r.rel not in known])
    return found, foreign


async def ascan_objects(remote: Remote) -> tuple[dict[str, Listed], list[str]]:
    """List `files/`: objects by id; keys that are not an object id are foreign."""
    prefix = f"{remote.root}/files"
    listed = await aretrying(remote, lambda: remote.alist_info(prefix), f"listing {prefix}")
    out: dict[str, Listed] = {}
    foreign: list[str] = []
    for item in listed:
        rel = _rel(remote, item.key)
        try:
            if rel is None or not rel.startswith("files/"):
                raise ValueError(rel)
            oid = oids.from_relpath(rel[len("files/") :])
            if remote.object_key(oid) != item.key:
                raise ValueError(rel)
        except (ValueError, PivotError):
            foreign.append(item.key)
            continue
        out[oid] = item
    return out, foreign


async def amanifest_files(remote: Remote, oid: str, objects: ObjectStore | None) -> set[str] | None:
    """The file ids of folder `oid`: from the local cache, else from the remote.

    A manifest read from the remote passes the checks a fetched one does (its
    bytes hash to its id, then `Manifest.from_bytes`). None when neither copy
    can be read: gc then cannot know what the folder needs.
    """
    data: bytes | None = None
    if objects is not None and objects.exists(oid):
        data = objects.read_bytes(oid)
    else:
        key = remote.object_key(oid)
        try:
            data = await aretrying(remote, lambda: remote.aget_bytes(key), key)
        except FileNotFoundError:
            return None
        if hash_bytes(data) + oids.DIR_SUFFIX != oid:
            return None
    try:
        manifest = Manifest.from_bytes(data, oid)
    except PivotError:
        return None
    return {e.hash for e in manifest.files() if e.hash is not None}
