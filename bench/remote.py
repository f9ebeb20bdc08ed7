"""Remote transfer benchmark: pivot push / pull against a private moto S3 server.

Workload (as in research/cas-anchors.md): one big file plus many 4 KiB files.
Prints push, pull into an empty cache, no-op push, a raw boto3 ceiling (same
objects, same threads), DVC when `dvc` is importable, and the requests moto
logged for each step. Not a test; run standalone:

    .venv/bin/python bench/remote.py [--big-mib 512] [--small 2000] [--jobs 20]
"""

from __future__ import annotations

import argparse
import os
import re
import resource
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
KEY = SECRET = "bench"
LOG_RE = re.compile(r'"(GET|PUT|POST|HEAD|DELETE) (\S+) HTTP')


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Moto:
    """moto_server in its own process, so it never shares the client's CPU or GIL."""

    def __init__(self, scratch: Path) -> None:
        self.port = free_port()
        self.log = scratch / "moto.log"
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)],
            stdout=open(self.log, "wb"),  # noqa: SIM115
            stderr=subprocess.STDOUT,
        )
        for _ in range(300):
            try:
                socket.create_connection(("127.0.0.1", self.port), 0.2).close()
                break
            except OSError:
                time.sleep(0.05)
        self.url = f"http://127.0.0.1:{self.port}"
        self.mark = 0

    def requests(self) -> Counter[str]:
        """Requests logged since the last call, by kind."""
        time.sleep(0.2)
        lines = self.log.read_text(errors="replace").splitlines()
        new, self.mark = lines[self.mark :], len(lines)
        out: Counter[str] = Counter()
        for line in new:
            m = LOG_RE.search(line)
            if not m:
                continue
            method, path = m.groups()
            if method == "GET" and ("list-type" in path or "prefix=" in path):
                out["LIST"] += 1
            elif method == "PUT" and "partNumber" in path:
                out["PUT part"] += 1
            elif (method == "GET" and "/runs/" in path) or (method == "PUT" and "/runs/" in path):
                out[f"{method} runs"] += 1
            else:
                out[method] += 1
        return out

    def client(self):
        import boto3
        from botocore.config import Config

        return boto3.client(
            "s3",
            endpoint_url=self.url,
            aws_access_key_id=KEY,
            aws_secret_access_key=SECRET,
            region_name="us-east-1",
            config=Config(max_pool_connections=64),
        )

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)


