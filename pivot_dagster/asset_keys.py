"""AssetKey (+ partition key) <-> pivot lock names; pure functions, no I/O.

Each asset-key part becomes one segment through `keys.encode_segment`, and a
partition key becomes a final segment `@<encoded key>`. `encode_segment`
percent-encodes `@`, so a partition segment can never be confused with an
asset-key part, and a `/` inside a dynamic partition key stays inside its
segment instead of making folders. Multi-partition keys use Dagster's own
string form (`"red|2024-01-02"`, dimensions ordered by name).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pivot_store import keys
from pivot_store.errors import UnsafeName

PARTITION_MARK = "@"


def _key_parts(asset_key: Any) -> list[str]:
    parts = getattr(asset_key, "path", asset_key)
    if isinstance(parts, str) or not isinstance(parts, Sequence) or not parts:
        raise UnsafeName(f"{asset_key!r} is not an asset key", "pass an AssetKey or a list of str")
    return [str(p) for p in parts]


def partition_str(partition_key: Any) -> str | None:
    """A partition key (str or MultiPartitionKey) as the one string pivot records."""
    if partition_key is None:
        return None
    return str(partition_key)


def lock_name(asset_key: Any, partition_key: Any = None) -> str:
    """The lock name of one asset (partition): `a/b` or `a/b/@2024-01-01`."""
    name = keys.name_from_parts(_key_parts(asset_key))
    part = partition_str(partition_key)
    if part is not None:
        name = keys.validate_name(f"{name}/{PARTITION_MARK}{keys.encode_segment(part)}")
    return name


def parse_lock_name(name: str) -> tuple[list[str], str | None]:
    """Inverse of `lock_name`: (asset key parts, partition key or None)."""
    segments = keys.validate_name(name).split("/")
    partition = None
    if segments[-1].startswith(PARTITION_MARK):
        partition = keys.decode_segment(segments.pop()[len(PARTITION_MARK) :])
        if not segments:
            raise UnsafeName(f"lock name {name!r} has a partition but no asset key")
    return [keys.decode_segment(s) for s in segments], partition


def asset_name(asset_key: Any) -> str:
    """The unpartitioned name: the folder that holds an asset's partition locks."""
    return lock_name(asset_key)


def run_prefix(asset_key: Any, partition_key: Any, fingerprint: str) -> str:
    """`runs/<lock name>/<fingerprint>`: the run-cache folder, local or remote."""
    return keys.run_prefix(lock_name(asset_key, partition_key), fingerprint)
