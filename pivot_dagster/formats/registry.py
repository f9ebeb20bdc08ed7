"""Choosing a format: a forced name wins, else the first handler that accepts the value.

Order matters: specific types first, pickle last. The chosen name is written in
the lock's `OutputRecord.format`, so loading looks the handler up by name and
never guesses from the bytes.
"""

from __future__ import annotations

from typing import Any

from pivot_dagster.formats.base import FormatHandler, UnserializableValue
from pivot_dagster.formats.json import CanonicalJson
from pivot_dagster.formats.numpy import NumpyNpy
from pivot_dagster.formats.parquet import ArrowParquet, PandasParquet, PolarsParquet
from pivot_dagster.formats.path import PathOutput
from pivot_dagster.formats.pickle import Pickle
from pivot_dagster.formats.raw import RawBytes
from pivot_store.errors import LockError

HANDLERS: list[FormatHandler] = [
    PandasParquet(),
    PolarsParquet(),
    ArrowParquet(),
    NumpyNpy(),
    RawBytes(),
    PathOutput(),
    CanonicalJson(),
    Pickle(),
]
BY_NAME: dict[str, FormatHandler] = {h.name: h for h in HANDLERS}


def register(handler: FormatHandler, *, first: bool = True) -> None:
    """Add a user handler; by default it is tried before the built-in ones."""
    HANDLERS.insert(0 if first else len(HANDLERS) - 1, handler)
    BY_NAME[handler.name] = handler


def by_name(name: str) -> FormatHandler:
    try:
        return BY_NAME[name]
    except KeyError:
        known = ", ".join(sorted(BY_NAME))
        raise LockError(
            f"unknown format {name!r} (known: {known})",
            "upgrade pivot-dagster or register the handler that wrote it",
        ) from None


def choose(obj: Any, forced: str | None = None) -> FormatHandler:
    """The handler for `obj`; a forced format that cannot take it is an error."""
    if forced:
        handler = by_name(forced)
        if handler.name != "pickle" and not handler.accepts(obj):
            raise UnserializableValue(
                f"format {forced!r} cannot store a {type(obj).__qualname__}",
                "change the asset's `pivot/format` metadata or return a matching value",
            )
        return handler
    for handler in HANDLERS:
        if handler.accepts(obj):
            return handler
    raise UnserializableValue(f"no format for {type(obj).__qualname__}")
