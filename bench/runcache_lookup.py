"""Run-cache lookup cost against a remote with N entries: requests per miss and per hit.

A lookup must cost one request per asset (a GET, or a LIST of that
fingerprint's own prefix), whatever the number of other entries on the remote:
never a listing of `runs/` or of the asset's folder. This writes N entries into
a private moto server (raw PUTs of entry keys laid out as docs/format.md says,
all under ONE asset name, the worst case for a lookup that listed the asset's
folder), then looks up a fingerprint with no entry (miss) and one with an
entry (hit) through pivot's own `run_lookup.lookup`, with a counting proxy
(tests/fixtures/faulty_proxy.py, faults off) between pivot and moto. Twice: as
older writers left a bucket (entries only: the fingerprint's folder is
listed), then with the hit's head and the bucket's marker (format 3, what a
push into a fresh bucket writes: one GET). The marker's own GET, once per
process and remote, is shown apart. With `--upgrade` the heads and the
marker are not planted but written by `pivot remote upgrade`'s function
(`run_heads.upgrade_remote`), timed with its requests: it reads every entry
and writes a head per folder, so keep N small. Not a test; run standalone:

    .venv/bin/python bench/runcache_lookup.py [--entries 1000 100000] [--jobs 32] [--upgrade]
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from remote import KEY, SECRET, Moto  # noqa: E402

NAME = "prices"
BUCKET = "runs"


def entry_key(fp: str, eid: str) -> str:
    return f"store/runs/{NAME}/{fp}/{eid}.json"


def fill(moto: Moto, n: int, start: int, jobs: int, body: bytes) -> float:
    """PUT entries `start..n-1` (fingerprint i, one entry each); seconds it took."""
    s3 = moto.client()

    def put(i: int) -> None:
        s3.put_object(Bucket=BUCKET, Key=entry_key(f"{i:016x}", f"{i:016x}"), Body=body)

    t0 = time.perf_counter()
    with ThreadPoolExecutor(jobs) as ex:
        list(ex.map(put, range(start, n)))
    return time.perf_counter() - t0


def kinds(log: list[str]) -> Counter[str]:
    out: Counter[str] = Counter()
    for line in log:
        method, _, path = line.partition(" ")
        if method == "GET" and ("list-type" in path or "prefix=" in path):
            prefix = path.split("prefix=", 1)[1].split("&", 1)[0] if "prefix=" in path else "?"
            out[f"LIST {prefix.replace('%2F', '/')}"] += 1
        else:
            out[f"{method} {path.split('?', 1)[0]}"] += 1
    return out


def upgrade(remote, proxy) -> None:
    """`run_heads.upgrade_remote` on the bucket as it is, timed, its requests counted."""
    from pivot_store import run_heads

    start = len(proxy.log)
    t0 = time.perf_counter()
    res = run_heads.upgrade_remote(remote)
    took = time.perf_counter() - t0
    by_method = Counter(line.split(" ", 1)[0] for line in proxy.log[start:])
    print(
        f"  upgrade: {res.folders} folders, wrote {len(res.written)} heads, marked "
        f"{res.marked}, in {took:.1f} s: "
        + ", ".join(f"{v} x {k}" for k, v in sorted(by_method.items()))
        + f" (load {os.getloadavg()[0]:.1f})"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--entries", type=int, nargs="+", default=[1000, 100_000])
    ap.add_argument("--jobs", type=int, default=32, help="threads for the raw PUTs")
    ap.add_argument("--repeat", type=int, default=5, help="timed lookups of each kind")
    ap.add_argument("--upgrade", action="store_true", help="heads by `pivot remote upgrade`")
    args = ap.parse_args()

    from pivot_store import run_lookup, runcache
    from pivot_store.lockfile import FingerprintParts, Lock, OutputRecord
    from pivot_store.remote import from_url
    from tests.fixtures.faulty_proxy import FaultyProxy

    scratch = Path(tempfile.mkdtemp(prefix="pivot-bench-runcache-"))
    moto = Moto(scratch)
    proxy = FaultyProxy(moto.port, every=0).start()
    try:
        moto.client().create_bucket(Bucket=BUCKET)
        parts = FingerprintParts(code_version="1")
        hit_fp = parts.digest(NAME)
        lock = Lock(
            name=NAME, fingerprint=hit_fp, parts=parts,
            outputs=[OutputRecord(hash="0123456789abcdef", size=3)],
        )  # fmt: skip
        entry = runcache.entry_bytes(lock)
        eid = runcache.entry_id(lock)
        moto.client().put_object(Bucket=BUCKET, Key=entry_key(hit_fp, eid), Body=entry)
        remote = from_url(
            f"s3://{BUCKET}/store",
            {"endpoint_url": proxy.url, "key": KEY, "secret": SECRET, "region": "us-east-1"},
            name="bench",
        )
        remote.check()
        print(f"moto {moto.url} in its own process; counting proxy {proxy.url}")
        have = 0
        for n in sorted(args.entries):
            took = fill(moto, n, have, args.jobs, entry)
            if n > have:
                rate = (n - have) / took
                print(f"wrote entries {have}..{n - 1}: {took:.1f} s ({rate:.0f} PUT/s)")
            have = max(have, n)
            for layout in ("entries only", "heads + marker"):
                if layout == "heads + marker" and args.upgrade:
                    upgrade(remote, proxy)
                elif layout == "heads + marker":
                    s3 = moto.client()
                    s3.put_object(
                        Bucket=BUCKET, Key=f"store/runs/{NAME}/{hit_fp}/head.json", Body=entry
                    )
                    s3.put_object(Bucket=BUCKET, Key="store/runcache.json", Body=b'{"heads":1}')
                run_lookup.forget(remote)
                start = len(proxy.log)
                run_lookup.marked(remote)
                marker = kinds(proxy.log[start:])
                n_marker = sum(marker.values())
                print(f"  {layout}: the marker's GET, once per process: {n_marker} request(s)")
                for label, fp in (("miss", "e" * 16), ("hit", hit_fp)):
                    start = len(proxy.log)
                    found = next(iter(run_lookup.lookup(remote, NAME, fp)), None)
                    reqs = kinds(proxy.log[start:])
                    assert (found is not None) == (label == "hit"), (label, found)
                    t0 = time.perf_counter()
                    for _ in range(args.repeat):
                        next(iter(run_lookup.lookup(remote, NAME, fp)), None)
                    ms = (time.perf_counter() - t0) / args.repeat * 1e3
                    total = sum(reqs.values())
                    print(
                        f"{n + 1:>7} entries  {layout:<14}  {label:<4}  {total} request(s): "
                        + ", ".join(f"{v} x {k}" for k, v in sorted(reqs.items()))
                        + f"  ({ms:.0f} ms per lookup, load {os.getloadavg()[0]:.1f})"
                    )
                if layout == "heads + marker":  # the next size starts as older writers left it
                    moto.client().delete_object(Bucket=BUCKET, Key="store/runcache.json")
    finally:
        proxy.stop()
        moto.stop()
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
