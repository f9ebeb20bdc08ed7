"""Remote gc: delete results nothing keeps, then the objects no kept result names.

A keep policy decides which run-cache entries (`runs/`) and `latest/` pointers
stay: those matching a given lock (the work tree's, or at a git ref: see
`git_history.refs_locks`), the newest `keep_last` per name (asset and partition), those
created within `keep_days`, and every record the remote stored within the
grace period (its own mtime: a concurrent push just wrote it). The newest
valid pointer of a name always stays, so gc never turns an older result into
"latest" (a stale result is the worst bug). Then objects stay when a kept
record or lock names them (folders through their manifests), when the remote
stored them within the grace, or when a manifest that stays lists them (push
trusts a manifest on the remote for its files).

Order, the reverse of push's write order (docs/format.md): pointers, then
entries, then a second listing of `runs/` and `latest/` whose new records
keep what they name, then manifests, then files, then a third listing: a
record that appeared during the deletions and names a deleted object gets it
back from the local cache (`repaired`), or is reported as `lost`. The
known-on-remote index of this cache forgets every deleted key, so a later
push uploads it again. What does not parse, or lies outside pivot's layout,
is never deleted and names nothing: it is reported (see `remote_scan`).
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from pivot_store import oid as oids
from pivot_store import pointers
from pivot_store.lockfile import Lock
from pivot_store.objects import ObjectStore
from pivot_store.remote import DEFAULT_JOBS, KnownIndex, Remote, aretrying
from pivot_store.remote_scan import Record, Snapshot, amanifest_files, ascan_objects, ascan_records


@dataclass(frozen=True)
class KeepPolicy:
    """What remote gc keeps besides the given locks (see the module doc)."""

    keep_last: int | None = None  # None and keep_days None: no policy, every result stays
    keep_days: float | None = None
    grace_hours: float = 24.0


@dataclass
class RemoteGcResult:
    remote: str
    dry_run: bool
    entries: list[str] = field(default_factory=list)  # removed (or would be), relative keys
    heads: list[str] = field(default_factory=list)  # fingerprints' heads removed with them
    pointers: list[str] = field(default_factory=list)
    objects: list[str] = field(default_factory=list)  # object ids
    nbytes: dict[str, int] = field(default_factory=lambda: dict.fromkeys(KINDS, 0))
    kept: dict[str, int] = field(default_factory=lambda: dict.fromkeys(KINDS, 0))
    unparsable: dict[str, str] = field(default_factory=dict)  # relative key -> why; left
    foreign: list[str] = field(default_factory=list)  # keys outside the layout; left
    blocked: list[str] = field(default_factory=list)  # unreadable manifests: files kept
    repaired: list[str] = field(default_factory=list)
    lost: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        counts = {"entries": self.entries, "pointers": self.pointers, "objects": self.objects}
        return {
            "remote": self.remote,
            "dry_run": self.dry_run,
            "removed": {k: {"count": len(v), "bytes": self.nbytes[k]} for k, v in counts.items()},
            "kept": self.kept,
            **counts,
            "heads": self.heads,
            "unparsable": self.unparsable,
            "foreign": self.foreign,
            "blocked": self.blocked,
            "repaired": self.repaired,
            "lost": self.lost,
        }


KINDS = ("entries", "pointers", "objects")


def collect_remote(
    remote: Remote,
    locks: Iterable[Lock],
    policy: KeepPolicy,
    *,
    objects: ObjectStore | None = None,
    dry_run: bool = False,
    jobs: int = DEFAULT_JOBS,
    now: float | None = None,
) -> RemoteGcResult:
    """Run remote gc on `remote`, keeping what `locks` and `policy` keep.

    `objects` is this project's cache: its manifests are read first, its
    known-on-remote index forgets what gc deletes, and it repairs an object a
    concurrent push named while gc deleted it.
    """
    remote.check()
    return remote.run(
        _acollect, remote, list(locks), policy, objects, dry_run, jobs,
        time.time() if now is None else now, jobs=jobs,
    )  # fmt: skip


def _keep_records(
    records: dict[str, Record], locks: list[Lock], policy: KeepPolicy, now: float
) -> set[str]:
    """The relative keys of the records the policy keeps (parsed ones only)."""
    wanted = {(lk.name, lk.fingerprint, tuple(o.hash for o in lk.outputs)) for lk in locks}
    young = now - policy.grace_hours * 3600
    recent = (
        None if policy.keep_days is None else datetime.fromtimestamp(now, UTC)
        - timedelta(days=policy.keep_days)
    )  # fmt: skip
    limit = datetime.fromtimestamp(now, UTC) + pointers.max_clock_skew()
    kept: set[str] = set()
    groups: dict[tuple[bool, str], list[Record]] = {}
    for rel, rec in records.items():
        if rec.lock is None or rec.created is None or rec.head:
            continue
        groups.setdefault((rec.pointer, rec.name), []).append(rec)
        lock = rec.lock
        if (
            rec.mtime >= young
            or (recent is not None and rec.created >= recent)
            or (lock.name, lock.fingerprint, tuple(o.hash for o in lock.outputs)) in wanted
            or (rec.stamp is not None and rec.stamp > limit)  # readers skip it for now
        ):
            kept.add(rel)
    everything = policy.keep_last is None and policy.keep_days is None
    for (is_pointer, _), recs in groups.items():
        recs.sort(key=lambda r: (r.created, r.entry_id), reverse=True)
        newest: list[str] = []
        for r in recs:
            k = policy.keep_last or 0
            if everything or (r.entry_id not in newest and len(newest) < k):
                newest.append(r.entry_id)
        kept |= {r.rel for r in recs if r.entry_id in newest}
        if is_pointer:  # the newest pointer readers would take always stays
            valid = [r for r in recs if r.stamp is not None and r.stamp <= limit]
            if valid:
                kept.add(max(valid, key=lambda r: r.stamp).rel)  # type: ignore[arg-type, return-value]
    # A head stays while any entry of its fingerprint does (readers of a marked
    # remote find that fingerprint through it alone), and with it what it names;
    # a young one stays too (a batched push may store it just before its entry).
    folders = {records[r].folder for r in kept if not records[r].pointer}
    kept |= {
        r for r, rec in records.items()
        if rec.head and rec.lock and (rec.folder in folders or rec.mtime >= young)
    }  # fmt: skip
    return kept


def _outputs(locks: Iterable[Lock]) -> set[str]:
    return {o.hash for lk in locks for o in lk.outputs}


async def _expand(
    remote: Remote, dirs: Iterable[str], objects: ObjectStore | None, snap: Snapshot,
    done: dict[str, set[str] | None],
) -> set[str]:  # fmt: skip
    """The files of folders `dirs` (and of folders among those files), memoized in `done`."""
    todo = [d for d in dirs if oids.is_dir(d) and d not in done]
    files: set[str] = set()
    while todo:
        found = await _gather_manifests(remote, todo, objects)
        done.update(found)
        todo = []
        for children in found.values():
            for c in children or ():
                files.add(c)
                if oids.is_dir(c) and c not in done:
                    todo.append(c)
    for d in dirs:
        files |= done.get(d) or set()
    return files


async def _gather_manifests(
    remote: Remote, dirs: list[str], objects: ObjectStore | None
) -> dict[str, set[str] | None]:
    from pivot_store.remote import amap

    async def one(d: str) -> tuple[str, set[str] | None]:
        return d, await amanifest_files(remote, d, objects)

    return dict(await amap(DEFAULT_JOBS, one, sorted(set(dirs))))


async def _acollect(
    remote: Remote, locks: list[Lock], policy: KeepPolicy, objects: ObjectStore | None,
    dry_run: bool, jobs: int, now: float,
) -> RemoteGcResult:  # fmt: skip
    res = RemoteGcResult(remote.name, dry_run)
    skew = pointers.max_clock_skew().total_seconds()
    snap = Snapshot()
    snap.objects, foreign = await ascan_objects(remote)
    snap.records, foreign2 = await ascan_records(remote, skew, jobs)
    if remote.server_time is not None:  # the earlier clock makes everything look younger
        now = min(now, remote.server_time)
    res.foreign = sorted(foreign + foreign2)
    res.unparsable = {r.rel: r.problem for r in snap.records.values() if r.lock is None}

    kept_recs = _keep_records(snap.records, locks, policy, now)
    drop = [r for rel, r in snap.records.items() if r.lock is not None and rel not in kept_recs]
    manifests: dict[str, set[str] | None] = {}
    roots = _outputs(locks) | _outputs(snap.records[r].lock for r in kept_recs)  # type: ignore[misc]
    young = now - policy.grace_hours * 3600
    keep = roots | {o for o, item in snap.objects.items() if item.mtime >= young}
    candidates = set(snap.objects) - keep
    candidates = await _spare(remote, candidates, keep, objects, snap, manifests, res)

    res.pointers = sorted(r.rel for r in drop if r.pointer)
    res.entries = sorted(r.rel for r in drop if not r.pointer and not r.head)
    res.heads = sorted(r.rel for r in drop if r.head)
    res.objects = sorted(candidates)
    res.nbytes["pointers"] = sum(snap.records[r].size for r in res.pointers)
    res.nbytes["entries"] = sum(snap.records[r].size for r in res.entries)
    res.kept["pointers"] = sum(1 for r in kept_recs if snap.records[r].pointer)
    res.kept["entries"] = sum(1 for r in kept_recs if not snap.records[r].pointer) - sum(
        1 for r in kept_recs if snap.records[r].head
    )
    if dry_run:
        _count_objects(res, snap)
        return res

    index = KnownIndex(objects.root, remote.identity) if objects is not None else None
    records = res.pointers + res.heads + res.entries
    await _delete(remote, [remote.key(r) for r in records])
    if index is not None:
        index.discard(records)
    # Records pushed since the first listing keep what they name.
    second, _ = await ascan_records(remote, skew, jobs, known=snap.records)
    new = [r.lock for rel, r in second.items() if rel not in snap.records and r.lock]
    if new:
        keep |= _outputs(new)  # type: ignore[arg-type]
        candidates = await _spare(remote, candidates - keep, keep, objects, snap, manifests, res)
    res.objects = sorted(candidates)
    _count_objects(res, snap)
    dirs = [remote.object_key(o) for o in res.objects if oids.is_dir(o)]
    files = [remote.object_key(o) for o in res.objects if not oids.is_dir(o)]
    if index is not None:  # forget before deleting: an interrupted gc leaves no false claim
        index.discard(res.objects)
    await _delete(remote, dirs)
    await _delete(remote, files)
    await _repair(remote, second, candidates, objects, skew, jobs, res)
    return res


async def _spare(
    remote: Remote, candidates: set[str], keep: set[str], objects: ObjectStore | None,
    snap: Snapshot, manifests: dict[str, set[str] | None], res: RemoteGcResult,
) -> set[str]:  # fmt: skip
    """`candidates` minus the files of every folder that stays (kept, or not a candidate).

    A folder that stays on the remote but whose manifest cannot be read keeps
    every file: gc cannot know which ones it lists.
    """
    while True:
        staying = {o for o in set(snap.objects) - candidates if oids.is_dir(o)}
        staying |= {o for o in keep if oids.is_dir(o)}
        needed = await _expand(remote, staying, objects, snap, manifests)
        blocked = sorted(d for d in staying if manifests.get(d) is None and d in snap.objects)
        res.blocked = blocked
        if blocked:
            needed |= {o for o in candidates if not oids.is_dir(o)}
        spared = candidates & needed
        if not spared:
            return candidates
        candidates = candidates - spared


def _count_objects(res: RemoteGcResult, snap: Snapshot) -> None:
    res.nbytes["objects"] = sum(snap.objects[o].size for o in res.objects)
    res.kept["objects"] = len(snap.objects) - len(res.objects)


async def _delete(remote: Remote, keys: list[str]) -> None:
    if keys:
        await aretrying(remote, lambda: remote.adelete_keys(keys), f"deleting {len(keys)} key(s)")


async def _repair(
    remote: Remote, seen: dict[str, Record], deleted: set[str], objects: ObjectStore | None,
    skew: float, jobs: int, res: RemoteGcResult,
) -> None:  # fmt: skip
    """A record pushed while gc deleted objects may name one: upload it again from
    this cache; else (another machine's push, which re-checks after its entry and
    may restore it itself) delete that entry, so it is a miss, not a broken hit,
    and report it. A pointer is never deleted here (an older one would become
    "latest"): it is reported."""
    if not deleted:
        return
    third, _ = await ascan_records(remote, skew, jobs, known=seen)
    for rel, rec in sorted(third.items()):
        if rel in seen or rec.lock is None:
            continue
        need = _outputs([rec.lock])
        if objects is not None:
            for d in [o for o in need if oids.is_dir(o) and objects.exists(o)]:
                need |= await amanifest_files(remote, d, objects) or set()
        missing = []
        for oid in sorted(need & deleted, key=oids.is_dir):  # files before their manifests
            key = remote.object_key(oid)
            if objects is None or not objects.exists(oid):
                if not await aretrying(remote, lambda key=key: remote.aexists(key), key):
                    missing.append(oid)
                continue
            path = objects.path(oid)
            await aretrying(remote, lambda key=key, path=path: remote.aput_file(path, key), key)
            res.repaired.append(oid)
        if missing:
            res.lost += [f"{rel}: {oid}" for oid in missing]
            if not rec.pointer:
                await _delete(remote, [remote.key(rel)])
