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
) -> tuple[Result, list[str]] | None:
    """(the Result for the locks with nothing to push, the names of the others), or
    None when no lock is settled.

    A lock is settled when its objects (a folder's files included) and its
    run-cache entry are all in `KnownIndex` and its objects are all local; the
    caller pushes the others in full and merges the two results (`merge`), so a
    push grows with the locks that changed. `summaries` gives the locks (called
    only when this remote's index is not empty: a first push reads each lock
    once, in the full push). Not for a dry run or `verify_remote` (the caller
    decides, as `transfer.push` does, including a due `verify_every`).
    """
    index = KnownIndex(objects.root, remote.identity)
    known = index.load()
    if not known:
        return None
    locks = summaries()
    dirs = sorted({o.hash for lk in locks for o in lk.outputs if oids.is_dir(o.hash)} & known)
    local_dirs = [d for d in dirs if d not in objects.missing(dirs, valid=True)]
    files = files_of(objects, state, local_dirs)
    needs: list[tuple[LockSummary, set[str]]] = []
    for lock in locks:
        need = set()
        for out in lock.outputs:
            need.add(out.hash)
            need.update(files.get(out.hash, ()))
        if need <= known and (not run_cache or entry_rel(lock) in known):
            needs.append((lock, need))
    every = set().union(*(need for _, need in needs)) if needs else set()
    gone = objects.missing(every, valid=True)  # the full push names what is missing locally
    done = [(lock, need) for lock, need in needs if not need & gone]
    if not done:
        return None
    names = {lock.name for lock, _ in done}
    result = Result(remote.name, "push")
    result.present = sorted(set().union(*(need for _, need in done)))
    result.complete_locks = sorted(lock.name for lock, _ in done)
    rest = [lock.name for lock in locks if lock.name not in names]
    if not rest:
        (progress or NullProgress()).plan(0, 0)
    return result, rest


def merge(settled: Result, pushed: Result) -> Result:
    """`pushed` (the full push of the other locks) with the settled locks added."""
    pushed.present = sorted(set(pushed.present) | set(settled.present))
    pushed.complete_locks = sorted(set(pushed.complete_locks) | set(settled.complete_locks))
    return pushed
