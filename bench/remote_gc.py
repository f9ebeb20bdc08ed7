"""Remote gc benchmark: requests and time for a remote of N objects (issue 15).

Workload: `--names` names x `--results` results each; a result is a folder of
9 files (a `.dir` manifest + 9 objects = 10 objects), so the defaults make
10,000 objects and 1,000 run-cache entries. gc keeps the newest half per name
(`--keep-last`) with grace 0, run from an empty cache (manifests come from the
remote, as on a CI machine), against a private moto server (its log counts the
requests) and against a local folder remote. Not a test; run standalone:

    .venv/bin/python bench/remote_gc.py [--names 100] [--results 10] [--jobs 20]
"""

from __future__ import annotations

import argparse
import importlib.util
import shutil
import sys
import tempfile
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pivot_store import runcache, transfer  # noqa: E402
from pivot_store.config import RemoteConfig  # noqa: E402
from pivot_store.lockfile import FingerprintParts, Lock, OutputRecord  # noqa: E402
from pivot_store.manifest import Entry, Manifest  # noqa: E402
from pivot_store.objects import ObjectStore  # noqa: E402
from pivot_store.remote import Remote, open_remote  # noqa: E402
from pivot_store.remote_gc import KeepPolicy, collect_remote  # noqa: E402


def _moto_class():
    spec = importlib.util.spec_from_file_location("bench_remote", ROOT / "bench" / "remote.py")
    mod = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    spec.loader.exec_module(mod)  # type: ignore[union-attr]
    return mod


def workload(objects: ObjectStore, names: int, results: int) -> list[Lock]:
    locks = []
    for n in range(names):
        for r in range(results):
            entries = []
            for f in range(9):
                added = objects.add_bytes(f"{n}/{r}/{f}".encode() * 8)
                entries.append(Entry(f"part-{f}.bin", added.oid, added.size))
            manifest = Manifest(tuple(entries))
            oid = objects.add_bytes(manifest.to_bytes(), suffix=".dir").oid
            parts = FingerprintParts(code_version=f"v{r}", params={})
            out = OutputRecord(hash=oid, size=manifest.size, kind="dir")
            locks.append(Lock.build(f"asset{n}", parts, [out]))
    return locks


def populate(objects: ObjectStore, remote: Remote, locks: list[Lock], jobs: int) -> None:
    res = transfer.push(objects, remote, locks, jobs=jobs, run_cache=False)
    assert res.ok, res.failed
    t0 = datetime.now(UTC) - timedelta(days=30)
    for i, lock in enumerate(locks):  # created_at orders the results of a name
        runcache.write_entry(remote, lock, t0 + timedelta(seconds=i))


def run_gc(remote: Remote, work: Path, keep_last: int, jobs: int, dry: bool) -> tuple:
    fresh = ObjectStore(work / f"gc-cache-{time.monotonic_ns()}")
    t0 = time.perf_counter()
    res = collect_remote(remote, [], KeepPolicy(keep_last=keep_last, grace_hours=0),
                         objects=fresh, dry_run=dry, jobs=jobs)  # fmt: skip
    return time.perf_counter() - t0, res


def report(label: str, wall: float, res, requests: Counter | None) -> None:
    n = {k: len(getattr(res, k)) for k in ("entries", "pointers", "objects")}
    reqs = (
        f"; requests {sum(requests.values())}: {dict(sorted(requests.items()))}" if requests else ""
    )
    print(f"{label}: {wall:.2f} s; removed {n}, kept {res.kept}{reqs}")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--names", type=int, default=100)
    ap.add_argument("--results", type=int, default=10)
    ap.add_argument("--jobs", type=int, default=20)
    args = ap.parse_args()
    keep = args.results // 2
    work = Path(tempfile.mkdtemp(prefix="pivot-rgc-"))
    try:
        objects = ObjectStore(work / "cache")
        locks = workload(objects, args.names, args.results)
        print(f"{len(locks) * 10} objects, {len(locks)} entries, keep-last {keep}")
        bench = _moto_class()
        moto = bench.Moto(work)
        try:
            moto.client().create_bucket(Bucket="bench")
            opts = {"endpoint_url": moto.url, "key": bench.KEY, "secret": bench.SECRET,
                    "region": "us-east-1"}  # fmt: skip
            s3 = open_remote(remote=RemoteConfig(url="s3://bench/store", **opts), jobs=args.jobs)
            t0 = time.perf_counter()
            populate(objects, s3, locks, args.jobs)
            print(f"s3 populate: {time.perf_counter() - t0:.1f} s")
            moto.requests()
            wall, res = run_gc(s3, work, keep, args.jobs, True)
            report("s3 gc --dry-run", wall, res, moto.requests())
            wall, res = run_gc(s3, work, keep, args.jobs, False)
            report("s3 gc", wall, res, moto.requests())
            wall, res = run_gc(s3, work, keep, args.jobs, False)
            report("s3 gc again (nothing to do)", wall, res, moto.requests())
        finally:
            moto.stop()
        folder = open_remote(remote=RemoteConfig(url=f"file://{work}/remote"), jobs=args.jobs)
        populate(objects, folder, locks, args.jobs)
        wall, res = run_gc(folder, work, keep, args.jobs, True)
        report("folder gc --dry-run", wall, res, None)
        wall, res = run_gc(folder, work, keep, args.jobs, False)
        report("folder gc", wall, res, None)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
