"""The single flights a step holds between its body and its IO manager.

`cached` claims the fingerprint's flight (`pivot_store.flight`) before the
body runs and the IO manager lets it go once the result's lock is written:
the two halves run in one step process but in different calls, so the held
flight waits here, by (project, lock name).

A step whose output never reached `handle_output` (a failure between the
body and the IO manager) would keep its flight for the life of the process.
In one process Dagster runs steps one after another, so a flight still held
when another step claims one is such a leftover, and is let go.
"""

from __future__ import annotations

import threading

from pivot_store import flight, keys
from pivot_store.repo import Repo

_HELD: dict[tuple[str, str], tuple[str, flight.Flight]] = {}
_GUARD = threading.Lock()


def claim(repo: Repo, name: str, fingerprint: str, step: str, timeout_s: float) -> flight.Flight:
    """Claim `fingerprint` for the step `step` (its run id and step key)."""
    with _GUARD:
        stale = [k for k, (owner, _) in _HELD.items() if owner != step]
        leftovers = [_HELD.pop(k)[1] for k in stale]
    for f in leftovers:
        f.release()
    got = flight.claim(keys.scratch_dir(repo.pivot_dir, "flight"), fingerprint, timeout_s)
    if got.held:
        with _GUARD:
            _HELD[(str(repo.root), name)] = (step, got)
    return got


def release(repo: Repo, name: str) -> None:
    """Let the flight for `name` go (its lock is written, or the body failed)."""
    with _GUARD:
        held = _HELD.pop((str(repo.root), name), None)
    if held is not None:
        held[1].release()
