"""Read a lock for `status` and `checkout` without pydantic.

Importing pydantic and building the lock and config models costs about 100 ms,
three times a no-op `pivot status` itself. `read_lock_view` checks a lock with
plain Python and returns light frozen records with the same fields as
`lockfile.Lock` / `OutputRecord`. The check only ever *accepts* a lock whose
every value already has its exact type (no coercion, nothing unusual); anything
else, valid or not, goes to `lockfile.parse_lock`, so a malformed lock is
refused with exactly the same LockError as before and an unusual valid one
gets the model's own reading. tests/store/test_repo.py checks that every
lock this accepts, the model accepts with the same values.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from pivot_store import keys
from pivot_store import oid as oids
from pivot_store.errors import LockError, PivotError
from pivot_store.hashing import hash_json

SCHEMA_VERSION = 1
FIX = "restore it from git, or delete it and re-run the asset"
_OUTPUT_KEYS = frozenset({"name", "path", "hash", "size", "kind", "format"})
_PARTS_KEYS = frozenset({"code_version", "params", "deps", "partition"})
_LOCK_KEYS = frozenset({"schema_version", "name", "fingerprint", "parts", "outputs"})


@dataclass(frozen=True)
class OutputView:
    name: str
    path: str | None
    hash: str
    size: int
    kind: str
    format: str | None


@dataclass(frozen=True)
class LockView:
    name: str
    fingerprint: str
    outputs: list[OutputView] = field(default_factory=list)
    schema_version: int = SCHEMA_VERSION


def load_lock_data(path: Path) -> Any:
    """The YAML of a lock file, or the LockError `read_lock` has always raised."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise LockError(f"lock {path} does not exist", "materialize the asset first") from None
    except OSError as e:
        raise LockError(f"lock {path} cannot be read: {e.strerror}", FIX) from None
    try:
        return yaml.safe_load(raw)
    except RecursionError:
        raise LockError(f"{path} is not a lock (nested too deeply)", FIX) from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        line = f" (line {mark.line + 1})" if mark else ""
        raise LockError(f"{path} is not valid YAML{line}", FIX) from None


def read_lock_view(path: Path) -> Any:
    """A LockView, or (for anything the plain check does not accept) the pydantic Lock."""
    data = load_lock_data(path)
    view = view_of(data)
    if view is not None:
        return view
    from pivot_store.lockfile import parse_lock

    return parse_lock(data, str(path))


def view_of(data: Any) -> LockView | None:
    """LockView when `data` is a lock the model would accept as it is; else None."""
    try:
        return _view(data)
    except (PivotError, ValueError, TypeError, RecursionError):
        return None


def _str(v: Any) -> bool:
    return type(v) is str


def _opt_str(v: Any) -> bool:
    return v is None or type(v) is str


def _json_plain(v: Any) -> bool:
    """Only values the model's JSON dump leaves unchanged (so the digests agree)."""
    t = type(v)
    if t is str or t is int or t is bool or v is None:
        return True
    if t is float:
        return math.isfinite(v)
    if t is list:
        return all(_json_plain(x) for x in v)
    if t is dict:
        return all(type(k) is str and _json_plain(x) for k, x in v.items())
    return False


def _view(data: Any) -> LockView | None:
    if type(data) is not dict or not data.keys() <= _LOCK_KEYS:
        return None
    if data.get("schema_version") != SCHEMA_VERSION or type(data["schema_version"]) is not int:
        return None
    name, fingerprint = data.get("name"), data.get("fingerprint")
    if not _str(name) or not _str(fingerprint):
        return None
    keys.validate_name(name)
    oids.validate(fingerprint)
    parts = data.get("parts", {})
    if type(parts) is not dict or not parts.keys() <= _PARTS_KEYS:
        return None
    code_version = parts.get("code_version")
    partition = parts.get("partition")
    params = parts.get("params", {})
    deps = parts.get("deps", {})
    if not (_opt_str(code_version) and _opt_str(partition)):
        return None
    if type(params) is not dict or not _json_plain(params):
        return None
    if type(deps) is not dict or not all(_str(k) and _str(v) for k, v in deps.items()):
        return None
    digest = hash_json(
        {
            "name": name,
            "code_version": code_version,
            "params": params,
            "deps": deps,
            "partition": partition,
        }
    )
    if digest != fingerprint:
        return None
    raw_outputs = data.get("outputs")
    if type(raw_outputs) is not list:
        return None
    outputs = []
    for o in raw_outputs:
        if type(o) is not dict or not o.keys() <= _OUTPUT_KEYS:
            return None
        out_name = o.get("name", "result")
        path = o.get("path")
        h = o.get("hash")
        size = o.get("size")
        kind = o.get("kind", "file")
        fmt = o.get("format")
        if not (_str(out_name) and _opt_str(path) and _str(h) and _opt_str(fmt)):
            return None
        if type(size) is not int or size < 0 or kind not in ("file", "dir") or not _str(kind):
            return None
        oids.validate(h)
        if path is not None:
            keys.validate_name(path)
        outputs.append(OutputView(out_name, path, h, size, kind, fmt))
    return LockView(name, fingerprint, outputs)
