"""What PivotIOManager and `cached` cost on top of Dagster (not a test).

    .venv/bin/python bench/dagster_overhead.py [--repeat 3] [--big-mb 200] 2>/dev/null
    .venv/bin/python bench/dagster_overhead.py --only ratios  # issue 17's two chain ratios

1. a 50-asset chain of small values: FilesystemIOManager vs PivotIOManager (plain
   assets, and `cached` assets on a miss), same process, runs interleaved;
2. one asset returning a ~200 MB DataFrame: FilesystemIOManager (pickle) vs
   PivotIOManager (Parquet);
3. the chain with `cached` bodies sleeping 0.2 s: first run vs the all-hit second run,
   next to a FilesystemIOManager run of the same chain without sleeps (framework cost).
Medians of --repeat runs, each on a fresh instance and a fresh store.
"""

from __future__ import annotations

import argparse
import logging
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from dagster import AssetIn, FilesystemIOManager, asset, instance_for_test, materialize

from pivot_dagster import PivotIOManager, cached

N = 50


def chain(prefix: str, *, use_cached: bool, sleep: float = 0.0) -> list[Any]:
    """`prefix_0 -> prefix_1 -> ...`, each adding its index to the previous value."""
    assets = []
    for i in range(N):
        fn = _body(i, sleep)
        fn.__name__ = f"{prefix}_{i}"
        if use_cached:
            fn = cached(fn, code_version="1")
        ins = {"prev": AssetIn(f"{prefix}_{i - 1}")} if i else {}
        assets.append(asset(name=f"{prefix}_{i}", ins=ins, code_version="1")(fn))
    return assets


def _body(i: int, sleep: float) -> Callable[..., Any]:
    if i == 0:

        def first() -> int:
            if sleep:
                time.sleep(sleep)
            return 0

        return first

    def step(prev: int) -> int:
        if sleep:
            time.sleep(sleep)
        return prev + i

    return step


# CPU seconds of this process per run, by label: steadier than wall time on a shared machine.
CPU: dict[str, list[float]] = {}


def timed(assets: list[Any], io: Any, instance: Any, label: str = "") -> float:
    t, c = time.perf_counter(), time.process_time()
    assert materialize(assets, resources={"io_manager": io}, instance=instance).success
    CPU.setdefault(label, []).append(time.process_time() - c)
    return time.perf_counter() - t


def cpu(label: str) -> float:
    return statistics.median(CPU[label])


def fs_io(tmp: str) -> Any:
    return FilesystemIOManager(base_dir=str(Path(tmp) / "fs"))


def pivot_io(tmp: str) -> Any:
    return PivotIOManager(project_dir=str(Path(tmp) / "proj"))


def bench_chain(repeat: int) -> dict[str, float]:
    plain, memo = chain("c", use_cached=False), chain("m", use_cached=True)
    out: dict[str, list[float]] = {"fs": [], "pivot": [], "pivot_cached_miss": []}
    for _ in range(repeat):
        for label, assets, make in (
            ("fs", plain, fs_io),
            ("pivot", plain, pivot_io),
            ("pivot_cached_miss", memo, pivot_io),
        ):
            with tempfile.TemporaryDirectory() as tmp, instance_for_test() as inst:
                out[label].append(timed(assets, make(tmp), inst, label))
    return {k: statistics.median(v) for k, v in out.items()}


def bench_big(repeat: int, mb: int) -> dict[str, float]:
    rows = mb * (1 << 20) // (8 * 4)
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({f"c{j}": rng.random(rows) for j in range(4)})

    @asset
    def big() -> pd.DataFrame:
        return frame

    out: dict[str, list[float]] = {"fs": [], "pivot": []}
    for _ in range(repeat):
        for label, make in (("fs", fs_io), ("pivot", pivot_io)):
            with tempfile.TemporaryDirectory() as tmp, instance_for_test() as inst:
                out[label].append(timed([big], make(tmp), inst))
    res = {k: statistics.median(v) for k, v in out.items()}
    res["bytes"] = float(frame.memory_usage(index=False).sum())
    return res


def bench_hits(repeat: int) -> dict[str, float]:
    slow, plain = chain("s", use_cached=True, sleep=0.2), chain("f", use_cached=False)
    out: dict[str, list[float]] = {"first": [], "all_hit": [], "fs_no_sleep": []}
    for _ in range(repeat):
        with tempfile.TemporaryDirectory() as tmp, instance_for_test() as inst:
            out["first"].append(timed(slow, pivot_io(tmp), inst, "first"))
            out["all_hit"].append(timed(slow, pivot_io(tmp), inst, "all_hit"))
        with tempfile.TemporaryDirectory() as tmp, instance_for_test() as inst:
            out["fs_no_sleep"].append(timed(plain, fs_io(tmp), inst, "fs_no_sleep"))
    return {k: statistics.median(v) for k, v in out.items()}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--big-mb", type=int, default=200)
    ap.add_argument(
        "--only", choices=["chain", "big", "hits", "ratios"], help="ratios: chain and hits"
    )
    args = ap.parse_args()
    logging.getLogger("dagster").setLevel(logging.WARNING)
    c: dict[str, float] = {}
    if args.only in (None, "chain", "ratios"):
        c = bench_chain(args.repeat)
        print(
            f"chain of {N}: fs {c['fs']:.2f}s  pivot {c['pivot']:.2f}s "
            f"(x{c['pivot'] / c['fs']:.2f})  pivot+cached miss {c['pivot_cached_miss']:.2f}s "
            f"(x{c['pivot_cached_miss'] / c['fs']:.2f})",
            flush=True,
        )
        print(
            f"  CPU: fs {cpu('fs'):.2f}s  pivot {cpu('pivot'):.2f}s  pivot+cached miss"
            f" {cpu('pivot_cached_miss'):.2f}s (x{cpu('pivot_cached_miss') / cpu('fs'):.2f})",
            flush=True,
        )
    if args.only in (None, "big"):
        b = bench_big(args.repeat, args.big_mb)
        print(
            f"one {b['bytes'] / 1e6:.0f} MB DataFrame: fs {b['fs']:.2f}s  pivot {b['pivot']:.2f}s "
            f"(x{b['pivot'] / b['fs']:.2f})",
            flush=True,
        )
    if args.only in (None, "hits", "ratios"):
        h = bench_hits(args.repeat)
        print(
            f"chain of {N}, bodies sleep 0.2s: first {h['first']:.2f}s  all-hit {h['all_hit']:.2f}s"
            f"  (fs, no sleep: {h['fs_no_sleep']:.2f}s;"
            f" hit/fs x{h['all_hit'] / h['fs_no_sleep']:.2f})",
            flush=True,
        )
        if c:  # issue 17: an all-hit run against a miss run whose bodies cost nothing
            ratio = h["all_hit"] / c["pivot_cached_miss"]
            print(f"all-hit / trivial-body cached miss: x{ratio:.2f}")
            hit, miss = cpu("all_hit"), cpu("pivot_cached_miss")
            print(
                f"  CPU: all-hit {hit:.2f}s / cached miss {miss:.2f}s x{hit / miss:.2f};"
                f" / first run (sleeping bodies) {cpu('first'):.2f}s"
                f" x{cpu('all_hit') / cpu('first'):.2f}"
            )


if __name__ == "__main__":
    main()
