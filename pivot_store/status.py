"""Remote status: which objects the locks name are missing on each side.

Reads only; nothing here moves an object. `pivot status --remote` and the
Dagster integrity checks report from it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from pivot_store import oid as oids
from pivot_store.lockfile import Lock
from pivot_store.manifest import Manifest
from pivot_store.objects import ObjectStore
from pivot_store.remote import DEFAULT_JOBS, Remote, retrying


@dataclass
class RemoteStatus:
    """For `pivot status --remote`: (lock, oid) pairs missing on each side."""

    remote: str
    missing_on_remote: list[tuple[str, str]] = field(default_factory=list)
    missing_locally: list[tuple[str, str]] = field(default_factory=list)

    @property
    def in_sync(self) -> bool:
        return not self.missing_on_remote and not self.missing_locally


def compare(
    objects: ObjectStore, remote: Remote, locks: list[Lock], *, jobs: int = DEFAULT_JOBS
) -> RemoteStatus:
    """Compare the objects the locks name with the cache and the remote (reads only).

    Files of a folder whose manifest is on neither side cannot be listed; the
    manifest itself is reported instead. A manifest read from the remote is
    parsed as untrusted input (ManifestError on anything malformed) and only
    names further objects to look for.
    """
    remote.check(must_exist=False)
    owners: dict[str, set[str]] = {}
    for lock in locks:
        for out in lock.outputs:
            owners.setdefault(out.hash, set()).add(lock.name)
    manifests = [o for o in owners if oids.is_dir(o)]
    on_remote = remote.present(owners, jobs=jobs)
    for m in manifests:
        if objects.exists(m):
            data = objects.read_bytes(m)
        elif m in on_remote:
            key = remote.object_key(m)
            data = retrying(remote, lambda key=key: remote.get_bytes(key), key)
        else:
            continue
        for e in Manifest.from_bytes(data, m).files():
            owners.setdefault(e.hash, set()).update(owners[m])  # type: ignore[arg-type]
    on_remote |= remote.present(set(owners) - on_remote, jobs=jobs)
    st = RemoteStatus(remote.name)
    for oid in sorted(owners):
        for lock in sorted(owners[oid]):
            if oid not in on_remote:
                st.missing_on_remote.append((lock, oid))
            if not objects.exists(oid):
                st.missing_locally.append((lock, oid))
    return st
