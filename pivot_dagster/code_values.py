"""A stable text for a value the asset's code reads: a module constant, a closure
cell, an argument default.

Plain data (None, bool, int, float, str, bytes, and tuples, lists, dicts, sets
and frozensets of those; sets sorted, so the text is the same under any hash
seed) is written out in full, as are a few value types whose repr is their
value (dates, Decimal, UUID, Path, Enum members, compiled patterns), dataclass
instances and objects of the user's own classes whose attributes are plain, and
numpy arrays (dtype, shape and bytes). Anything else (a logger, a client, a
loaded model) has no stable text: `Opaque` marks it, and the code walk counts
its type's name and, for a module-level name, the statement that builds it
(see docs/fingerprint.md).
"""

from __future__ import annotations

import dataclasses
import datetime
import decimal
import enum
import fractions
import pathlib
import re
import uuid
from typing import Any

from pivot_store.hashing import hash_bytes

_SCALARS = (type(None), bool, int, float, complex, str)
_BY_REPR = (
    datetime.date,
    datetime.time,
    datetime.timedelta,
    datetime.timezone,
    decimal.Decimal,
    fractions.Fraction,
    uuid.UUID,
    pathlib.PurePath,
    range,
    slice,
)
_MAX_ITEMS = 1_000_000  # past this many items a container counts as opaque (see docs)


class Opaque(Exception):
    """The value has no stable text; the caller falls back to its type's name."""


def qualified_type(value: Any) -> str:
    t = type(value)
    return f"{t.__module__}.{t.__qualname__}"


def stable_text(value: Any, *, user_class: Any = None, code: Any = None) -> str:
    """The value's stable text; raises Opaque when it has none.

    `user_class(cls) -> bool` says whether an instance's attributes may be
    written out (objects of the user's own classes); `code(v) -> str | None`
    gives the text of a function, class or module inside a container (a
    dispatch table `{"a": fit_a}`), so the code walk follows it.
    """
    budget = [_MAX_ITEMS]
    hooks = (user_class, code)
    return _text(value, set(), budget, hooks)


def _text(value: Any, active: set[int], budget: list[int], hooks: Any) -> str:
    budget[0] -= 1
    if budget[0] < 0:
        raise Opaque("too large")
    t = type(value)
    if t in _SCALARS:
        return f"{t.__name__}:{value!r}"
    if t is bytes or t is bytearray:
        return f"{t.__name__}:{hash_bytes(bytes(value))}"
    if id(value) in active:
        raise Opaque("self-referencing")
    active.add(id(value))
    try:
        return _compound(value, active, budget, hooks)
    finally:
        active.discard(id(value))


def _compound(value: Any, active: set[int], budget: list[int], hooks: Any) -> str:
    user_class, code = hooks

    def sub(v: Any) -> str:
        if code is not None:
            marker = code(v)
            if marker is not None:
                return marker
        return _text(v, active, budget, hooks)

    name = qualified_type(value)
    if isinstance(value, tuple | list):
        return f"{name}[{','.join(sub(v) for v in value)}]"
    if isinstance(value, dict):
        items = sorted(f"{sub(k)}={sub(v)}" for k, v in value.items())
        return f"{name}{{{','.join(items)}}}"
    if isinstance(value, set | frozenset):
        return f"{name}{{{','.join(sorted(sub(v) for v in value))}}}"
    if isinstance(value, enum.Enum):
        return f"{name}.{value.name}={sub(value.value)}"
    if isinstance(value, _BY_REPR):
        return f"{name}:{value!r}"
    if isinstance(value, re.Pattern):
        return f"{name}:{sub(value.pattern)}/{value.flags}"
    if type(value).__module__ == "numpy" and hasattr(value, "tobytes"):
        return f"{name}:{value.dtype}:{getattr(value, 'shape', ())}:{hash_bytes(value.tobytes())}"
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        fields = (f"{f.name}={sub(getattr(value, f.name))}" for f in dataclasses.fields(value))
        return f"{name}({','.join(fields)})"
    if user_class is not None and user_class(type(value)) and hasattr(value, "__dict__"):
        attrs = sorted(f"{k}={sub(v)}" for k, v in vars(value).items())
        return f"{name}({','.join(attrs)})"
    raise Opaque(name)
