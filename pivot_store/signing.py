"""Optional signing of run-cache entries: HMAC-SHA256 with a shared secret.

xxh64 catches accidents, not attackers. Anyone who can write to the bucket can
plant an entry that points a fingerprint at their own object; with signing on,
an entry must carry a valid HMAC over its canonical bytes (which include the
lock record and therefore every object id it names) plus the SHA-256 of each
object, so a planted entry is refused and a planted object whose xxh64 was
forged to match is refused too.

The key comes from `PIVOT_SIGNING_KEY` (the secret itself) or, when
`PIVOT_SIGNING_KEY_FILE` is set, from that file. With no key, entries are
written and read unsigned, as before.
"""

from __future__ import annotations

import hashlib
import hmac
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from pivot_store.errors import CorruptObject, LockError
from pivot_store.hashing import CHUNK, canonical_json

KEY_ID_LEN = 8
SIGNATURE = "signature"
DIGESTS = "sha256"
ENV_KEY = "PIVOT_SIGNING_KEY"
ENV_KEY_FILE = "PIVOT_SIGNING_KEY_FILE"


def signing_key() -> bytes | None:
    """The configured secret, or None when signing is off."""
    path = os.environ.get(ENV_KEY_FILE)
    if path:
        try:
            key = Path(path).read_bytes().strip()
        except OSError as e:
            raise LockError(
                f"cannot read the signing key file {path}: {e.strerror}",
                f"fix {ENV_KEY_FILE} or unset it",
            ) from None
    else:
        key = os.environ.get(ENV_KEY, "").encode()
    return key or None


def key_id(key: bytes | None = None) -> str | None:
    """A short, non-secret name for the configured key (None when signing is off).

    HMAC(key, "pivot key id")[:8]: it names the signer in entry file names, so
    entries signed by a new key land beside the old ones (key rotation), and
    reveals nothing usable about the key.
    """
    key = key if key is not None else signing_key()
    if key is None:
        return None
    return hmac.new(key, b"pivot key id", hashlib.sha256).hexdigest()[:KEY_ID_LEN]


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            h.update(chunk)
    return h.hexdigest()


def _mac(doc: dict[str, Any], key: bytes) -> str:
    body = {k: v for k, v in doc.items() if k != SIGNATURE}
    return hmac.new(key, canonical_json(body), hashlib.sha256).hexdigest()


def sign(doc: dict[str, Any], key: bytes, digests: dict[str, str]) -> dict[str, Any]:
    """Add the objects' SHA-256 and the HMAC over everything else."""
    signed = {**doc, DIGESTS: dict(sorted(digests.items()))}
    signed[SIGNATURE] = _mac(signed, key)
    return signed


def verify(doc: dict[str, Any], key: bytes, source: str) -> dict[str, str]:
    """Refuse an unsigned or wrongly signed entry; return its object digests."""
    sig = doc.get(SIGNATURE)
    if not isinstance(sig, str):
        raise LockError(
            f"run-cache entry {source} is not signed",
            f"signing is on ({ENV_KEY} is set), so unsigned entries are refused; "
            "re-push it from a deployment that has the key",
        )
    if not hmac.compare_digest(sig, _mac(doc, key)):
        raise LockError(
            f"run-cache entry {source} has an invalid signature",
            "it was written with another key or tampered with; delete it from the remote",
        )
    digests = doc.get(DIGESTS)
    if not isinstance(digests, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in digests.items()
    ):
        raise LockError(f"run-cache entry {source} has no object digests", "re-push it")
    return digests


def check_objects(paths: Iterable[tuple[str, Path]], digests: dict[str, str], source: str) -> None:
    """SHA-256 each (oid, local path); any missing or different digest is refused.

    The CorruptObject carries `.oids`, the objects that failed, so the caller
    can drop them from the cache.
    """
    bad = [
        oid
        for oid, path in paths
        if (want := digests.get(oid)) is None or not hmac.compare_digest(want, sha256_file(path))
    ]
    if bad:
        err = CorruptObject(
            f"object {bad[0]} does not match the signed digest in {source}"
            + (f" (and {len(bad) - 1} more)" if len(bad) > 1 else ""),
            "the remote copy was replaced; it was removed from the cache, push it again "
            "from a trusted deployment",
        )
        err.oids = bad  # type: ignore[attr-defined]
        raise err
