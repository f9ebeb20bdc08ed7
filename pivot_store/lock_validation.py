"""Lock validation: the strict checks every lock record passes, read or built.

Exact types, no coercion, no unknown keys: a value is accepted only as it
would be written, so the fingerprint verified on read is the one a rewrite
computes. Plain Python, not pydantic (see lockfile.py). `_Invalid` carries the
field's place; `lockfile.parse_lock` adds the file's name.
"""

from __future__ import annotations

import math
from typing import Any

from pivot_store.errors import LockError, PivotError


class _Invalid(LockError):
    """A field that does not validate; `parse_lock` adds the file and the field's place."""

    def __init__(self, where: str, problem: str) -> None:
        self.where, self.problem = where, problem
        super().__init__(
            f"invalid lock record: {where}: {problem}"
            if where
            else f"invalid lock record: {problem}"
        )


def _join(prefix: str, where: str) -> str:
    return f"{prefix}.{where}" if where else prefix


def _type_name(value: object) -> str:
    return type(value).__name__


def _require_str(value: object, where: str, optional: bool = False) -> None:
    if type(value) is str:
        _require_utf8(value, where)
    elif not (optional and value is None):
        raise _Invalid(where, f"expected a string, got {_type_name(value)}")


def _require_utf8(text: str, where: str) -> None:
    """Lone surrogates (a `\\udcff` escape) cannot be hashed or sent as JSON."""
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            raise _Invalid(where, f"{text[:40]!r} is not valid UTF-8") from None


def _check(fn: Any, value: object, where: str) -> None:
    """Run a `keys`/`oid` check, its PivotError becoming this field's error."""
    try:
        fn(value)
    except PivotError as e:
        raise _Invalid(where, e.what) from None


def _plain_json(value: object, where: str) -> None:
    """Only values JSON and YAML write back unchanged, so their digest is stable."""
    t = type(value)
    if t is str:
        _require_utf8(value, where)  # type: ignore[arg-type]
        return
    if t is int or t is bool or value is None:
        return
    if t is float:
        if not math.isfinite(value):  # type: ignore[arg-type]
            raise _Invalid(where, f"not plain JSON ({value!r})")
        return
    if t is list:
        for i, item in enumerate(value):  # type: ignore[arg-type]
            _plain_json(item, f"{where}.{i}")
        return
    if t is dict:
        for k, item in value.items():  # type: ignore[attr-defined]
            if type(k) is not str:
                raise _Invalid(where, f"not plain JSON (key {k!r})")
            _require_utf8(k, where)
            _plain_json(item, f"{where}.{k}")
        return
    raise _Invalid(where, f"not plain JSON (a {t.__name__})")


def _fields(data: object, allowed: tuple[str, ...], required: tuple[str, ...]) -> dict[str, Any]:
    """`data` as keyword arguments: a mapping with only known keys and every required one."""
    if type(data) is not dict:
        raise _Invalid("", f"expected a mapping, got {_type_name(data)}")
    unknown = [k for k in data if k not in allowed]
    if unknown:
        raise _Invalid(str(unknown[0]), "unknown field")
    for k in required:
        if k not in data:
            raise _Invalid(k, "missing")
    return data


def _nested(where: str, build: Any, data: object) -> Any:
    try:
        return build(data)
    except _Invalid as e:
        raise _Invalid(_join(where, e.where), e.problem) from None


def _copy(value: Any) -> Any:
    """A deep copy of plain JSON, so a caller's edits never reach a frozen record."""
    if type(value) is dict:
        return {k: _copy(v) for k, v in value.items()}
    if type(value) is list:
        return [_copy(v) for v in value]
    return value
