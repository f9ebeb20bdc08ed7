"""Integrity as Dagster asset checks: a corrupt or missing stored value shows red.

Each check re-hashes every object the asset's locks name (all partitions,
folder files included) and, with a remote, confirms the remote holds them too.
The UI then shows the store's health next to each asset, not only in
`pivot verify`'s output.
"""

from collections.abc import Iterable, Sequence
from typing import Any

from dagster import (
    AssetCheckExecutionContext,
    AssetCheckResult,
    AssetChecksDefinition,
    AssetKey,
    AssetsDefinition,
    MetadataValue,
    asset_check,
)

from pivot_dagster import handoff
from pivot_dagster.asset_keys import asset_name
from pivot_dagster.engine import Engine
from pivot_dagster.io_manager import PivotIOManager
from pivot_store.lockfile import Lock
from pivot_store.repo import Repo

CHECK_NAME = "pivot_integrity"


def asset_locks(repo: Repo, key: AssetKey) -> list[Lock]:
    """The asset's lock, or its partitions' locks."""
    base = asset_name(key)
    names = [n for n in repo.lock_names() if n == base or n.startswith(base + "/@")]
    return list(repo.iter_locks(names)) if names else []


def audit(repo: Repo, locks: Sequence[Lock], remote: str | None = None) -> dict[str, Any]:
    """Objects checked, and which are corrupt, missing locally, or missing on the remote."""
    wanted: dict[str, str] = {}
    for lock in locks:
        for out in lock.outputs:
            for oid in repo.output_oids(out):
                wanted.setdefault(oid, lock.name)
    corrupt = sorted(o for o in wanted if repo.objects.exists(o) and not repo.objects.verify(o))
    missing = sorted(o for o in wanted if not repo.objects.exists(o))
    missing_remote: list[str] = []
    if remote is not None and locks:
        missing_remote = Engine(repo, remote=remote).missing_on_remote(list(locks))
    return {
        "checked": len(wanted),
        "corrupt": corrupt,
        "missing": missing,
        "missing_on_remote": missing_remote,
    }


def _build(key: AssetKey, io_manager_key: str, remote: str | None) -> AssetChecksDefinition:
    @asset_check(
        asset=key,
        name=CHECK_NAME,
        description="Re-hash the stored objects (and confirm the remote has them).",
        required_resource_keys={io_manager_key},
    )
    def _check(context: AssetCheckExecutionContext) -> AssetCheckResult:
        io = getattr(context.resources, io_manager_key)
        if not isinstance(io, PivotIOManager):
            return AssetCheckResult(
                passed=False, description="the asset's IO manager is not pivot's"
            )
        repo = io.get_repo()
        locks = asset_locks(repo, key)
        if not locks:
            return AssetCheckResult(
                passed=False, description="no lock: the asset has not been stored by pivot yet"
            )
        found = audit(repo, locks, remote)
        bad = found["corrupt"] + found["missing"] + found["missing_on_remote"]
        meta = {
            handoff.OBJECTS_CHECKED_KEY: found["checked"],
            handoff.LOCKS_CHECKED_KEY: len(locks),
            **{
                key: MetadataValue.json(found[k])
                for k, key in handoff.CHECK_FINDING_KEYS.items()
                if found[k]
            },
        }
        fix = "run `pivot verify --repair`, then `pivot pull` or re-materialize"
        return AssetCheckResult(
            passed=not bad,
            metadata=meta,
            description=None if not bad else f"{len(bad)} object(s) bad; {fix}",
        )

    return _check


def pivot_integrity_checks(
    assets: Iterable[AssetsDefinition | AssetKey],
    *,
    io_manager_key: str = "io_manager",
    remote: str | None = None,
) -> list[AssetChecksDefinition]:
    """One integrity check per asset key; pass `remote` to also check the remote copy."""
    keys: list[AssetKey] = []
    for a in assets:
        keys.extend(a.keys if isinstance(a, AssetsDefinition) else [a])
    return [_build(k, io_manager_key, remote) for k in keys]
