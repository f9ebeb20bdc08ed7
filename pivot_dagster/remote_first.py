"""When a result goes to the remote, and how a step finds upstreams only the remote has.

Write-through (`write_through`, called by the IO manager after each stored
output): with `push_on_write` the result is pushed and a failure is a warning
(the push sensor retries it); in remote-first mode it is pushed or the step fails.

Remote-first mode: every step may run on a machine that shares only the remote
(and usually the instance) with the others. With Dagster's k8s/docker
executors each step starts with an empty `.pivot/`; Celery workers keep theirs
between steps and runs. Either way the local store is only a cache and the
remote (with the instance) is the record:

- after an output is stored (or restored on a hit), its objects and run-cache
  entry are pushed before the step ends, then a "latest" pointer for its lock
  name is published (`pointers.publish_latest`: a new immutable file per
  result, newest by created_at wins, nothing overwritten);
- an upstream's lock is the one this Dagster instance records: a local lock
  is a cache of it, used only when its hash is the one the instance's latest
  materialization recorded (a long-lived Celery worker keeps its `.pivot/`
  from earlier runs, so its lock may name an older value). A lock missing or
  disagreeing locally is resolved, in order, from (1) this Dagster
  instance's latest materialization of that asset partition (its `pivot/hash`
  and `pivot/fingerprint` metadata, looked up in the remote run-cache): the
  authority inside one deployment, whose steps share the instance; then (2) the
  remote's latest pointer, for steps whose instance knows nothing (a fresh
  `DAGSTER_HOME` per step, or another deployment's results). The lock found is
  written locally; without a signing key its objects are pulled only when the
  input is loaded. With a key, the entry or pointer found keeps its signed
  SHA-256 digests, and its objects are fetched and checked against them before
  the lock is written (`Engine.fetch_signed`): an object replaced under its
  xxh64 name is removed and the step fails naming it. (A signed pickle, with
  `trust_remote_pickle` off, is left to the load, which refuses it; its lock
  is not written, so a step that trusts pickles resolves and checks it anew.)
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, Literal

from pivot_dagster import asset_keys, handoff
from pivot_dagster.engine import Engine
from pivot_store.errors import PivotError, TransferError
from pivot_store.lockfile import Lock
from pivot_store.repo import Repo
from pivot_store.runcache import RunEntry

log = logging.getLogger("pivot")


Recorded = tuple[str, str, str | None]  # fingerprint, content hash, a Path output's path


def _recorded(name: str, instance: Any) -> Recorded | Literal[False] | None:
    """(fingerprint, hash, workspace path) of the instance's latest materialization of
    `name`; None when the instance has none; False when its latest is not pivot's."""
    from dagster import AssetKey, AssetRecordsFilter

    try:
        parts, partition = asset_keys.parse_lock_name(name)
        flt = AssetRecordsFilter(
            asset_key=AssetKey(parts), asset_partitions=[partition] if partition else None
        )
        records = instance.fetch_materializations(flt, limit=1).records
    except Exception as e:  # an instance without event storage, an ops-only name
        log.debug("pivot: no instance record for %s: %s", name, e)
        return None
    if not records:
        return None
    meta = records[0].asset_materialization.metadata
    found = handoff.recorded(meta)
    return (*found, handoff.recorded_path(meta)) if found else False


def _from_instance(engine: Engine, name: str, recorded: Recorded) -> RunEntry | None:
    """The remote record of exactly the result the instance names: its run-cache
    entry (cached assets) or a latest pointer to it (plain assets have no entry)."""
    fp, h, _ = recorded
    for entry in engine.remote_entries(name, fp):
        if entry.lock.outputs and entry.lock.outputs[0].hash == h:
            return entry
    return engine.latest_entry(name, output_hash=h)


def _agrees(lock: Lock | None, recorded: Recorded) -> bool:
    return lock is not None and bool(lock.outputs) and lock.outputs[0].hash == recorded[1]


