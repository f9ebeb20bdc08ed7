"""gc: remove objects no lock references, once they are older than a grace period.

Reachability comes from every lock in `.pivot/stages/` and the local run-cache
(`.pivot/runs/`), folders included through their manifests. gc holds the
repo's exclusive lock, so an object a concurrent writer just added (under the
shared lock, before its lock file exists) is never collected, grace or not.
A malformed lock stops gc: it cannot know what that lock needs.
"""

from __future__ import annotations

import contextlib
import os
import time
from dataclasses import dataclass, field

from pivot_store import atomic
from pivot_store import oid as oids
from pivot_store.repo import Repo

LIVE_TEMP_SECONDS = 3600


@dataclass
class GcResult:
    removed: list[str] = field(default_factory=list)
    kept: int = 0
    freed: int = 0
    temps_removed: int = 0


def referenced(repo: Repo) -> set[str]:
    """Every object a lock (workspace or run-cache) needs, manifests' files included."""
    refs: set[str] = set()
    for lock in (*repo.iter_locks(), *repo.iter_run_locks()):
        for out in lock.outputs:
            refs.add(out.hash)
            if oids.is_dir(out.hash) and repo.objects.exists(out.hash):
                refs.update(e.hash for e in repo.manifest(out.hash).files())  # type: ignore[misc]
    return refs


def collect(repo: Repo, *, grace_hours: float = 24.0, dry_run: bool = False) -> GcResult:
    result = GcResult()
    cutoff = time.time() - grace_hours * 3600
    with repo.writing(exclusive=True):
        refs = referenced(repo)
        for oid in repo.objects.iter_oids():
            if oid in refs:
                result.kept += 1
                continue
            path = repo.objects.path(oid)
            try:
                st = path.stat()
            except FileNotFoundError:
                continue
            # ctime too: an object linked in from a workspace file (`add_file(move=True)`)
            # keeps that file's old mtime, but linking it set ctime to when it arrived.
            if max(st.st_mtime, st.st_ctime) > cutoff:
                result.kept += 1
                continue
            result.removed.append(oid)
            result.freed += st.st_size
            if not dry_run:
                repo.objects.remove(oid)
        result.temps_removed = _remove_temps(repo, cutoff, dry_run)
    return result


def _remove_temps(repo: Repo, cutoff: float, dry_run: bool) -> int:
    """Temp files left by killed writers; only those older than the grace period."""
    count = 0
    tmp_dir = repo.objects.tmp_dir
    if not tmp_dir.is_dir():
        return 0
    live_cutoff = min(cutoff, time.time() - LIVE_TEMP_SECONDS)
    for entry in os.scandir(tmp_dir):
        if not atomic.is_temp(entry.name):
            continue
        try:
            mtime = entry.stat().st_mtime
        except FileNotFoundError:
            continue
        # A running writer's temp (a pull holds no store lock) is kept unless it has
        # not been written for an hour: `gc --grace 0` must not fail a live writer.
        if mtime <= cutoff and not (atomic.temp_in_use(entry.name) and mtime > live_cutoff):
            count += 1
            if not dry_run:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(entry.path)
    return count
