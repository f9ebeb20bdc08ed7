"""Values that travel from a `cached` body to the IO manager, and the Dagster types that let them.

`CacheHit` replaces the value on a hit (the IO manager then writes only the
lock and metadata); `Deferred` replaces an input the IO manager has not read
yet (the body's wrapper reads it only on a miss). Dagster type-checks both
against the user's annotations, so `cached` swaps each annotation `T` for
`pivot_type(T)`: a `DagsterType` that accepts the marker or whatever `T`
accepts. One is made per `T` and reused, because Dagster refuses two types
with the same name.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from dagster import DagsterType, TypeCheck
from dagster._core.types.dagster_type import resolve_dagster_type

from pivot_store.lockfile import FingerprintParts, Lock


@dataclass(frozen=True)
class CacheHit:
    """The stored result that matched this run's fingerprint."""

    lock: Lock
    parts: FingerprintParts


@dataclass
class Deferred:
    """An input not yet deserialized; `resolve()` reads it once."""

    load: Callable[[], Any]
    _value: Any = field(default=None, repr=False)
    _done: bool = False

    def resolve(self) -> Any:
        if not self._done:
            self._value = self.load()
            self._done = True
        return self._value


class PivotType(DagsterType):
    """Accepts pivot's markers, otherwise checks like the wrapped annotation."""

    def __init__(self, inner: Any) -> None:
        self.inner_annotation = inner
        self.inner = resolve_dagster_type(inner)
        super().__init__(
            key=f"Pivot[{_type_name(inner)}]",
            name=f"Pivot[{_type_name(inner)}]",
            type_check_fn=self._check,
            typing_type=self.inner.typing_type,
            description=f"{self.inner.display_name}, or a pivot cache hit / deferred input",
        )

    def _check(self, context: Any, value: Any) -> TypeCheck | bool:
        if isinstance(value, CacheHit | Deferred):
            return True
        return self.inner.type_check(context, value)


_TYPES: dict[Any, PivotType] = {}
_LOCK = threading.Lock()


def pivot_type(annotation: Any) -> PivotType:
    with _LOCK:
        key = _type_name(annotation)
        if key not in _TYPES:
            _TYPES[key] = PivotType(annotation)
        return _TYPES[key]


def _type_name(annotation: Any) -> str:
    if isinstance(annotation, type):
        return f"{annotation.__module__}.{annotation.__qualname__}"
    if isinstance(annotation, DagsterType):
        return f"dagster:{annotation.key}"
    return repr(annotation)
