"""A push's puts handed to a remote that commits whole batches (`Remote.batches`).

A folder remote makes a batch of new files durable with one sync of its
filesystem before linking any of them (`group_commit`), instead of an fsync
per file: the objects of a push go to it in one `aput_batch` call, then the
manifests in another, then the run-cache entries, so the contract's order
(files, manifests, entries) holds batch by batch. The bookkeeping stays the
caller's (`transfer._apush`): objects through its `sent` / `failed`, entries
straight into its `Result`.
"""

from __future__ import annotations

import os
from collections.abc import Callable

from pivot_store import runcache
from pivot_store.errors import RemoteError
from pivot_store.lockfile import Lock
from pivot_store.objects import ObjectStore
from pivot_store.remote import Remote
from pivot_store.transfer_result import Item, Result


async def put_objects(
    remote: Remote,
    objects: ObjectStore,
    items: list[Item],
    jobs: int,
    sent: Callable[[Item, int], None],
    failed: Callable[[Item, BaseException], None],
) -> None:
    """Upload `items` from the cache as one batch: `sent(item, size)` or `failed(item, e)` each.

    Not rehashed, as in the one-at-a-time push: a cache object is read-only
    and trusted by its name (`pivot verify` rehashes).
    """
    if not items:
        return
    paths = [objects.path(i.oid) for i in items]

    def done(n: int, out: bool | BaseException) -> None:
        item = items[n]
        if isinstance(out, BaseException):
            failed(item, out)
        else:
            sent(item, item.size if item.size is not None else os.stat(paths[n]).st_size)

    puts = [(remote.object_key(i.oid), p) for i, p in zip(items, paths, strict=True)]
    await remote.aput_batch(puts, jobs, done)


async def put_entries(
    remote: Remote,
    objects: ObjectStore,
    good: list[tuple[Lock, str]],
    jobs: int,
    result: Result,
    reason: Callable[[BaseException], str],
) -> None:
    """Create the run-cache entry of each `(lock, entry rel)` as one batch.

    Each rel goes to `result.entries` (created), `entries_present` (it was
    there) or `failed` (with `reason(e)`), as `transfer`'s one-at-a-time
    publish leaves them; the bytes are `runcache.entry_bytes`. Each entry's
    head (`runcache.head_rel`) is created from the same bytes; one that fails
    is in `failed` under its own rel (see `unconfirm`).
    """
    puts: list[tuple[str, bytes]] = []
    rels: list[str] = []
    heads: dict[str, str] = {}  # head rel -> its entry's rel
    for lock, rel in good:
        try:
            data = runcache.entry_bytes(lock, objects=objects)
        except RemoteError:
            raise
        except Exception as e:  # a signing key without the objects, say
            result.failed[rel] = reason(e)
            continue
        puts.append((remote.key(rel), data))
        rels.append(rel)
        heads[runcache.head_rel(lock.name, lock.fingerprint)] = rel
    # The heads in the same batch (a head is a copy: it needs the objects there
    # first, not its entry).
    count = len(puts)
    puts += [(remote.key(h), puts[rels.index(rel)][1]) for h, rel in heads.items()]
    names = rels + list(heads)

    def done(n: int, out: bool | BaseException) -> None:
        if isinstance(out, BaseException):
            result.failed[names[n]] = reason(out)
        elif n < count:
            (result.entries if out else result.entries_present).append(names[n])

    if puts:
        await remote.aput_batch(puts, jobs, done)
        unconfirm(result, heads)


def unconfirm(result: Result, heads: dict[str, str]) -> None:
    """An entry whose head failed is not reported as on the remote, so the known
    index does not settle it and the next push writes its head again (on a marked
    remote, readers find a fingerprint through its head alone)."""
    bad = {heads[h] for h in heads if h in result.failed}
    result.entries[:] = [r for r in result.entries if r not in bad]
    result.entries_present[:] = [r for r in result.entries_present if r not in bad]
