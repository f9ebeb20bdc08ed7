"""verify: rehash every object; report (and with repair, delete) corrupt ones.

Deleting a corrupt object is the repair because objects are immutable and
named by content: a later `pivot pull` or re-materialization brings the right
bytes back, while a wrong object would be served forever.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from pivot_store import oid as oids
from pivot_store.errors import ManifestError
from pivot_store.manifest import read_manifest
from pivot_store.objects import ObjectStore


@dataclass
class VerifyResult:
    checked: int = 0
    corrupt: list[str] = field(default_factory=list)
    repaired: list[str] = field(default_factory=list)


def _check(objects: ObjectStore, oid: str) -> bool:
    if not objects.verify(oid):
        return False
    if oids.is_dir(oid):
        try:
            read_manifest(objects, oid)
        except ManifestError:
            return False
    return True


def verify(objects: ObjectStore, *, repair: bool = False, jobs: int = 4) -> VerifyResult:
    result = VerifyResult()
    all_oids = list(objects.iter_oids())
    with ThreadPoolExecutor(jobs) as pool:  # xxhash releases the GIL on big buffers
        for oid, ok in zip(all_oids, pool.map(lambda o: _check(objects, o), all_oids), strict=True):
            result.checked += 1
            if not ok:
                result.corrupt.append(oid)
                if repair:
                    objects.remove(oid)
                    result.repaired.append(oid)
    return result
