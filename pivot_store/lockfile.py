"""Lock files: what produced an output (fingerprint parts) and what it is (hashes).

Deterministic YAML (sorted keys, no timestamps) so a lock diffs cleanly in git.
A lock that does not parse, does not validate, or comes from a newer schema is
a LockError naming the file: never a traceback, never treated as valid.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from pivot_store import atomic, keys
from pivot_store import oid as oids
from pivot_store.errors import LockError
from pivot_store.hashing import hash_json
from pivot_store.lockview import FIX, load_lock_data

SCHEMA_VERSION = 1


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class OutputRecord(_Model):
    """One stored output: its content hash and how to read it back."""

    name: str = "result"
    path: str | None = Field(default=None, description="workspace path, relative to the project")
    hash: str
    size: int = Field(ge=0)
    kind: Literal["file", "dir"] = "file"
    format: str | None = None

    @field_validator("hash")
    @classmethod
    def _hash(cls, v: str) -> str:
        return oids.validate(v)

    @field_validator("path")
    @classmethod
    def _path(cls, v: str | None) -> str | None:
        return None if v is None else keys.validate_name(v)


class FingerprintParts(_Model):
    """Everything that decides whether a stored result can be reused."""

    code_version: str | None = None
    params: dict[str, Any] = Field(default_factory=dict)
    deps: dict[str, str] = Field(default_factory=dict)
    partition: str | None = None

    def digest(self, name: str) -> str:
        """The fingerprint: xxh64 of the canonical JSON of the name and the parts.

        The name is included: two assets with the same code version and inputs
        must not share results.
        """
        return hash_json({"name": name, **self.model_dump(mode="json")})


class Lock(_Model):
    # Strict: a lock saying `schema_version: "2"` is from a newer pivot, not version 2
    # coerced into this one.
    schema_version: int = Field(default=SCHEMA_VERSION, ge=1, le=SCHEMA_VERSION, strict=True)
    name: str
    fingerprint: str
    parts: FingerprintParts = Field(default_factory=FingerprintParts)
    outputs: list[OutputRecord]

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        return keys.validate_name(v)

    @field_validator("fingerprint")
    @classmethod
    def _fp(cls, v: str) -> str:
        return oids.validate(v)

    @classmethod
    def build(cls, name: str, parts: FingerprintParts, outputs: list[OutputRecord]) -> Lock:
        return cls(name=name, fingerprint=parts.digest(name), parts=parts, outputs=outputs)

    def output(self, name: str = "result") -> OutputRecord:
        for out in self.outputs:
            if out.name == name:
                return out
        raise LockError(f"lock {self.name!r} has no output {name!r}", "re-run the asset")

    def to_data(self) -> dict[str, Any]:
        return self.model_dump(mode="json", exclude_none=True)

    def to_yaml(self) -> bytes:
        text = yaml.safe_dump(
            self.to_data(), sort_keys=True, default_flow_style=False, allow_unicode=True
        )
        if "\x85" in text:
            # PyYAML writes NEL raw inside quotes and then reads it back as a line
            # break: escape non-ASCII for such a lock so it reads back as written.
            text = yaml.safe_dump(self.to_data(), sort_keys=True, default_flow_style=False)
        return text.encode("utf-8")


def parse_lock(data: Any, source: str) -> Lock:
    """Validate already-decoded lock data; `source` names the file in errors."""
    if not isinstance(data, dict):
        raise LockError(f"{source} is not a lock (expected a mapping)", _FIX)
    if "schema_version" not in data:
        # Keys are written sorted, so schema_version is the last line: a lock cut
        # short anywhere (a crash, a bad merge) has lost it.
        raise LockError(f"{source} is truncated or not a lock (no schema_version)", _FIX)
    version = data.get("schema_version")
    if isinstance(version, int) and version > SCHEMA_VERSION:
        raise LockError(
            f"{source} has schema_version {version}, newer than this pivot ({SCHEMA_VERSION})",
            "upgrade pivot-dagster",
        )
    try:
        lock = Lock.model_validate(data)
    except ValidationError as e:
        first = e.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "<root>"
        raise LockError(f"{source} is malformed: {where}: {first['msg']}", _FIX) from None
    except Exception as e:  # validators raise PivotErrors (unsafe names, bad ids)
        raise LockError(f"{source} is malformed: {e}", _FIX) from None
    try:
        digest = lock.parts.digest(lock.name)
    except (ValueError, TypeError, RecursionError) as e:  # NaN, dates, bytes: not JSON
        raise LockError(f"{source} is malformed: parts are not plain JSON ({e})", _FIX) from None
    if lock.fingerprint != digest:
        raise LockError(f"{source} is malformed: its fingerprint does not match its parts", _FIX)
    return lock


_FIX = FIX


def read_lock(path: Path) -> Lock:
    # Shared with lockview.read_lock_view (status and checkout without pydantic).
    return parse_lock(load_lock_data(path), str(path))


def write_lock(path: Path, lock: Lock) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic.write_replace(path, lock.to_yaml())
