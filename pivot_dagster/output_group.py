"""The stored result of a multi_asset: one computation's outputs, all of them, or none.

A multi_asset's body computes its outputs together, and they may only be
reused together: a train/test split reused as the train set of one run and
the test set of another would overlap. Each output has its own lock and
run-cache entries (keyed by the step's fingerprint and the output's lock
name), so a hit needs, for every selected output, a stored result for that
fingerprint, and all of them from one computation: their origins equal (one
run, one deployment, one body start: `handoff.STARTED_KEY` makes the outputs
of one body agree). A result without an origin cannot be matched to the
others and is never part of a group. With one output selected there is
nothing to match: its first usable result is the hit, as for a single asset.

The origin is the stored result's own claim (a remote's is untrusted, like
its values): here it only narrows which results may go together, so a false
one can cost a hit, or pair what that remote's own run-cache pairs, nothing
more. Local results are searched first (the current locks preferred, so a
hit rewrites nothing), the remote only when no local group is complete;
objects of a remote group are fetched and checked (signed digests when
signing is on) before it counts.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

from pivot_dagster import explain, formats, remote_hits
from pivot_dagster.engine import LOCAL_SOURCE, LOCK_SOURCE, Engine, Found
from pivot_store import run_lookup, runcache
from pivot_store.errors import CorruptObject
from pivot_store.lockfile import FingerprintParts, Lock

log = logging.getLogger("pivot")

OriginKey = tuple[str | None, str | None, float]  # (run id, deployment, computed_at)


class Member(NamedTuple):
    """One selected output of the step: its lock name and what it could produce."""

    name: str
    expected: formats.Expected


class _Candidate(NamedTuple):
    found: Found
    entry: runcache.RunEntry | None = None  # a remote result, its objects not fetched yet


def origin_key(lock: Lock) -> OriginKey | None:
    """What names one computation: the origin's run, deployment and body start."""
    o = lock.origin
    if o is None or o.computed_at is None or (o.run_id is None and o.deployment is None):
        return None
    return (o.run_id, o.deployment, o.computed_at)


def find(
    engine: Engine, members: Sequence[Member], parts: FingerprintParts
) -> tuple[dict[str, Found] | None, dict[str, list[str]]]:
    """(a stored result per member, all from one computation, or None; and, on a miss,
    why not, per member name)."""
    if len(members) == 1:
        (m,) = members
        found = engine.find_result(m.name, parts, m.expected)
        return ({m.name: found} if found else None), {}
    cands = {m.name: _local(engine, m.name, parts.digest(m.name)) for m in members}
    group = _complete(cands)
    if group is None and engine.pull_remote is not None:
        rem = engine.repo.remote(engine.pull_remote)
        for m in members:
            cands[m.name] += _remote(engine, rem, m, parts.digest(m.name))
        group = _complete(cands)
        if group is not None and not _fetch(engine, rem, group):
            group = None
    if group is not None:
        return {name: c.found for name, c in group.items()}, {}
    return None, {m.name: _causes(engine, m.name, parts, cands) for m in members}


def _local(engine: Engine, name: str, fp: str) -> list[_Candidate]:
    """The usable local results for (name, fingerprint): the lock, then the run-cache."""
    out = []
    lock = engine.repo.read_lock(name)
    if lock is not None and lock.fingerprint == fp and explain.unusable(engine.repo, lock) is None:
        out.append(_Candidate(Found(lock, LOCK_SOURCE)))
    for cand in runcache.iter_local(engine.repo.runs_dir, name, fp):
        if explain.unusable(engine.repo, cand) is None:
            out.append(_Candidate(Found(cand, LOCAL_SOURCE)))
    return out


def _remote(engine: Engine, rem: Any, m: Member, fp: str) -> list[_Candidate]:
    """The remote's results for (name, fingerprint) this asset could have produced
    (refused ones logged and left out); their objects are fetched only if chosen."""
    out = []
    for entry in run_lookup.lookup(rem, m.name, fp):
        why = engine.refusal(entry.lock, m.expected)
        if why is not None:
            log.warning("pivot: refusing run-cache entry %s of %s: %s", entry.entry_id, m.name, why)
            continue
        out.append(_Candidate(Found(entry.lock, f"{rem.name} ({rem.url})"), entry))
    return out


def _complete(cands: Mapping[str, list[_Candidate]]) -> dict[str, _Candidate] | None:
    """A result per name, all of one computation: the group with the most current
    locks (a hit that rewrites nothing), then the most local results, then the newest."""
    by_key: dict[OriginKey, dict[str, _Candidate]] = {}
    for name, found in cands.items():
        for c in found:
            key = origin_key(c.found.lock)
            if key is not None:
                by_key.setdefault(key, {}).setdefault(name, c)
    complete = [(k, g) for k, g in by_key.items() if len(g) == len(cands)]
    if not complete:
        return None

    def rank(kg: tuple[OriginKey, dict[str, _Candidate]]) -> tuple[int, int, float]:
        group = kg[1].values()
        locks = sum(c.found.source == LOCK_SOURCE for c in group)
        return (locks, sum(c.entry is None for c in group), kg[0][2])

    return max(complete, key=rank)[1]


def _fetch(engine: Engine, rem: Any, group: Mapping[str, _Candidate]) -> bool:
    """Make a group's remote results local, as `Engine.find_result` does for one: each
    entry's objects fetched and hash-checked, and with signing on checked against the
    entry's signed digests (an object that fails is removed). False: not a hit."""
    for c in group.values():
        entry = c.entry
        if entry is None:
            continue
        with engine.repo.writing():
            if not engine.repo.fetch([entry], remote=rem.name).ok:
                return False
            try:
                remote_hits.check_signed(engine.repo, entry, rem.name)
            except CorruptObject as e:
                log.warning("pivot: refusing run-cache entry %s: %s", entry.entry_id, e)
                return False
    return True


def _causes(
    engine: Engine, name: str, parts: FingerprintParts, cands: Mapping[str, list[_Candidate]]
) -> list[str]:
    """Why `name` is computed: its own miss, or that its stored results have no partner
    from the same computation for another selected output."""
    if not cands.get(name):
        return explain.miss_causes(name, parts, explain.previous(engine.repo, name))
    mine = {origin_key(c.found.lock) for c in cands[name]} - {None}
    lacking = sorted(
        other
        for other, found in cands.items()
        if other != name and not mine & {origin_key(c.found.lock) for c in found}
    )
    return [explain.group_cause(lacking)]
