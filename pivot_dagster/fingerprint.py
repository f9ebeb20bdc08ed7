"""The fingerprint of one asset (partition): what decides whether a result can be reused.

Built from plain values (a code version, the resolved op config, the partition
key, and the upstream content hashes read from pivot's own locks), so it is
the same in every process and on a brand-new Dagster instance. The digest is
`FingerprintParts.digest(lock name)`: the lock name (asset key + partition) is
part of it, so two assets with equal code and inputs never share results.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from pivot_dagster import asset_keys
from pivot_store.lockfile import FingerprintParts
from pivot_store.repo import Repo

MISSING_DEP = "missing"


def jsonable_params(config: Any) -> dict[str, Any]:
    """Op config as plain JSON (Dagster may hand back enums, tuples or frozendicts)."""
    if config is None:
        return {}
    data = json.loads(json.dumps(config, sort_keys=True, default=str))
    return data if isinstance(data, dict) else {"value": data}


def dep_hashes(repo: Repo, deps: Iterable[tuple[Any, Any]]) -> dict[str, str]:
    """`{upstream lock name: content hash}` for (asset key, partition key) pairs.

    An upstream with no lock counts as "missing": the fingerprint then matches
    nothing stored before the upstream existed, so the body runs.
    """
    out: dict[str, str] = {}
    for key, partition in deps:
        name = asset_keys.lock_name(key, partition)
        lock = repo.read_lock(name)
        if lock is None:
            out[name] = MISSING_DEP
        else:
            out[name] = ",".join(o.hash for o in lock.outputs)
    return out


def build_parts(
    *,
    code_version: str | None,
    params: Any,
    deps: dict[str, str],
    partition: Any,
) -> FingerprintParts:
    return FingerprintParts(
        code_version=code_version,
        params=jsonable_params(params),
        deps=dict(sorted(deps.items())),
        partition=asset_keys.partition_str(partition),
    )


def has_missing(parts: FingerprintParts) -> bool:
    return MISSING_DEP in parts.deps.values()
