"""ManifestIndex: the files each folder manifest lists, kept in the state db by its id.

gc and push need the objects of every tracked folder; parsing and validating
ten manifests of 10,000 entries each costs more than the rest of a no-op
command. A manifest's id is the hash of its bytes, so what it lists never
changes: the list (each file's id) is kept under the id, written
only after the bytes read were checked against that id (a corrupt copy in
the cache is never remembered, and a repaired one is read as it now is).
Whether the manifest is still in the cache is for the caller to check.
"""

from __future__ import annotations

import re

from pivot_store.hashing import hash_bytes
from pivot_store.index_prune import prune as prune_keys
from pivot_store.index_record import pack, unpack
from pivot_store.manifest import Manifest
from pivot_store.objects import ObjectStore
from pivot_store.state import NullState

_PREFIX = b"\x00manifest-files v1\x00"
# The value: each file's id and a newline; checked whole, in one pass, on every read.
_LIST = re.compile(r"(?:[0-9a-f]{16}(?:\.dir)?\n)*")


def files_of(objects: ObjectStore, state: NullState, oids: list[str]) -> dict[str, list[str]]:
    """The hash of every file each manifest in `oids` lists; each must be in the cache
    (ObjectMissing otherwise), a malformed one is its ManifestError."""
    found: dict[str, list[str]] = {}
    record: list[tuple[bytes, bytes]] = []
    wanted = sorted(set(oids))
    raw = state.get_many([_PREFIX + o.encode() for o in wanted])
    for oid, value in zip(wanted, raw, strict=True):
        cached = unpack(value)
        if type(cached) is str and _LIST.fullmatch(cached):
            found[oid] = cached.split("\n")[:-1]
            continue
        data = objects.read_bytes(oid)
        files: list[str] = [e.hash for e in Manifest.from_bytes(data, oid).files()]  # type: ignore[misc]
        found[oid] = files
        if hash_bytes(data) == oid[:16]:
            record.append((_PREFIX + oid.encode(), pack("".join(f + "\n" for f in files))))
    state.put_many(record)
    return found


def prune(state: NullState, oids: set[str]) -> None:
    """Drop the entries of every manifest but `oids` (gc's: all that anything names)."""
    prune_keys(state, _PREFIX, [_PREFIX + o.encode() for o in oids])
