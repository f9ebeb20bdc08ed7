"""Sample values for each format, built the same way in every process."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa


class Point:
    def __init__(self, x: int) -> None:
        self.x = x

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Point) and other.x == self.x


def values() -> dict[str, tuple[str, Any]]:
    """name -> (expected format, value)."""
    df = pd.DataFrame(
        {
            "a": [1, 2, 3],
            "b": ["x", "y", None],
            "c": [0.5, float("nan"), 2.0],
            "t": pd.to_datetime(["2024-01-01", "2024-01-02", "2024-01-03"]),
        },
        index=pd.Index([10, 20, 30], name="id"),
    )
    return {
        "pandas": ("pandas.parquet", df),
        "pandas_range_index": ("pandas.parquet", df.reset_index()),
        "arrow": ("arrow.parquet", pa.table({"a": [1, 2], "s": ["p", "q"]})),
        "numpy": ("npy", np.arange(12, dtype=np.float32).reshape(3, 4)),
        "json_dict": ("json", {"b": [1, 2.5, None, True], "a": {"z": "ü", "y": []}}),
        "json_str": ("json", "hello"),
        "json_int": ("json", 7),
        "json_none": ("json", None),
        "raw": ("raw", b"\x00\x01binary"),
        "tuple_pickle": ("pickle", (1, 2)),
        "object_pickle": ("pickle", Point(3)),
        "nan_pickle": ("pickle", float("nan")),
        "numpy_object_pickle": ("pickle", np.array([{"a": 1}], dtype=object)),
    }


def store_all(root: str) -> dict[str, str]:
    from pivot_dagster import formats
    from pivot_dagster.engine import Engine
    from pivot_store.repo import Repo

    engine = Engine(Repo.open(root))
    return {
        name: engine.store_value(v, formats.choose(v)).hash for name, (_, v) in values().items()
    }
