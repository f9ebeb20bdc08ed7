"""What a format handler is: a name, the types it takes, dump to a stream, load from a file.

Modelled on Dagster's `DbTypeHandler`: each handler declares `supported_types`
and the registry picks one. Types are named as `"module.Class"` strings and
checked only when their module is already imported, so choosing a format never
imports pandas, polars or pyarrow for a value that is a plain dict.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, BinaryIO, ClassVar

from pivot_store.errors import PivotError


class UnserializableValue(PivotError, TypeError):
    """A value that no format (not even pickle) can store."""


class FormatHandler:
    """One on-disk format. Subclasses set `name`, `supported_types`, dump, load."""

    name: ClassVar[str]
    supported_types: ClassVar[tuple[str, ...]] = ()
    # "stream": dump writes bytes to a stream; "path": the value is a workspace path.
    kind: ClassVar[str] = "stream"

    def accepts(self, obj: Any) -> bool:
        return any(_isinstance_by_name(obj, t) for t in self.supported_types)

    def dump(self, obj: Any, f: BinaryIO) -> None:
        raise NotImplementedError

    def load(self, path: Path, python_type: Any = None) -> Any:
        raise NotImplementedError


def _isinstance_by_name(obj: Any, qualname: str) -> bool:
    module, _, cls_name = qualname.rpartition(".")
    mod = sys.modules.get(module)
    cls = getattr(mod, cls_name, None) if mod is not None else None
    return isinstance(cls, type) and isinstance(obj, cls)
