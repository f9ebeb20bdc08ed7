"""Push and fetch objects between the local cache and a remote.

The order is the contract's: push sends files, then directory manifests, then
run-cache entries, each only once everything it names is on the remote;
fetch reads manifests first, then their files. A whole batch runs as
coroutines on one event loop (S3: s3fs's own loop and connection pool) with
`jobs` requests in flight; transient errors are retried (`remote.aretrying`);
the first permanent error (no bucket, denied) stops the whole transfer and is
raised as it is. Any other per-object failure (missing locally, missing on the
remote, a hash mismatch) is recorded, the rest carry on, and the result says
what failed.

Each byte is hashed once: a pulled object on its way into the cache (contract
line 3), a pushed one never (the cache's read-only objects are trusted by
name; `pivot verify` is what rehashes them). Both directions feed
`KnownIndex`, so a push of what was just pushed or fetched makes no request.
Remote status (`compare`) lives in `status.py`.

Nothing here prints: progress goes to a `Progress` callback (the CLI draws it).
"""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Awaitable, Callable, Iterable

from pivot_store import oid as oids
from pivot_store import push_batch, run_lookup, runcache
from pivot_store.aio import amap
from pivot_store.download import adownload, download, is_large
from pivot_store.errors import PivotError, RemoteError
from pivot_store.lockfile import Lock
from pivot_store.manifest import read_manifest
from pivot_store.objects import ObjectStore
from pivot_store.push_plan import plan
from pivot_store.remote import (
    DEFAULT_JOBS,
    MULTIPART_CHUNK,
    RANGE_JOBS,
    Remote,
    Transient,
    aretrying,
)
from pivot_store.remote_index import KnownIndex
from pivot_store.status import RemoteStatus, compare
from pivot_store.transfer_result import Item, NullProgress, Progress, Result

__all__ = [
    "DEFAULT_JOBS",
    "Item",
    "NullProgress",
    "Progress",
    "RemoteStatus",
    "Result",
    "adownload",
    "compare",
    "download",
    "fetch",
    "push",
]


def _reason(e: BaseException) -> str:
    if isinstance(e, FileNotFoundError):
        return "not on the remote"
    return str(e) if isinstance(e, PivotError | Transient) else f"{type(e).__name__}: {e}"


# --- push ---------------------------------------------------------------------
def push(
    objects: ObjectStore,
    remote: Remote,
    locks: list[Lock],
    *,
    jobs: int = DEFAULT_JOBS,
    dry_run: bool = False,
    run_cache: bool = True,
    progress: Progress | None = None,
    verify_remote: bool = False,
    verify_every: float | None = None,
) -> Result:
    """Upload what the locks name and the remote lacks, then their run-cache entries.

    Never overwrites: objects the existence check finds are skipped, and every
    write is a create (a conditional PUT on S3). A lock whose objects are not
    all on the remote afterwards gets no run-cache entry.

    A manifest found on the remote vouches for the files it lists, because
    push uploads a manifest only after all of them and nothing here deletes
    from a remote; so an unchanged folder costs one check, not one per file.
    A push that everything in `KnownIndex` (what this cache confirmed on
    this remote before) already covers makes no request at all.
    `verify_remote=True` ignores both shortcuts, checks every object, and
    rewrites the index from what it found (and stamps the time it did);
    `verify_every` (seconds) turns it on when the last such push is older.
    """
    progress = progress or NullProgress()
    result = Result(remote.name, "push", dry_run=dry_run)
    files, dirs, missing, incomplete, children = plan(objects, locks)
    every = {**files, **dirs}
    index = KnownIndex(objects.root, remote.identity)
    verify_remote = verify_remote or (not dry_run and index.verify_due(verify_every))
    # Each lock's entry name, computed once for the whole push.
    rels = [runcache.entry_rel(lock) for lock in locks] if run_cache else []
    if not dry_run and not verify_remote and not missing:
        known = index.load()
        if every.keys() <= known and set(rels) <= known:
            # Everything was confirmed on this remote before: no request at all.
            result.present = sorted(every)
            result.complete_locks = sorted(lock.name for lock in locks)
            progress.plan(0, 0)
            return result
    remote.check(create=not dry_run, must_exist=False)
    result.failed.update(missing)
    result = remote.run(
        _apush, objects, remote, locks, files, dirs, children, incomplete, result,
        jobs, dry_run, rels, progress, verify_remote, jobs=jobs,
    )  # fmt: skip
    if not dry_run:
        confirmed = set(result.present) | set(result.transferred)
        confirmed |= set(result.entries) | set(result.entries_present)
        confirmed -= set(result.failed)
        index.add(confirmed, replace=verify_remote)
        if verify_remote:
            index.mark_verified()
    return result


