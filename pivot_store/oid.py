"""Object ids: 16 lower-case hex digits of xxh64, `.dir` for directory manifests.

Ids are validated before they become paths (dulwich's `_get_shafile_path`), so a
hostile lock or manifest can never name a file outside the cache.
"""

from __future__ import annotations

import re

from pivot_store.errors import InvalidOid

DIR_SUFFIX = ".dir"
_OID_RE = re.compile(r"[0-9a-f]{16}(\.dir)?")


def validate(oid: object) -> str:
    """Return `oid` unchanged if it is a well-formed id, else raise InvalidOid."""
    if not isinstance(oid, str) or not _OID_RE.fullmatch(oid):
        raise InvalidOid(
            f"{oid!r} is not an object id (16 lower-case hex digits, optionally '.dir')",
            "the lock or manifest that named it is corrupt; restore it from git",
        )
    return oid


def is_dir(oid: str) -> bool:
    return oid.endswith(DIR_SUFFIX)


def relpath(oid: str) -> str:
    """`abcdef...` -> `ab/cdef...`: the layout shared by the cache and remotes."""
    validate(oid)
    return f"{oid[:2]}/{oid[2:]}"


def from_relpath(rel: str) -> str:
    """`ab/cdef...` -> `abcdef...`; raises InvalidOid for anything else."""
    shard, _, rest = rel.partition("/")
    return validate(shard + rest if len(shard) == 2 else rel)
