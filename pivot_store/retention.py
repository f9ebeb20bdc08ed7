"""Which run-cache results a gc keeps: the newest K per asset (partition), and
every one younger than D days.

The run-cache holds every result ever computed, so without a policy it only
grows. A policy is the user's choice; with none, everything is kept (as
before). The lock in the work tree is not a run-cache entry and is always kept.
"""

from __future__ import annotations

import os
import time
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from pivot_store import atomic, keys
from pivot_store.lockfile import Lock, read_lock


@dataclass(frozen=True)
class KeepPolicy:
    last: int | None = None  # newest K entries per lock name
    days: float | None = None  # entries younger than this

    @property
    def keeps_all(self) -> bool:
        return self.last is None and self.days is None


@dataclass(frozen=True)
class LocalEntry:
    path: Path
    lock: Lock
    mtime: float  # when this cache got it: local and trusted, unlike an entry's claim


def local_entries(runs_dir: Path) -> list[LocalEntry]:
    """Every local run-cache entry with the time it was written here."""
    if not runs_dir.is_dir():
        return []
    found = []
    for path in sorted(runs_dir.rglob("*" + keys.LOCK_SUFFIX)):
        if atomic.is_temp(path.name):
            continue
        lock = read_lock(path)
        try:
            mtime = os.stat(path).st_mtime
        except FileNotFoundError:
            continue
        found.append(LocalEntry(path, lock, mtime))
    return found


def split(
    entries: Iterable[LocalEntry], policy: KeepPolicy, now: float | None = None
) -> tuple[list[LocalEntry], list[LocalEntry]]:
    """(kept, dropped) under `policy`; an entry is kept if either rule keeps it."""
    entries = list(entries)
    if policy.keeps_all:
        return entries, []
    now = time.time() if now is None else now
    by_name: dict[str, list[LocalEntry]] = defaultdict(list)
    for e in entries:
        by_name[e.lock.name].append(e)
    kept, dropped = [], []
    for group in by_name.values():
        group.sort(key=lambda e: e.mtime, reverse=True)
        for i, e in enumerate(group):
            recent = policy.days is not None and now - e.mtime < policy.days * 86400
            newest = policy.last is not None and i < policy.last
            (kept if recent or newest else dropped).append(e)
    return kept, dropped
