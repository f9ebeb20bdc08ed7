"""Lock files: what produced an output (fingerprint parts) and what it is (hashes).

Deterministic YAML (sorted keys, no timestamps) so a lock diffs cleanly in git.
A lock that does not parse, does not validate, or comes from a newer schema is
a LockError naming the file: never a traceback, never treated as valid.

This is the only reader and writer of the format. The records are frozen
dataclasses checked by plain Python, not pydantic: `pivot status` reads every
lock, and importing pydantic cost three times a no-op status. The check is
strict (exact types, no coercion, no unknown keys): a value is accepted only as
it would be written, so the fingerprint verified on read is the one a rewrite
computes. Records built in Python are checked the same way (`__post_init__`).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Self

import yaml

from pivot_store import atomic, keys
from pivot_store import oid as oids
from pivot_store.errors import LockError
from pivot_store.hashing import hash_json
from pivot_store.lock_validation import (
    _check,
    _copy,
    _fields,
    _Invalid,
    _nested,
    _plain_json,
    _require_str,
    _type_name,
)

SCHEMA_VERSION = 2  # the newest this pivot reads; a lock says the oldest it needs
FIX = "restore it from git, or delete it and re-run the asset"
# libyaml reads a lock ~10x faster than the pure-Python loader; both give the
# same data (tests/store/test_lockfile.py).
_LOADER = yaml.CSafeLoader if yaml.__with_libyaml__ else yaml.SafeLoader


class _Record:
    __slots__ = ()

    def replace(self, **changes: Any) -> Self:
        """A copy with `changes`, checked like any new record."""
        return dataclasses.replace(self, **changes)  # type: ignore[type-var]


@dataclass(frozen=True, slots=True, kw_only=True)
class OutputRecord(_Record):
    """One stored output: its content hash and how to read it back."""

    name: str = "result"
    path: str | None = None  # workspace path, relative to the project
    hash: str
    size: int
    kind: Literal["file", "dir"] = "file"
    format: str | None = None

    def __post_init__(self) -> None:
        _require_str(self.name, "name")
        _require_str(self.path, "path", optional=True)
        if self.path is not None:
            _check(keys.validate_name, self.path, "path")
        _require_str(self.hash, "hash")
        _check(oids.validate, self.hash, "hash")
        if type(self.size) is not int or self.size < 0:
            raise _Invalid("size", f"expected an integer >= 0, got {self.size!r}")
        if type(self.kind) is not str or self.kind not in ("file", "dir"):
            raise _Invalid("kind", f"expected 'file' or 'dir', got {self.kind!r}")
        _require_str(self.format, "format", optional=True)

    @classmethod
    def from_data(cls, data: object) -> OutputRecord:
        return cls(**_fields(data, _OUTPUT_FIELDS, ("hash", "size")))

    def to_data(self) -> dict[str, Any]:
        data = {
            "name": self.name,
            "path": self.path,
            "hash": self.hash,
            "size": self.size,
            "kind": self.kind,
            "format": self.format,
        }
        return {k: v for k, v in data.items() if v is not None}


@dataclass(frozen=True, slots=True, kw_only=True)
class FingerprintParts(_Record):
    """Everything that decides whether a stored result can be reused."""

    code_version: str | None = None
    params: dict[str, Any] = field(default_factory=dict)
    deps: dict[str, str] = field(default_factory=dict)
    partition: str | None = None
    # Added in format 2; each is left out of `to_data` and `digest` while empty, so
    # a fingerprint that has none of them is what it was before they existed.
    code: dict[str, str] = field(default_factory=dict)  # reached function -> its hash
    resources: dict[str, Any] = field(default_factory=dict)  # resource key -> config
    files: dict[str, str] = field(default_factory=dict)  # declared file dep -> hash

    def __post_init__(self) -> None:
        _require_str(self.code_version, "code_version", optional=True)
        for where in ("params", "resources"):
            value = getattr(self, where)
            if type(value) is not dict:
                raise _Invalid(where, f"expected a mapping, got {_type_name(value)}")
            _plain_json(value, where)
        for where in ("deps", "code", "files"):
            value = getattr(self, where)
            if type(value) is not dict:
                raise _Invalid(where, f"expected a mapping, got {_type_name(value)}")
            for k, v in value.items():
                _require_str(k, where)
                _require_str(v, f"{where}.{k}")
        _require_str(self.partition, "partition", optional=True)
        # Copies, as pydantic made: a caller editing its dict afterwards must not
        # change the parts (and so the fingerprint) of a record already built.
        for where in ("params", "resources"):
            object.__setattr__(self, where, _copy(getattr(self, where)))
        for where in ("deps", "code", "files"):
            object.__setattr__(self, where, dict(getattr(self, where)))

    @classmethod
    def from_data(cls, data: object) -> FingerprintParts:
        """Parts from their `to_data()` (run metadata, a lock's `parts`); LockError if bad."""
        return cls(**_fields(data, _PARTS_FIELDS, ()))

    def to_data(self) -> dict[str, Any]:
        """Plain JSON, None values included (the format-2 fields only when not empty):
        what `digest` hashes (with the name)."""
        data: dict[str, Any] = {
            "code_version": self.code_version,
            "params": _copy(self.params),
            "deps": dict(self.deps),
            "partition": self.partition,
        }
        for where in _LATER_PARTS:
            value = getattr(self, where)
            if value:
                data[where] = _copy(value)
        return data

    def digest(self, name: str) -> str:
        """The fingerprint: xxh64 of the canonical JSON of the name and the parts.

        The name is included: two assets with the same code version and inputs
        must not share results.
        """
        return hash_json({"name": name, **self.to_data()})


@dataclass(frozen=True, slots=True, kw_only=True)
class Origin(_Record):
    """Who computed a result, when, and how long it took: what a hit says it saved.

    Never part of the fingerprint. On a result read from a remote it is that
    result's own claim, shown to people and never used to decide anything.
    """

    run_id: str | None = None
    deployment: str | None = None
    computed_at: float | None = None  # seconds since the epoch
    duration_s: float | None = None

    def __post_init__(self) -> None:
        _require_str(self.run_id, "run_id", optional=True)
        _require_str(self.deployment, "deployment", optional=True)
        for where in ("computed_at", "duration_s"):
            value = getattr(self, where)
            if value is None:
                continue
            if type(value) not in (int, float) or not 0 <= value < 1e12:
                raise _Invalid(where, f"expected a number of seconds, got {value!r}")

    @classmethod
    def from_data(cls, data: object) -> Origin:
        return cls(**_fields(data, _ORIGIN_FIELDS, ()))

    def to_data(self) -> dict[str, Any]:
        data = {
            "run_id": self.run_id,
            "deployment": self.deployment,
            "computed_at": self.computed_at,
            "duration_s": self.duration_s,
        }
        return {k: v for k, v in data.items() if v is not None}


@dataclass(frozen=True, slots=True, kw_only=True)
class Lock(_Record):
    # Exact int: a lock saying `schema_version: "2"` is from a newer pivot, not
    # version 2 coerced into this one. A lock is written with the oldest version
    # that reads all of it (2 only when it has `origin` or a format-2 part), so
    # an older pivot keeps reading every lock it could read before.
    schema_version: int = 1
    name: str
    fingerprint: str
    parts: FingerprintParts = field(default_factory=FingerprintParts)
    outputs: list[OutputRecord]
    origin: Origin | None = None

    def __post_init__(self) -> None:
        v = self.schema_version
        if type(v) is not int or not 1 <= v <= SCHEMA_VERSION:
            raise _Invalid(
                "schema_version", f"expected an integer up to {SCHEMA_VERSION}, got {v!r}"
            )
        if self.origin is not None and type(self.origin) is not Origin:
            raise _Invalid("origin", f"expected Origin, got {_type_name(self.origin)}")
        needs = 2 if self.origin is not None or self.parts_need_v2() else 1
        object.__setattr__(self, "schema_version", max(v, needs))
        _require_str(self.name, "name")
        _check(keys.validate_name, self.name, "name")
        _require_str(self.fingerprint, "fingerprint")
        _check(oids.validate, self.fingerprint, "fingerprint")
        if type(self.parts) is not FingerprintParts:
            raise _Invalid("parts", f"expected FingerprintParts, got {_type_name(self.parts)}")
        if type(self.outputs) is not list:
            raise _Invalid("outputs", f"expected a list, got {_type_name(self.outputs)}")
        for i, out in enumerate(self.outputs):
            if type(out) is not OutputRecord:
                raise _Invalid(f"outputs.{i}", f"expected OutputRecord, got {_type_name(out)}")
        object.__setattr__(self, "outputs", list(self.outputs))
        if self.fingerprint != self.parts.digest(self.name):
            raise _Invalid("", "its fingerprint does not match its parts")

    def parts_need_v2(self) -> bool:
        return type(self.parts) is FingerprintParts and any(
            getattr(self.parts, f) for f in _LATER_PARTS
        )

    @classmethod
    def build(
        cls,
        name: str,
        parts: FingerprintParts,
        outputs: list[OutputRecord],
        origin: Origin | None = None,
    ) -> Lock:
        return cls(
            name=name,
            fingerprint=parts.digest(name),
            parts=parts,
            outputs=list(outputs),
            origin=origin,
        )

    def output(self, name: str = "result") -> OutputRecord:
        for out in self.outputs:
            if out.name == name:
                return out
        raise LockError(f"lock {self.name!r} has no output {name!r}", "re-run the asset")

    def to_data(self) -> dict[str, Any]:
        parts = {k: v for k, v in self.parts.to_data().items() if v is not None}
        return {
            "schema_version": self.schema_version,
            "name": self.name,
            "fingerprint": self.fingerprint,
            "parts": parts,
            "outputs": [o.to_data() for o in self.outputs],
            **({"origin": self.origin.to_data()} if self.origin is not None else {}),
        }

    def to_yaml(self) -> bytes:
        data = self.to_data()
        text = yaml.safe_dump(data, sort_keys=True, default_flow_style=False, allow_unicode=True)
        if "\x85" in text:
            # PyYAML writes NEL raw inside quotes and then reads it back as a line
            # break: escape non-ASCII for such a lock so it reads back as written.
            text = yaml.safe_dump(data, sort_keys=True, default_flow_style=False)
        return text.encode("utf-8")


_OUTPUT_FIELDS = tuple(f.name for f in dataclasses.fields(OutputRecord))
_LATER_PARTS = ("code", "resources", "files")
_PARTS_FIELDS = tuple(f.name for f in dataclasses.fields(FingerprintParts))
_ORIGIN_FIELDS = tuple(f.name for f in dataclasses.fields(Origin))
_LOCK_FIELDS = tuple(f.name for f in dataclasses.fields(Lock))


def _lock_from(data: dict[str, Any]) -> Lock:
    kw = _fields(data, _LOCK_FIELDS, ("name", "fingerprint", "outputs"))
    outputs = kw["outputs"]
    if type(outputs) is not list:
        raise _Invalid("outputs", f"expected a list, got {_type_name(outputs)}")
    return Lock(
        **{
            **kw,
            "parts": _nested("parts", FingerprintParts.from_data, kw.get("parts", {})),
            "origin": None
            if kw.get("origin") is None
            else _nested("origin", Origin.from_data, kw["origin"]),
            "outputs": [
                _nested(f"outputs.{i}", OutputRecord.from_data, o) for i, o in enumerate(outputs)
            ],
        }
    )


def parse_lock(data: object, source: str) -> Lock:
    """Validate already-decoded lock data; `source` names the file in errors."""
    if type(data) is not dict:
        raise LockError(f"{source} is not a lock (expected a mapping)", FIX)
    if "schema_version" not in data:
        # Keys are written sorted, so schema_version is the last line: a lock cut
        # short anywhere (a crash, a bad merge) has lost it.
        raise LockError(f"{source} is truncated or not a lock (no schema_version)", FIX)
    version = data["schema_version"]
    if isinstance(version, int) and version > SCHEMA_VERSION:
        raise LockError(
            f"{source} has schema_version {version}, newer than this pivot ({SCHEMA_VERSION})",
            "upgrade pivot-dagster",
        )
    try:
        return _lock_from(data)
    except _Invalid as e:
        where = f"{e.where}: " if e.where else ""
        raise LockError(f"{source} is malformed: {where}{e.problem}", FIX) from None
    except RecursionError:
        raise LockError(f"{source} is not a lock (nested too deeply)", FIX) from None


def _load(path: Path) -> object:
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise LockError(f"lock {path} does not exist", "materialize the asset first") from None
    except OSError as e:
        raise LockError(f"lock {path} cannot be read: {e.strerror}", FIX) from None
    return _decode(raw, str(path))


def _decode(raw: bytes, source: str) -> object:
    try:
        return yaml.load(raw, Loader=_LOADER)  # a safe loader: plain data only
    except RecursionError:
        raise LockError(f"{source} is not a lock (nested too deeply)", FIX) from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        line = f" (line {mark.line + 1})" if mark else ""
        raise LockError(f"{source} is not valid YAML{line}", FIX) from None
    except Exception as e:  # PyYAML's constructors: `!!timestamp x`, a `\U` escape past U+10FFFF
        raise LockError(f"{source} is not valid YAML ({type(e).__name__})", FIX) from None


def read_lock(path: Path) -> Lock:
    return parse_lock(_load(path), str(path))


def lock_from_bytes(raw: bytes, source: str) -> Lock:
    """A lock from its file's bytes read elsewhere (a git blob); `source` names it."""
    return parse_lock(_decode(raw, source), source)


def write_lock(path: Path, lock: Lock) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic.write_replace(path, lock.to_yaml())
