"""`pathlib.Path` outputs: a file or folder the asset wrote inside the project.

The value is not serialized: the path is added to the cache (folders as `.dir`
manifests) and checked out back to the same place on load. The IO manager does
the work through the store, because it needs the project root and checkout mode.
"""

from __future__ import annotations

from pathlib import PurePath
from typing import Any

from pivot_dagster.formats.base import FormatHandler


class PathOutput(FormatHandler):
    name = "path"
    kind = "path"

    def accepts(self, obj: Any) -> bool:
        return isinstance(obj, PurePath)
