"""Signing (HMAC-SHA256) of run-cache entries: pure functions."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from pivot_store import signing
from pivot_store.errors import CorruptObject, LockError

KEY = b"s3cret"


def _doc() -> dict:
    return {"schema_version": 1, "created_at": "2026-01-01T00:00:00.000000Z", "lock": {"x": 1}}


def test_sign_then_verify_returns_digests() -> None:
    signed = signing.sign(_doc(), KEY, {"b" * 16: "d2", "a" * 16: "d1"})
    assert signing.verify(signed, KEY, "e") == {"a" * 16: "d1", "b" * 16: "d2"}


@pytest.mark.parametrize(
    "mutate",
    [
        lambda d: d.pop(signing.SIGNATURE),
        lambda d: d.__setitem__("created_at", "2027-01-01T00:00:00.000000Z"),
        lambda d: d["lock"].__setitem__("x", 2),
        lambda d: d[signing.DIGESTS].__setitem__("a" * 16, "evil"),
        lambda d: d.__setitem__(signing.SIGNATURE, "0" * 64),
    ],
    ids=["unsigned", "time", "record", "digest", "forged"],
)
def test_any_change_is_refused(mutate) -> None:
    signed = signing.sign(_doc(), KEY, {"a" * 16: "d1"})
    mutate(signed)
    with pytest.raises(LockError, match="entry e"):
        signing.verify(signed, KEY, "e")


def test_another_key_is_refused() -> None:
    signed = signing.sign(_doc(), KEY, {})
    with pytest.raises(LockError, match="invalid signature"):
        signing.verify(signed, b"other", "e")


def test_key_from_env_and_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(signing.ENV_KEY, raising=False)
    monkeypatch.delenv(signing.ENV_KEY_FILE, raising=False)
    assert signing.signing_key() is None
    monkeypatch.setenv(signing.ENV_KEY, "abc")
    assert signing.signing_key() == b"abc"
    f = tmp_path / "k"
    f.write_bytes(b"from-file\n")
    monkeypatch.setenv(signing.ENV_KEY_FILE, str(f))
    assert signing.signing_key() == b"from-file"
    monkeypatch.setenv(signing.ENV_KEY_FILE, str(tmp_path / "missing"))
    with pytest.raises(LockError, match="signing key file"):
        signing.signing_key()


def test_check_objects_refuses_a_replaced_object(tmp_path: Path) -> None:
    obj = tmp_path / "obj"
    obj.write_bytes(b"good bytes")
    good = hashlib.sha256(b"good bytes").hexdigest()
    signing.check_objects([("a" * 16, obj)], {"a" * 16: good}, "entry")
    obj.write_bytes(b"same xxh64 name, other bytes")
    with pytest.raises(CorruptObject, match="does not match the signed digest"):
        signing.check_objects([("a" * 16, obj)], {"a" * 16: good}, "entry")
    with pytest.raises(CorruptObject):
        signing.check_objects([("b" * 16, obj)], {"a" * 16: good}, "entry")
