"""Pruning the state db's indexes: entries of locks and outputs that are gone.

The lock, workspace, folder and manifest indexes keep an entry per lock file,
output path, folder and manifest; nothing removed them when a lock was
deleted, so they only grew. They are pruned where a command has walked every
lock anyway (a full `status`, `push`, `gc`): the live keys are what that walk
produced, and one read of the index's keys (no values, no extra walk of the
locks) finds the rest. Removing an entry can only cost a later rehash or
re-read, never change an answer: a concurrent writer's entry removed just
after it was written is rebuilt by its next use.
"""

from __future__ import annotations

from collections.abc import Iterable

from pivot_store.state import NullState


def prune(state: NullState, prefix: bytes, live: Iterable[bytes]) -> int:
    """Remove every key under `prefix` not in `live`; how many were removed."""
    keep = set(live)
    stale = [k for k in state.keys_under(prefix) if k not in keep]
    state.delete_many(stale)
    return len(stale)
