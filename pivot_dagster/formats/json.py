"""JSON-able values as canonical JSON (sorted keys, no whitespace, UTF-8).

Only values that come back as the same type qualify: exact dict (str keys),
list, str, int, float (finite), bool and None. A tuple, a dict subclass or a
NaN would come back changed, so those go to pickle instead.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, BinaryIO

from pivot_dagster.formats.base import FormatHandler
from pivot_store.hashing import canonical_json

_SCALARS = (str, int, bool, type(None))
MAX_DEPTH = 200


def is_jsonable(obj: Any, depth: int = 0) -> bool:
    if depth > MAX_DEPTH:
        return False
    t = type(obj)
    if t in _SCALARS:
        return True
    if t is float:
        return math.isfinite(obj)
    if t is list:
        return all(is_jsonable(v, depth + 1) for v in obj)
    if t is dict:
        return all(type(k) is str and is_jsonable(v, depth + 1) for k, v in obj.items())
    return False


class CanonicalJson(FormatHandler):
    name = "json"

    def accepts(self, obj: Any) -> bool:
        return is_jsonable(obj)

    def dump(self, obj: Any, f: BinaryIO) -> None:
        f.write(canonical_json(obj))

    def load(self, path: Path, python_type: Any = None) -> Any:
        return json.loads(path.read_bytes())