async def _apush(
    objects: ObjectStore, remote: Remote, locks: list[Lock], files: dict[str, Item],
    dirs: dict[str, Item], children: dict[str, set[str]], incomplete: set[str],
    result: Result, jobs: int, dry_run: bool, rels: list[str], progress: Progress,
    verify_remote: bool,
) -> Result:  # fmt: skip
    every = {**files, **dirs}
    if verify_remote:
        have = await remote.apresent(every, jobs)
    else:
        top = {out.hash for lock in locks for out in lock.outputs if out.hash in every}
        have = await remote.apresent(top, jobs)
        vouched = {f for d in have if oids.is_dir(d) for f in children.get(d, ())}
        have |= vouched & every.keys()
        have |= await remote.apresent(every.keys() - top - vouched, jobs)
    result.present = sorted(have)
    todo = [every[o] for o in sorted(every) if o not in have]
    progress.plan(len(todo), sum(i.size or objects.size(i.oid) for i in todo))
    if dry_run:
        result.planned = todo
        return result

    def failed(item: Item, e: BaseException) -> None:
        result.failed[item.oid] = _reason(e)
        progress.done(item.oid, item.size or 0, "failed")

    def sent(item: Item, size: int) -> None:
        result.transferred.append(item.oid)
        result.nbytes += size
        progress.done(item.oid, size, "sent")

    async def upload(item: Item) -> None:
        key = remote.object_key(item.oid)
        path = objects.path(item.oid)
        try:
            size = os.stat(path).st_size
            if size < MULTIPART_CHUNK:
                # Small: one PUT from memory. Not rehashed: a cache object is
                # read-only and trusted by its name (`pivot verify` rehashes).
                with open(path, "rb") as f:
                    data = f.read()
                await aretrying(remote, lambda: remote.aput_bytes(key, data), key)
            else:
                await aretrying(remote, lambda: remote.aput_file(path, key), key)
        except RemoteError:
            raise
        except Exception as e:
            return failed(item, e)
        sent(item, size)

    async def upload_all(items: list[Item]) -> None:
        """`upload` each; a remote that commits batches (a folder) gets them in one call."""
        if remote.batches:
            await push_batch.put_objects(remote, objects, items, jobs, sent, failed)
        else:
            await amap(jobs, upload, items)

    # Large objects (multipart, RANGE_JOBS parts each) beside the small ones,
    # which keep `jobs` PUTs in flight: unlike ranged GETs (see fetch), part
    # uploads lose nothing to the overlap (against moto: 15.3 s vs 16.9 s on
    # average over four alternating runs of 512 MiB + 2,000 x 4 KiB).
    todo_files = [i for i in todo if not oids.is_dir(i.oid)]
    outcomes = await asyncio.gather(
        amap(max(1, jobs // RANGE_JOBS), upload, [i for i in todo_files if is_large(i.size)]),
        upload_all([i for i in todo_files if not is_large(i.size)]),
        return_exceptions=True,  # each stops itself on a RemoteError; none is orphaned
    )
    for outcome in outcomes:
        if isinstance(outcome, BaseException):
            raise outcome
    # A manifest goes up only once every file it lists is there.
    bad_locks = {lk for o in result.failed for i in (every.get(o),) if i for lk in i.locks}
    bad_locks |= incomplete
    await upload_all([i for i in todo if oids.is_dir(i.oid) and not i.locks & bad_locks])
    bad_locks |= {lk for o in result.failed for i in (every.get(o),) if i for lk in i.locks}
    result.transferred.sort()
    result.complete_locks = sorted(lock.name for lock in locks if lock.name not in bad_locks)
    if rels:
        good = [(lk, rel) for lk, rel in zip(locks, rels, strict=True) if lk.name not in bad_locks]

        heads = {runcache.head_rel(lk.name, lk.fingerprint): rel for lk, rel in good}

        async def publish(pair: tuple[Lock, str]) -> None:
            lock, rel = pair
            at = rel
            try:
                data = runcache.entry_bytes(lock, objects=objects)
                if await runcache.aput_record(remote, rel, data):
                    result.entries.append(rel)
                else:
                    result.entries_present.append(rel)
                at = runcache.head_rel(lock.name, lock.fingerprint)
                await runcache.aput_record(remote, at, data)
            except RemoteError:
                raise
            except Exception as e:
                result.failed[at] = _reason(e)  # the entry, or (once it is up) its head

        if good:
            result.unmarked = not await run_lookup.amark_if_new(remote)
        if remote.batches:
            await push_batch.put_entries(remote, objects, good, jobs, result, _reason)
        else:
            await amap(jobs, publish, good)
            push_batch.unconfirm(result, heads)
        result.entries.sort()
        if result.entries and have:
            await _recheck(remote, have, every, upload, jobs, result)
    return result


async def _recheck(
    remote: Remote, have: set[str], every: dict[str, Item],
    upload: Callable[[Item], Awaitable[None]], jobs: int,
    result: Result,
) -> None:  # fmt: skip
    """After writing entries: upload again what this push found present but is gone now.

    Remote gc (remote_gc.py) may delete an old object between this push's check
    and its entry; gc lists the entries again after deleting and restores what
    a new one names, so one of the two sees the other (docs/remotes.md).
    """
    gone = have - await remote.apresent(have, jobs)
    if not gone:
        return
    result.present = [o for o in result.present if o not in gone]
    await amap(jobs, upload, [every[o] for o in sorted(gone) if not oids.is_dir(o)])
    await amap(jobs, upload, [every[o] for o in sorted(gone) if oids.is_dir(o)])
    result.transferred.sort()


# --- fetch --------------------------------------------------------------------
#: `KnownIndex` is a read-modify-write file: one update at a time in a process.
_INDEX_GUARD = threading.Lock()


def fetch(
    objects: ObjectStore,
    remote: Remote,
    locks: list[Lock],
    *,
    jobs: int = DEFAULT_JOBS,
    dry_run: bool = False,
    progress: Progress | None = None,
    entries: Iterable[str] = (),
) -> Result:
    """Download what the locks name and the cache lacks: manifests, then their files.

    One object failing does not stop the others; `Result.failed` names each.
    What the fetch proved is on the remote goes into `KnownIndex`, so pushing
    the same locks straight back makes no request: every object downloaded,
    the files of every manifest downloaded (push uploads a manifest only after
    its files), and `entries`, the run-cache entry names (`runcache.entry_rel`)
    the caller has read from this remote (a run-cache hit's entry). An object
    the index claims but the remote no longer has drops the whole index: what
    else was deleted behind pivot's back is unknown, so the next push checks.
    """
    progress = progress or NullProgress()
    result = Result(remote.name, "pull", dry_run=dry_run)
    remote.check()
    seen: set[str] = set(entries)
    gone: set[str] = set()
    result = remote.run(
        _afetch, objects, remote, locks, result, jobs, dry_run, progress, seen, gone, jobs=jobs
    )
    if not dry_run:
        index = KnownIndex(objects.root, remote.identity)
        with _INDEX_GUARD:  # concurrent fetches of one process (the prefetch's) lose no keys
            if gone & index.load():
                index.drop()
            index.add(seen - set(result.failed))
    return result


async def _afetch(
    objects: ObjectStore, remote: Remote, locks: list[Lock], result: Result, jobs: int,
    dry_run: bool, progress: Progress, seen: set[str], gone: set[str],
) -> Result:  # fmt: skip
    """`fetch` on the event loop; adds to `seen` what it proved is on the remote,
    to `gone` what it proved is not."""

    async def get(item: Item) -> None:
        try:
            new = await adownload(objects, remote, item.oid, item.size)
        except RemoteError:
            raise
        except Exception as e:
            if isinstance(e, FileNotFoundError):
                gone.add(item.oid)
            result.failed[item.oid] = _reason(e)
            progress.done(item.oid, item.size or 0, "failed")
            return
        size = item.size if item.size is not None else objects.size(item.oid)
        (result.transferred if new else result.present).append(item.oid)
        result.nbytes += size if new else 0
        progress.done(item.oid, size, "received")

    # Phase 1: top-level objects (files and manifests) named by the locks.
    top: dict[str, Item] = {}
    for lock in locks:
        for out in lock.outputs:
            size = None if oids.is_dir(out.hash) else out.size
            top.setdefault(out.hash, Item(out.hash, size)).locks.add(lock.name)
    local_top = [o for o in top if objects.exists(o)]
    dirs = {o: i for o, i in top.items() if oids.is_dir(o)}
    todo = [top[o] for o in sorted(top) if o not in local_top]
    if dry_run:
        # Manifests not yet local cannot be read, so their files are not listed.
        result.planned = todo + _children_missing(objects, dirs, local_top)
        result.present = sorted(local_top)
        return result
    progress.plan(len(todo), sum(i.size or 0 for i in todo))
    await amap(jobs, get, [i for i in todo if oids.is_dir(i.oid)])
    # Phase 2: files, including those listed by the manifests now local.
    children = _children_missing(objects, dirs, list(top))
    files = [i for i in todo if not oids.is_dir(i.oid)] + children
    progress.plan(len(children), sum(i.size or 0 for i in children))
    # Large objects first and on their own (each with its parallel ranges),
    # then the small ones `jobs` at a time: against moto, mixing them made a
    # pull of 512 MiB + 2,000 x 4 KiB take 24-30 s instead of about 16 s.
    large = [i for i in files if is_large(i.size)]
    await amap(max(1, jobs // RANGE_JOBS), get, large)
    await amap(jobs, get, [i for i in files if not is_large(i.size)])
    result.present.extend(o for o in local_top if o not in result.present)
    result.present.sort()
    result.transferred.sort()
    seen.update(result.transferred)
    for oid in dirs.keys() & set(result.transferred):
        seen.update(e.hash for e in read_manifest(objects, oid).files())  # type: ignore[misc]
    failed_locks = {lk for o in result.failed for i in (top.get(o),) if i for lk in i.locks}
    failed_locks |= {lk for i in children if i.oid in result.failed for lk in i.locks}
    result.complete_locks = sorted({lock.name for lock in locks} - failed_locks)
    return result


def _children_missing(objects: ObjectStore, dirs: dict[str, Item], ready: list[str]) -> list[Item]:
    out: dict[str, Item] = {}
    for oid, item in dirs.items():
        if oid not in ready or not objects.exists(oid):
            continue
        for e in read_manifest(objects, oid).files():
            if e.hash not in out and not objects.exists(e.hash):  # type: ignore[arg-type]
                out[e.hash] = Item(e.hash, e.size)  # type: ignore[index]
            if e.hash in out:
                out[e.hash].locks |= item.locks  # type: ignore[index]
    return [out[o] for o in sorted(out)]
