"""gc: remove objects nothing uses, once they are older than a grace period.

gc knows an object store, not a project: the caller says what is used
(`referenced` over every lock in `.pivot/stages/` and the local run-cache,
folders included through their manifests), the way dvc-data's `gc(odb, used)`
does. The caller holds the repo's exclusive lock (`Repo.writing(exclusive=True)`)
from computing `used` to the end of `collect`, so an object a concurrent writer
just added (under the shared lock, before its lock file exists) is never
collected, grace or not. A malformed lock stops gc while `used` is computed,
before anything is removed: gc cannot know what that lock needs.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from pivot_store import atomic
from pivot_store import oid as oids
from pivot_store.manifest import read_manifest
from pivot_store.manifest_index import files_of
from pivot_store.manifest_index import prune as prune_manifests
from pivot_store.state import NullState

if TYPE_CHECKING:
    from pivot_store.lock_index import LockSummary
    from pivot_store.lockfile import Lock
    from pivot_store.objects import ObjectStore

LIVE_TEMP_SECONDS = 3600


@dataclass
class GcResult:
    removed: list[str] = field(default_factory=list)
    kept: int = 0
    freed: int = 0
    temps_removed: int = 0
    git_refs: int | None = None  # refs whose locks were kept; None: not a git repository
    runs_removed: int = 0  # local run-cache entries outside the keep policy


def referenced(
    objects: ObjectStore, locks: Iterable[Lock | LockSummary], state: NullState | None = None
) -> set[str]:
    """Every object the locks need, the files of their folders' manifests included.

    `locks` may be full locks or `Repo.lock_summaries` (only output hashes are
    read); with `state`, each manifest is parsed once (`manifest_index`), and
    the index entries of manifests none of `locks` names are dropped: pass every
    lock (gc does), or pass no `state`.
    """
    refs: set[str] = set()
    dirs: set[str] = set()
    for lock in locks:
        for out in lock.outputs:
            refs.add(out.hash)
            if oids.is_dir(out.hash) and out.hash not in dirs and objects.exists(out.hash):
                dirs.add(out.hash)
    if state is not None:
        for files in files_of(objects, state, sorted(dirs)).values():
            refs.update(files)
        prune_manifests(state, dirs)  # entries of manifests nothing names go
        return refs
    for d in dirs:
        refs.update(e.hash for e in read_manifest(objects, d).files())  # type: ignore[misc]
    return refs


def collect(
    objects: ObjectStore,
    used: set[str],
    *,
    grace_hours: float = 24.0,
    dry_run: bool = False,
    temp_root: Path | None = None,
) -> GcResult:
    """Remove every object not in `used` that entered the cache before the grace
    period, and writers' stale temp files (the cache's, and with `temp_root` every
    one under that folder: a killed lock writer's in `stages/`); the caller holds
    the exclusive lock."""
    result = GcResult()
    cutoff = time.time() - grace_hours * 3600
    for oid in objects.iter_oids():
        if oid in used:
            result.kept += 1
            continue
        path = objects.path(oid)
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
            objects.remove(oid)
    result.temps_removed = _remove_temps(_scan(objects.tmp_dir), cutoff, dry_run)
    if temp_root is not None:
        skip = {os.path.abspath(objects.root), os.path.abspath(objects.tmp_dir)}
        result.temps_removed += _remove_temps(_walk(temp_root, skip), cutoff, dry_run)
    return result


def _scan(folder: Path) -> Iterator[os.DirEntry[str]]:
    with contextlib.suppress(FileNotFoundError, NotADirectoryError):
        yield from os.scandir(folder)


def _walk(root: Path, skip: set[str]) -> Iterator[os.DirEntry[str]]:
    """Every file under `root`, not entering `skip` (the objects: millions, no temps)."""
    for entry in _scan(root):
        if entry.is_dir(follow_symlinks=False):
            if os.path.abspath(entry.path) not in skip:
                yield from _walk(Path(entry.path), skip)
        else:
            yield entry


def _remove_temps(entries: Iterable[os.DirEntry[str]], cutoff: float, dry_run: bool) -> int:
    """Temp files left by killed writers; only those older than the grace period."""
    count = 0
    live_cutoff = min(cutoff, time.time() - LIVE_TEMP_SECONDS)
    for entry in entries:
        if not atomic.is_temp(entry.name) or not entry.is_file(follow_symlinks=False):
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
