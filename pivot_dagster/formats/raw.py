"""`bytes` stored as they are: the object is the value."""

from __future__ import annotations

from pathlib import Path
from typing import Any, BinaryIO

from pivot_dagster.formats.base import FormatHandler


class RawBytes(FormatHandler):
    name = "raw"

    def accepts(self, obj: Any) -> bool:
        return type(obj) is bytes

    def dump(self, obj: Any, f: BinaryIO) -> None:
        f.write(obj)

    def load(self, path: Path, python_type: Any = None) -> Any:
        return path.read_bytes()
