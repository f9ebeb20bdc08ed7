"""pivot_store: a framework-free content-addressed store (xxh64 objects, locks, remotes).

Public names are re-exported lazily (PEP 562) so `pivot --help`, which imports
this package, does not pay for pydantic, yaml or lmdb.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "Repo": "pivot_store.repo",
    "StatusRow": "pivot_store.repo",
    "ObjectStore": "pivot_store.objects",
    "Added": "pivot_store.objects",
    "Lock": "pivot_store.lockfile",
    "OutputRecord": "pivot_store.lockfile",
    "FingerprintParts": "pivot_store.lockfile",
    "Origin": "pivot_store.lockfile",
    "read_lock": "pivot_store.lockfile",
    "write_lock": "pivot_store.lockfile",
    "Config": "pivot_store.config",
    "RemoteConfig": "pivot_store.config",
    "Manifest": "pivot_store.manifest",
    "KeepPolicy": "pivot_store.remote_gc",
    "RemoteGcResult": "pivot_store.remote_gc",
    "collect_remote": "pivot_store.remote_gc",
    "HeadsResult": "pivot_store.run_heads",
    "upgrade_remote": "pivot_store.run_heads",
    "Checkout": "pivot_store.checkout",
    "State": "pivot_store.state",
    "NullState": "pivot_store.state",
    "hash_bytes": "pivot_store.hashing",
    "hash_file": "pivot_store.hashing",
    "hash_json": "pivot_store.hashing",
    "canonical_json": "pivot_store.hashing",
    "PivotError": "pivot_store.errors",
    "InvalidOid": "pivot_store.errors",
    "UnsafeName": "pivot_store.errors",
    "ObjectMissing": "pivot_store.errors",
    "CorruptObject": "pivot_store.errors",
    "ConfigError": "pivot_store.errors",
    "LockError": "pivot_store.errors",
    "ManifestError": "pivot_store.errors",
    "NotAProject": "pivot_store.errors",
    "TrackError": "pivot_store.errors",
    "CheckoutError": "pivot_store.errors",
    "RemoteError": "pivot_store.errors",
    "TransferError": "pivot_store.errors",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'pivot_store' has no attribute {name!r}")
