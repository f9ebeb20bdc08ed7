"""The prefetch's downloads: a run's predicted remote hits, fetched behind its steps.

`prefetch` hands each chosen entry to `Downloads.submit` as soon as its
lookup is in, so the first steps' objects are on their way while the rest
of the chain is looked up. Each entry is one `Repo.fetch` (every object
hash-checked on its way into the cache, as for any fetch) on a pool as wide
as the remote's `jobs` (the bound the user sets on requests in flight),
taken in level order. Measured with bench/xdeploy.py (10 x 10 MiB in two
levels, machine at load 3.5-7): only the first step ever waited (0-90 ms),
at 1, 2, 4 or 20 entries at a time alike; the lookups of the second level,
now overlapping the first level's downloads, took longer than without them.
A step waits only for its own entry (`Table.wait`), and the run's flight is
released when the last download is over (`finish`).

When the run's steps share this process (`Table.background`: they run one
after another, in the order the levels list them), at most `IN_ORDER_JOBS`
entries are downloaded at once, so each step's objects arrive in the order
the steps need them instead of all of a level's sharing the line and the
CPU: the first step then waits for one object, not for its whole level. On
bench/xdeploy.py (2 cores, quiet) B took 0.83-0.89 s at 1, 0.92-0.95 s at 2
and 4, 0.94-1.05 s at 20; 2, not 1, because on a real S3 one connection
(50-100 MB/s) would fall behind steps of ~60 ms each, while two keep ahead
(an object of 32 MiB or more is fetched in parallel ranges either way).
"""

from __future__ import annotations

import logging
import threading
import time
from concurrent import futures
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from pivot_dagster.remote_hits import Table
from pivot_store import runcache
from pivot_store.errors import PivotError
from pivot_store.remote import DEFAULT_JOBS
from pivot_store.repo import Repo

log = logging.getLogger("pivot")

IN_ORDER_JOBS = 2  # entries downloaded at once for steps that run one after another
#: (lock name, fingerprint, the entry its step will take)
Chosen = tuple[str, str, runcache.RunEntry]


class Downloads:
    """The chosen entries' objects, downloaded in the background; `table.fetching` holds
    one future per entry, which its step waits for."""

    def __init__(self, table: Table, repo: Repo, remote: str) -> None:
        self.table, self.repo, self.remote = table, repo, remote
        self.jobs = _remote_jobs(repo, remote)
        if table.background:
            self.jobs = min(self.jobs, IN_ORDER_JOBS)
        self.chosen: list[Chosen] = []
        self.started = time.perf_counter()
        self._pool: ThreadPoolExecutor | None = None

    def submit(self, hit: Chosen) -> None:
        """Start downloading one entry's objects (behind those submitted before)."""
        if self._pool is None:
            self._pool = ThreadPoolExecutor(self.jobs, "pivot-prefetch")
        name, fp, entry = hit
        self.chosen.append(hit)
        job = self._pool.submit(self.repo.fetch, [entry], remote=self.remote)
        self.table.fetching[(name, fp)] = job

    def finish(self, release: Any) -> None:
        """Call `release` (in the background) once every download is over, and log them."""
        if self._pool is None:
            release()
            return
        self._pool.shutdown(wait=False)
        table, chosen, started = self.table, list(self.chosen), self.started

        def done() -> None:
            try:
                futures.wait(list(table.fetching.values()))
            finally:
                release()
            got = [f.result() for f in table.fetching.values() if f.exception() is None]
            nbytes = sum(r.nbytes for r in got)
            failed = sum(len(r.failed) for r in got) + len(table.fetching) - len(got)
            log.info(
                "pivot: prefetch downloaded %.1f MiB for %d remote hit(s) in %.2f s%s",
                nbytes / 2**20, len(chosen), time.perf_counter() - started,
                f" ({failed} failed: their steps fetch them)" if failed else "",
            )  # fmt: skip

        threading.Thread(target=done, name="pivot-prefetch-done", daemon=True).start()


def _remote_jobs(repo: Repo, remote: str) -> int:
    """The remote's `jobs:` setting (else DEFAULT_JOBS): entries downloaded at once."""
    try:
        jobs = repo.config.remote(remote)[1].jobs
    except PivotError:
        jobs = None
    return jobs or DEFAULT_JOBS
