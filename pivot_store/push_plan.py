"""What a push must send: the objects every lock names, sorted into files and
directory manifests (manifests go after their files, contract order), with
the objects missing locally and the locks they leave incomplete (never
pushed: a run-cache entry must not name an object the remote lacks)."""

from __future__ import annotations

from typing import NamedTuple

from pivot_store import oid as oids
from pivot_store.lockfile import Lock
from pivot_store.manifest import read_manifest
from pivot_store.objects import ObjectStore
from pivot_store.transfer_result import Item


class Plan(NamedTuple):
    files: dict[str, Item]
    dirs: dict[str, Item]  # manifests
    missing: dict[str, str]  # oid -> why (not in the local cache)
    incomplete: set[str]  # lock names with a missing object
    children: dict[str, set[str]]  # manifest -> the files it lists


def plan(objects: ObjectStore, locks: list[Lock]) -> Plan:
    """The push plan of `locks`: an object missing locally leaves its lock incomplete."""
    files: dict[str, Item] = {}
    dirs: dict[str, Item] = {}
    missing: dict[str, str] = {}
    incomplete: set[str] = set()
    children: dict[str, set[str]] = {}

    def need(table: dict[str, Item], oid: str, size: int | None, lock: str) -> None:
        if not objects.exists(oid):
            missing[oid] = f"not in the local cache (needed by {lock}); re-materialize it"
            incomplete.add(lock)
            return
        table.setdefault(oid, Item(oid, size)).locks.add(lock)

    for lock in locks:
        for out in lock.outputs:
            if not oids.is_dir(out.hash):
                need(files, out.hash, out.size, lock.name)
                continue
            if not objects.exists(out.hash):
                need(dirs, out.hash, None, lock.name)
                continue
            need(dirs, out.hash, objects.size(out.hash), lock.name)
            entries = list(read_manifest(objects, out.hash).files())
            children[out.hash] = {e.hash for e in entries}  # type: ignore[misc]
            for e in entries:
                need(files, e.hash, e.size, lock.name)  # type: ignore[arg-type]
    return Plan(files, dirs, missing, incomplete, children)