def timed(cmd: list[str], cwd: Path, env: dict[str, str]) -> tuple[float, float]:
    """(wall, client CPU) of a child process."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    subprocess.run(cmd, cwd=cwd, env=env, check=True, stdout=subprocess.DEVNULL)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu


def fmt(c: Counter[str]) -> str:
    return f"{sum(c.values())}: " + ", ".join(f"{v} {k}" for k, v in sorted(c.items()))


def make_workload(folder: Path, big_mib: int, small: int) -> None:
    folder.mkdir(parents=True)
    with open(folder / "big.bin", "wb") as f:
        for _ in range(big_mib):
            f.write(os.urandom(1 << 20))
    data = folder / "data"
    data.mkdir()
    for i in range(small):
        (data / f"f{i:05d}.bin").write_bytes(os.urandom(4096))


def raw_ceiling(moto: Moto, work: Path, jobs: int) -> None:
    """boto3, same objects, same threads: the floor any client can reach here."""
    from boto3.s3.transfer import TransferConfig

    s3 = moto.client()
    s3.create_bucket(Bucket="raw")
    files = sorted((work / "data").iterdir())
    cfg = TransferConfig(multipart_chunksize=16 << 20, max_concurrency=10)
    moto.requests()
    for label, fn in (
        ("raw boto3 push", lambda: _raw_put(s3, files, work / "big.bin", jobs, cfg)),
        ("raw boto3 pull", lambda: _raw_get(s3, files, work, jobs, cfg)),
    ):
        c0, t0 = time.process_time(), time.perf_counter()
        fn()
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
        print(f"{label:<28} {wall:7.2f} s  cpu {cpu:6.2f} s  requests {fmt(moto.requests())}")


def _raw_put(s3, files, big, jobs, cfg) -> None:
    with ThreadPoolExecutor(jobs) as ex:
        big_f = ex.submit(s3.upload_file, str(big), "raw", "big", Config=cfg)
        list(ex.map(lambda p: s3.put_object(Bucket="raw", Key=p.name, Body=p.read_bytes()), files))
        big_f.result()


def _raw_get(s3, files, work, jobs, cfg) -> None:
    out = work / "raw-out"
    out.mkdir(exist_ok=True)

    def get(p: Path) -> None:
        body = s3.get_object(Bucket="raw", Key=p.name)["Body"].read()
        (out / p.name).write_bytes(body)

    with ThreadPoolExecutor(jobs) as ex:
        big_f = ex.submit(s3.download_file, "raw", "big", str(out / "big"), Config=cfg)
        list(ex.map(get, files))
        big_f.result()


def probe_head_vs_list(moto: Moto, bucket: str) -> None:
    """Latency of one HEAD vs one LIST of a prefix: where LIST starts to pay."""
    s3 = moto.client()
    keys = [
        o["Key"] for o in s3.list_objects_v2(Bucket=bucket, Prefix="store/files/0")["Contents"][:20]
    ]
    n = 50
    t0 = time.perf_counter()
    for i in range(n):
        s3.head_object(Bucket=bucket, Key=keys[i % len(keys)])
    head = (time.perf_counter() - t0) / n
    t0 = time.perf_counter()
    for i in range(n):
        s3.list_objects_v2(Bucket=bucket, Prefix=f"store/files/0{i % 10}/")
    lst = (time.perf_counter() - t0) / n
    print(
        f"probe: HEAD {head * 1e3:.1f} ms, LIST of one prefix {lst * 1e3:.1f} ms: "
        f"LIST pays from {lst / head:.1f} wanted objects per prefix"
    )
    moto.requests()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--big-mib", type=int, default=512)
    ap.add_argument("--small", type=int, default=2000)
    ap.add_argument("--jobs", type=int, default=20)
    ap.add_argument("--keep", action="store_true", help="keep the scratch folder")
    args = ap.parse_args()

    scratch = Path(tempfile.mkdtemp(prefix="pivot-bench-remote-"))
    moto = Moto(scratch)
    try:
        s3 = moto.client()
        s3.create_bucket(Bucket="bench")
        proj = scratch / "proj"
        make_workload(proj, args.big_mib, args.small)
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        pivot = [sys.executable, "-m", "pivot_store.cli.app"]
        subprocess.run([*pivot, "init"], cwd=proj, env=env, check=True, stdout=subprocess.DEVNULL)
        subprocess.run(
            [*pivot, "add", "big.bin", "data"], cwd=proj, env=env, check=True,
            stdout=subprocess.DEVNULL,
        )  # fmt: skip
        from pivot_store.config import Config, RemoteConfig, save_config

        remote = RemoteConfig(
            url="s3://bench/store", endpoint_url=moto.url, key=KEY, secret=SECRET,
            region="us-east-1",
        )  # fmt: skip
        save_config(
            proj / ".pivot" / "config.yaml",
            Config(remotes={"origin": remote}, default_remote="origin"),
        )
        n = args.small + 2
        print(
            f"workload: 1 x {args.big_mib} MiB + {args.small} x 4 KiB ({n} objects), "
            f"jobs {args.jobs}, moto {moto.url} in its own process, {os.cpu_count()} cores"
        )
        moto.requests()
        j = ["-j", str(args.jobs)]
        rows = []
        wall, cpu = timed([*pivot, "push", *j], proj, env)
        rows.append(("pivot push (empty bucket)", wall, cpu, moto.requests()))
        wall, cpu = timed([*pivot, "push", *j], proj, env)
        rows.append(("pivot push (no-op)", wall, cpu, moto.requests()))
        clone = scratch / "clone"
        (clone / ".pivot").mkdir(parents=True)
        shutil.copytree(proj / ".pivot" / "stages", clone / ".pivot" / "stages")
        shutil.copy(proj / ".pivot" / "config.yaml", clone / ".pivot" / "config.yaml")
        wall, cpu = timed([*pivot, "pull", *j], clone, env)
        rows.append(("pivot pull (empty cache)", wall, cpu, moto.requests()))
        shutil.rmtree(clone / ".pivot" / "cache")
        wall, cpu = timed([*pivot, "fetch", *j, "data"], clone, env)
        rows.append((f"pivot fetch {args.small} small", wall, cpu, moto.requests()))
        wall, cpu = timed([sys.executable, "-c", "import pivot_store.cli.app"], proj, env)
        rows.append(("(pivot CLI startup)", wall, cpu, Counter()))
        for label, wall, cpu, reqs in rows:
            print(f"{label:<28} {wall:7.2f} s  cpu {cpu:6.2f} s  requests {fmt(reqs)}")
        probe_head_vs_list(moto, "bench")
        raw_ceiling(moto, proj, args.jobs)
        try:
            import dvc  # noqa: F401

            print("dvc is importable: run research/bench/anchors_dvc.sh for its figures")
        except ImportError:
            print("dvc: not installed here; research/cas-anchors.md has its figures")
    finally:
        moto.stop()
        if not args.keep:
            shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
