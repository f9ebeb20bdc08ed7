"""numpy arrays as `.npy` without pickle, so loading one can never run code."""

from __future__ import annotations

from pathlib import Path
from typing import Any, BinaryIO

from pivot_dagster.formats.base import FormatHandler


class NumpyNpy(FormatHandler):
    name = "npy"
    supported_types = ("numpy.ndarray",)

    def accepts(self, obj: Any) -> bool:
        # Object arrays hold Python objects: only pickle can store those.
        return super().accepts(obj) and not obj.dtype.hasobject

    def dump(self, obj: Any, f: BinaryIO) -> None:
        import numpy as np

        np.save(f, obj, allow_pickle=False)

    def load(self, path: Path, python_type: Any = None) -> Any:
        import numpy as np

        return np.load(path, allow_pickle=False)
