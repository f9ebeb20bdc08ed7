"""Remote-first mode: every step may run on an empty machine that shares only the remote.

With Dagster's k8s/docker/celery executors each step starts with an empty
`.pivot/`, so the local store is only a cache and the remote is the record:

- after an output is stored (or restored on a hit), its objects and run-cache
  entry are pushed before the step ends, then a "latest" pointer for its lock
  name is published (`remote_hook.publish_latest`: a new immutable file per
  result, newest by created_at wins, nothing overwritten);
- an upstream lock missing locally is resolved, in order, from (1) this Dagster
  instance's latest materialization of that asset partition (its `pivot/hash`
  and `pivot/fingerprint` metadata, looked up in the remote run-cache): the
  authority inside one deployment, whose steps share the instance; then (2) the
  remote's latest pointer, for steps whose instance knows nothing (a fresh
  `DAGSTER_HOME` per step, or another deployment's results). The lock found is
  written locally; its objects are pulled only when the input is loaded.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from pivot_dagster import asset_keys, remote_hook
from pivot_store import runcache
from pivot_store.errors import PivotError, TransferError
from pivot_store.lockfile import Lock
from pivot_store.repo import Repo

log = logging.getLogger("pivot")


def _from_instance(repo: Repo, remote: str, name: str, instance: Any) -> Lock | None:
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
    fp, h = meta.get("pivot/fingerprint"), meta.get("pivot/hash")
    if fp is None or h is None:
        return None
    rem = remote_hook._remote(repo, remote)
    for entry in runcache.lookup(rem, name, fp.value):
        if entry.lock.outputs and entry.lock.outputs[0].hash == h.value:
            return entry.lock
    return None


def resolve_upstream(repo: Repo, remote: str, name: str, instance: Any = None) -> Lock | None:
    """The current lock of upstream `name` from the instance or the remote; written locally."""
    lock = _from_instance(repo, remote, name, instance) if instance is not None else None
    if lock is None:
        lock = remote_hook.latest_lock(repo, remote, name)
    if lock is not None:
        repo.write_lock(lock)
    return lock


def fallback(repo: Repo, remote: str | None, instance: Any) -> Callable[[str], Lock | None]:
    """`fingerprint.dep_hashes`' fallback for a missing upstream lock."""

    def find(name: str) -> Lock | None:
        if remote is None:
            return None
        return resolve_upstream(repo, remote, name, instance)

    return find


def push_result(repo: Repo, remote: str, lock: Lock, *, run_cache: bool, latest: bool) -> list[str]:
    """Push one stored result (objects, then entry, then pointer); the failures, named.

    Raises only for a remote that cannot be used at all (RemoteError).
    """
    result = remote_hook.push_locks(repo, remote, [lock], run_cache=run_cache)
    failures = [f"{k}: {v}" for k, v in sorted(result.failed.items())]
    if not failures and latest:
        remote_hook.publish_latest(repo, remote, lock)
    return failures


def push_or_raise(repo: Repo, remote: str, lock: Lock, *, run_cache: bool) -> None:
    """Remote-first: the step fails unless its result is on the remote."""
    failures = push_result(repo, remote, lock, run_cache=run_cache, latest=True)
    if failures:
        raise TransferError(
            f"remote-first: {lock.name} could not be pushed to {remote!r}: {failures[0]}",
            "fix the remote and re-run the step; the local result is kept",
            failures=failures,
        )


def require_remote(remote: str | None) -> str:
    if remote is None:
        raise PivotError(
            "remote-first mode needs a remote",
            "set `remote` on PivotIOManager or default_remote in .pivot/config.yaml",
        )
    return remote
