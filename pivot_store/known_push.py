"""The push that `KnownIndex` settles, decided from lock summaries.

`transfer.push` returns without a request when every object the locks name
and every run-cache entry they would get was confirmed on the remote
before, and every object is in the local cache. Deciding that from full
locks meant parsing every lock and every folder manifest; here it is decided
from `Repo.lock_summaries` (an unchanged lock is not read) and
`manifest_index` (a manifest is parsed once). Anything short of "all of it
known and local" returns None and the caller runs the full push, which
reads the locks as they are and reports what is missing: so the answer is
always the one `transfer.push` would give.
"""

from __future__ import annotations

from collections.abc import Callable

from pivot_store import keys, runcache, signing
from pivot_store import oid as oids
from pivot_store.lock_index import LockSummary
from pivot_store.manifest_index import files_of
from pivot_store.objects import ObjectStore
from pivot_store.remote import Remote
from pivot_store.remote_index import KnownIndex
from pivot_store.state import NullState
from pivot_store.transfer_result import NullProgress, Progress, Result


def entry_rel(lock: LockSummary) -> str:
    """`runcache.entry_rel` of the lock the summary was made from (tests check they agree)."""
    kid = signing.key_id()
    stem = lock.entry_id + (f"-{kid}" if kid else "")
    # The name and fingerprint were validated when the lock was read.
    return f"{keys.RUNS}/{lock.name}/{lock.fingerprint}/{stem}{runcache.SUFFIX}"


def settled(
    objects: ObjectStore,
    state: NullState,
    remote: Remote,
    summaries: Callable[[], list[LockSummary]],
    *,
    run_cache: bool = True,
    progress: Progress | None = None,
) -> Result | None:
    """The Result of a push with nothing to do, or None when one is needed.

    `summaries` gives the locks (called only when this remote's index is not
    empty: a first push reads each lock once, in the full push). Not for a dry
    run or `verify_remote` (the caller decides, as `transfer.push` does,
    including a due `verify_every`).
    """
    index = KnownIndex(objects.root, remote.identity)
    known = index.load()
    if not known:
        return None
    locks = summaries()
    top = {out.hash for lock in locks for out in lock.outputs}
    if not top <= known:
        return None
    if run_cache and not {entry_rel(lock) for lock in locks} <= known:
        return None
    dirs = [o for o in top if oids.is_dir(o)]
    if objects.missing(dirs, valid=True):
        return None
    every = set(top)
    for files in files_of(objects, state, dirs).values():
        every.update(files)
    if not every <= known or objects.missing(every, valid=True):
        return None  # the full push names what is missing locally
    result = Result(remote.name, "push")
    result.present = sorted(every)
    result.complete_locks = sorted(lock.name for lock in locks)
    (progress or NullProgress()).plan(0, 0)
    return result
