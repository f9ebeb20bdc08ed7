"""Pickle: the fallback for values no other format takes.

Loading a pickle runs code, so a pickle that came from a remote is refused
unless the IO manager's `trust_remote_pickle` is set (checked by the caller).
"""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any, BinaryIO

from pivot_dagster.formats.base import FormatHandler, UnserializableValue

PROTOCOL = 5


class Pickle(FormatHandler):
    name = "pickle"

    def accepts(self, obj: Any) -> bool:
        return True

    def dump(self, obj: Any, f: BinaryIO) -> None:
        try:
            pickle.dump(obj, f, protocol=PROTOCOL)
        except (pickle.PicklingError, TypeError, AttributeError) as e:
            raise UnserializableValue(
                f"cannot store a {type(obj).__module__}.{type(obj).__qualname__}: {e}",
                "return a picklable value, or a DataFrame / array / JSON-able value / bytes / Path",
            ) from None

    def load(self, path: Path, python_type: Any = None) -> Any:
        with open(path, "rb") as f:
            return pickle.load(f)