def _resolve(engine: Engine, name: str, instance: Any, local: Lock | None = None) -> Lock | None:
    # The instance is the authority: when it records a result, only that result
    # is used (never another deployment's newer pointer, never a local lock that
    # names another value: a long-lived worker's disk may be runs behind, issue 16);
    # the local lock, then pointers, decide only when the instance knows nothing.
    recorded = _recorded(name, instance) if instance is not None else None
    if recorded is False:
        log.warning("pivot: the instance's latest materialization of %s is not pivot's", name)
        return None
    if recorded is not None:
        if _agrees(local, recorded):
            return local  # the cache agrees: no remote request
        entry = _from_instance(engine, name, recorded)
        if entry is None:
            log.warning(
                "pivot: the instance records %s of %s, which the remote does not hold",
                recorded[1],
                name,
            )
            return None
    elif local is not None:
        return local
    else:
        entry = engine.latest_entry(name)
    if entry is None:
        return None
    lock = entry.lock
    why = _path_unconfirmed(lock, recorded)
    if why is not None:
        log.warning("pivot: the remote's result for %s is not used: %s", name, why)
        return None
    # Signed: objects checked now, before the lock is written (a later load in
    # another process has no digests). Unsigned: fetched, xxh64-checked, on load.
    pickled = any(o.format in (None, "pickle") for o in lock.outputs)
    if entry.digests is not None and pickled and not engine.trust_remote_pickle:
        return lock  # the load refuses it; not written, so a trusting step checks it
    engine.fetch_signed(entry)
    engine.repo.write_lock(lock)
    return lock


def _path_unconfirmed(lock: Lock, recorded: Recorded | None) -> str | None:
    """Why a remote lock's Path output may not be checked out here: where a Path asset
    writes is the instance's word (the path it recorded), never the remote's (issue 12
    item 2: a planted pointer naming `src/app.py` must not replace that file)."""
    for out in lock.outputs:
        if out.path is None:
            continue
        if recorded is None or recorded[2] is None:
            return f"a path output ({out.path!r}) the instance records no path for"
        if out.path != recorded[2]:
            return f"path {out.path!r}, but the instance records {recorded[2]!r}"
    return None


def resolve_upstream(repo: Repo, remote: str, name: str, instance: Any = None) -> Lock | None:
    """The current lock of upstream `name`: the local one when the instance agrees (or
    knows nothing), else the instance's (or the remote's latest) result, written locally."""
    return _resolve(Engine(repo, remote=remote), name, instance, repo.read_lock(name))


def resolver(engine: Engine, instance: Any) -> Callable[[str, Lock | None], Lock | None]:
    """`fingerprint.dep_hashes`' and the input load's judge of an upstream's local lock."""

    def current(name: str, local: Lock | None) -> Lock | None:
        if engine.remote is None:
            return local
        return _resolve(engine, name, instance, local)

    return current


def push_result(engine: Engine, lock: Lock, *, run_cache: bool, latest: bool) -> list[str]:
    """Push one stored result (objects, then entry, then pointer); the failures, named.

    Raises only for a remote that cannot be used at all (RemoteError).
    """
    result = engine.push([lock], run_cache=run_cache)
    failures = [f"{k}: {v}" for k, v in sorted(result.failed.items())]
    if not failures and latest:
        engine.publish_latest(lock)
    return failures


def push_or_raise(engine: Engine, lock: Lock, *, run_cache: bool) -> None:
    """Remote-first: the step fails unless its result is on the remote."""
    remote = require_remote(engine.remote)
    failures = push_result(engine, lock, run_cache=run_cache, latest=True)
    if failures:
        raise TransferError(
            f"remote-first: {lock.name} could not be pushed to {remote!r}: {failures[0]}",
            "fix the remote and re-run the step; the local result is kept",
            failures=failures,
        )


def write_through(
    engine: Engine,
    lock: Lock,
    *,
    cacheable: bool,
    remote_first: bool,
    push_on_write: bool,
    step_log: Any,
) -> None:
    """push_on_write / remote_first: the result goes to the remote before the step ends.

    `step_log` is the step's logger (Dagster's `context.log`).
    """
    remote = engine.remote
    if remote_first:
        push_or_raise(engine, lock, run_cache=cacheable)
        step_log.info(f"pivot: pushed {lock.name} to {remote!r} (remote-first)")
    elif push_on_write and remote is not None:
        try:
            failures = push_result(engine, lock, run_cache=cacheable, latest=False)
        except PivotError as e:
            failures = [str(e)]
        if failures:
            step_log.warning(f"pivot: push of {lock.name} failed: {failures[0]}")
        else:
            step_log.info(f"pivot: pushed {lock.name} to {remote!r}")


def require_remote(remote: str | None) -> str:
    if remote is None:
        raise PivotError(
            "remote-first mode needs a remote",
            "set `remote` or `remote_url` on PivotIOManager, PIVOT_REMOTE_URL in the "
            "environment, or default_remote in .pivot/config.yaml",
        )
    return remote
