"""A result found in a remote run-cache: looked up, checked, and its objects made local.

`find` is the remote half of `Engine.find_result`: it asks the remote for a
fingerprint's entries (newest first), refuses any this asset could not have
produced (the caller's `refuse`, see `Engine.refusal`), fetches the first
usable one's objects (each hash-checked by the store before it enters) and,
with a signing key, checks them against the entry's signed SHA-256.

The lookup itself may be made for the whole run by `prefetch` (the first
step that asks the remote resolves every later step's hit at once): a table
of (lock name, fingerprint) -> the entries the remote listed, per project
and remote, for the current run, built on its first use. `find` then uses
the table's entries instead of a LIST and a GET, and skips the fetch when
every object is already local (the prefetch fetched them and recorded them
as known on the remote). The table only saves requests: every check above
still runs in the step, on the step's own fingerprint, so a table built from
a wrong guess is never used.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pivot_store import run_lookup, runcache
from pivot_store.errors import CorruptObject
from pivot_store.lockfile import Lock
from pivot_store.repo import Repo

log = logging.getLogger("pivot")
BUILD_WAIT_S = 900.0  # the longest a step waits for the run's build to reach its lookup

#: (lock name, fingerprint) -> the remote's entries for it, in the order a step tries them
Rows = dict[tuple[str, str], run_lookup.Entries]


@dataclass
class Table:
    """One run's prefetched lookups for one (project, remote); `used` counts the hits served.

    `build`, when set, fills the table on its first use (`ready`): a run whose
    steps all hit locally never asks the remote anything. In the run's own
    process it runs in the background, adding each hit as it is looked up
    (`add`), so a step waits only for its own lookup (`get`), not the chain's.
    """

    run_id: str
    entries: Rows = field(default_factory=dict)
    #: rows read from another process's file that hold only the entries looked at there
    partial: set[tuple[str, str]] = field(default_factory=set)
    used: int = 0
    build: Callable[[Table], None] | None = None
    built: bool = False
    #: (lock name, fingerprint) -> the download of its entry's objects, still under way
    fetching: dict[tuple[str, str], Future[Any]] = field(default_factory=dict)

    #: build in a thread of the run's process (its steps run there, one after another)
    background: bool = False
    done: bool = False  # the build is over
    _cond: threading.Condition = field(
        default_factory=threading.Condition, repr=False, compare=False
    )

    def ready(self) -> Table:
        """Build the table if it is still pending (once; the builder never raises, and
        `finish` is called whatever it does). In the background when the steps share
        this process, which outlives them all; else (a step process, which exits with
        its step) before the step goes on, as its table file is what the run's other
        processes wait for."""
        with _BUILD:
            build, self.build = self.build, None
            if build is not None and not self.built:
                self.built = True
                if self.background:
                    threading.Thread(
                        target=self._run, args=(build,), name="pivot-prefetch-build", daemon=True
                    ).start()
                else:
                    self._run(build)
        return self

    def _run(self, build: Callable[[Table], None]) -> None:
        try:
            build(self)
        finally:
            self.finish()

    def add(self, found: Rows) -> None:
        """Lookups now known (their downloads already submitted: a step woken here
        finds its own in `fetching` and does not fetch it a second time)."""
        with self._cond:
            self.entries.update(found)
            self._cond.notify_all()

    def finish(self) -> None:
        with self._cond:
            self.done = True
            self._cond.notify_all()

    def get(self, name: str, fp: str) -> list[runcache.RunEntry] | None:
        """The entries for (name, fp) as soon as they are looked up; None when the
        build is over without them (not predicted, or a miss: the step asks itself)."""
        key = (name, fp)
        with self._cond:
            self._cond.wait_for(
                lambda: key in self.entries or self.done or not self.built, BUILD_WAIT_S
            )
            return self.entries.get(key)

    def wait(self, name: str, fp: str) -> None:
        """Until the prefetch's download of this result's objects is over (done or failed:
        `find` then fetches what is still missing itself)."""
        pending = self.fetching.get((name, fp))
        if pending is not None:
            pending.exception()


_TABLES: dict[tuple[str, str], Table] = {}  # (project root, remote name) -> the current run's
_GUARD = threading.Lock()
_BUILD = threading.Lock()  # a table's build is started once (its steps share tables)


def use_table(root: Path, remote: str, table: Table) -> None:
    """Make `table` the lookups `find` uses for this project and remote (replacing the
    previous run's: a process runs one run's steps at a time)."""
    with _GUARD:
        _TABLES[(str(root), remote)] = table


def table_for(root: Path, remote: str) -> Table | None:
    with _GUARD:
        return _TABLES.get((str(root), remote))


def lookup(repo: Repo, rem: Any, name: str, fp: str) -> tuple[run_lookup.Entries, Table | None]:
    """(the remote's entries for (name, fp), the run's table when they came from it)."""
    table = table_for(repo.root, rem.name)
    if table is not None:
        entries = table.ready().get(name, fp)
        if entries is not None:
            with _GUARD:
                table.used += 1
            if (name, fp) in table.partial:  # past those, the step lists the folder itself
                entries = run_lookup.Entries(
                    entries.loaded, lambda: run_lookup.list_entries(rem, name, fp)
                )
            return entries, table
    return run_lookup.lookup(rem, name, fp), None


def all_local(repo: Repo, lock: Lock) -> bool:
    """Every object the lock's outputs need is in the local cache (a folder's files too)."""
    objects = repo.objects
    for out in lock.outputs:
        if not objects.exists(out.hash):
            return False
        if any(not objects.exists(o) for o in repo.output_oids(out)):
            return False
    return True


def find(
    repo: Repo, rem: Any, name: str, fp: str, refuse: Callable[[Lock], str | None]
) -> Lock | None:
    """A remote result for the fingerprint, its objects now local; only one this asset
    could have produced (`refuse` says why not: a refused entry is a miss, logged)."""
    entries, table = lookup(repo, rem, name, fp)
    if table is not None:
        table.wait(name, fp)
    for entry in entries:
        why = refuse(entry.lock)
        if why is not None:
            log.warning("pivot: refusing run-cache entry %s of %s: %s", entry.entry_id, name, why)
            continue
        with repo.writing():
            # Through the repo: the entry is recorded as seen on the remote, so a
            # push_on_write of this hit sends nothing back (the prefetch did that).
            fetched = table is not None and all_local(repo, entry.lock)
            if not fetched and not repo.fetch([entry], remote=rem.name).ok:
                continue
            try:
                check_signed(repo, entry, rem.name)
            except CorruptObject as e:
                log.warning("pivot: refusing run-cache entry %s: %s", entry.entry_id, e)
                continue
            return entry.lock
    return None


def check_signed(repo: Repo, entry: runcache.RunEntry, remote: str) -> None:
    """With signing on, each fetched object must match the entry's signed SHA-256;
    one that does not is removed from the cache (CorruptObject names it)."""
    try:
        runcache.verify_objects(entry, repo.objects, f"{remote}:{entry.entry_id}")
    except CorruptObject as e:
        for oid in getattr(e, "oids", []):
            repo.objects.remove(oid)
        raise
