"""Remote transfer benchmark: pivot push / pull against a private moto S3 server.

Workload (as in research/cas-anchors.md): one big file plus many 4 KiB files.
Prints push, pull into an empty cache, no-op push, two raw ceilings for the
same objects and the same concurrency (boto3 on `jobs` threads, and
aiobotocore with `jobs` requests in flight on one event loop, which is pivot's
own model), DVC against the same moto server when `--dvc PATH` names a `dvc`
executable (keep it in its own venv), and the requests moto logged for each
step. Not a test; run standalone:

    .venv/bin/python bench/remote.py [--big-mib 512] [--small 2000] [--jobs 20] \
        [--dvc /tmp/dvcvenv2/bin/dvc] [--decompose]
"""

from __future__ import annotations

import argparse
import asyncio
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
# werkzeug colours some status lines (206, 4xx): allow ANSI codes before the method.
LOG_RE = re.compile(r'"(?:\x1b\[[0-9;]*m)*(GET|PUT|POST|HEAD|DELETE) (\S+) HTTP')


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

    def cpu(self) -> float:
        """moto's own CPU seconds so far (user + system, from /proc; 0 where there is none)."""
        try:
            fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            return 0.0
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

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
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:  # busy with a big request: stop it for good
            self.proc.kill()
            self.proc.wait(10)


#: The moto server whose CPU `timed` reports beside the client's.
MOTO: list[Moto] = []


def timed(cmd: list[str], cwd: Path, env: dict[str, str]) -> tuple[float, float]:
    """(wall, client CPU) of a child process; moto's CPU for it goes to `MOTO_CPU`."""
    m0 = MOTO[0].cpu() if MOTO else 0.0
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    subprocess.run(cmd, cwd=cwd, env=env, check=True, stdout=subprocess.DEVNULL)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    MOTO_CPU.append(MOTO[0].cpu() - m0 if MOTO else 0.0)
    return wall, cpu


#: moto's CPU seconds during each `timed` call, in order.
MOTO_CPU: list[float] = []


def row(label: str, wall: float, cpu: float, reqs: Counter[str]) -> tuple:
    """A result line: label, wall, client CPU, moto CPU (of the last `timed`), requests."""
    return (label, wall, cpu, MOTO_CPU[-1] if MOTO_CPU else 0.0, reqs)


def show(r: tuple) -> None:
    label, wall, cpu, mcpu, reqs = r
    print(
        f"{label:<30} {wall:7.2f} s  cpu {cpu:6.2f} s  moto cpu {mcpu:6.2f} s  requests {fmt(reqs)}"
    )


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
    big = work / "big.bin"
    for label, fn in (
        ("raw boto3 push (threads)", lambda: _raw_put(s3, files, big, jobs, cfg)),
        ("raw boto3 pull (threads)", lambda: _raw_get(s3, files, work, jobs, cfg)),
        ("raw aiobotocore push (async)", lambda: asyncio.run(_araw(moto, files, big, jobs, True))),
        ("raw aiobotocore pull (async)", lambda: asyncio.run(_araw(moto, files, big, jobs, False))),
    ):
        c0, t0 = time.process_time(), time.perf_counter()
        fn()
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
        print(f"{label:<30} {wall:7.2f} s  cpu {cpu:6.2f} s  requests {fmt(moto.requests())}")


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


async def _araw(moto: Moto, files: list[Path], big: Path, jobs: int, put: bool) -> None:
    """aiobotocore, `jobs` requests in flight, the big object in 16 MiB parts/ranges."""
    from aiobotocore.config import AioConfig
    from aiobotocore.session import get_session

    chunk = 16 << 20
    size = big.stat().st_size
    out = big.parent / "raw-aout"
    out.mkdir(exist_ok=True)
    cfg = AioConfig(max_pool_connections=jobs + 10)
    async with get_session().create_client(
        "s3", endpoint_url=moto.url, aws_access_key_id=KEY, aws_secret_access_key=SECRET,
        region_name="us-east-1", config=cfg,
    ) as c:  # fmt: skip
        if put:
            await c.create_bucket(Bucket="araw")
        sem = asyncio.Semaphore(jobs)

        async def small(p: Path) -> None:
            async with sem:
                if put:
                    await c.put_object(Bucket="araw", Key=p.name, Body=p.read_bytes())
                else:
                    r = await c.get_object(Bucket="araw", Key=p.name)
                    async with r["Body"] as b:
                        (out / p.name).write_bytes(await b.read())

        async def big_obj() -> None:
            starts = range(0, size, chunk)
            if put:
                up = await c.create_multipart_upload(Bucket="araw", Key="big")
                uid = up["UploadId"]

                async def part(i: int, start: int) -> dict:
                    async with sem:
                        with open(big, "rb") as f:
                            f.seek(start)
                            data = f.read(chunk)
                        r = await c.upload_part(
                            Bucket="araw", Key="big", UploadId=uid, PartNumber=i + 1, Body=data
                        )
                        return {"PartNumber": i + 1, "ETag": r["ETag"]}

                parts = await asyncio.gather(*(part(i, s) for i, s in enumerate(starts)))
                await c.complete_multipart_upload(
                    Bucket="araw", Key="big", UploadId=uid, MultipartUpload={"Parts": parts}
                )
                return
            fd = os.open(out / "big", os.O_WRONLY | os.O_CREAT, 0o644)

            async def rng(start: int) -> None:
                async with sem:
                    r = await c.get_object(
                        Bucket="araw", Key="big", Range=f"bytes={start}-{start + chunk - 1}"
                    )
                    async with r["Body"] as b:
                        os.pwrite(fd, await b.read(), start)

            await asyncio.gather(*(rng(s) for s in starts))
            os.close(fd)

        await asyncio.gather(big_obj(), *(small(p) for p in files))


def run_dvc(dvc: str, moto: Moto, scratch: Path, proj: Path, jobs: int) -> list[tuple]:
    """DVC push / no-op push / pull of the same files into its own bucket on the same moto."""
    s3 = moto.client()
    s3.create_bucket(Bucket="dvc")
    env = {
        **os.environ, "AWS_ACCESS_KEY_ID": KEY, "AWS_SECRET_ACCESS_KEY": SECRET,
        "AWS_DEFAULT_REGION": "us-east-1", "DVC_NO_ANALYTICS": "1",
        "DVC_SITE_CACHE_DIR": str(scratch / "dvc-site"),
        "DVC_GLOBAL_CONFIG_DIR": str(scratch / "dvc-global"),
        "DVC_SYSTEM_CONFIG_DIR": str(scratch / "dvc-system"),
        "GIT_AUTHOR_NAME": "b", "GIT_AUTHOR_EMAIL": "b@example.invalid",
        "GIT_COMMITTER_NAME": "b", "GIT_COMMITTER_EMAIL": "b@example.invalid",
    }  # fmt: skip
    env.pop("PYTHONPATH", None)
    repo = scratch / "dvc-proj"
    repo.mkdir()
    shutil.copy(proj / "big.bin", repo / "big.bin")
    shutil.copytree(proj / "data", repo / "data")

    def run(*cmd: str, cwd: Path = repo) -> None:
        subprocess.run(cmd, cwd=cwd, env=env, check=True, stdout=subprocess.DEVNULL)

    run("git", "init", "-q")
    run(dvc, "init", "-q")
    run(dvc, "config", "core.autostage", "false")
    run(dvc, "remote", "add", "-q", "-d", "store", "s3://dvc/store")
    run(dvc, "remote", "modify", "store", "endpointurl", moto.url)
    run(dvc, "add", "-q", "big.bin", "data")
    moto.requests()
    rows = []
    j = ["-j", str(jobs)]
    wall, cpu = timed([dvc, "push", *j], repo, env)
    rows.append(row("dvc push (empty bucket)", wall, cpu, moto.requests()))
    wall, cpu = timed([dvc, "push", *j], repo, env)
    rows.append(row("dvc push (no-op)", wall, cpu, moto.requests()))
    clone = scratch / "dvc-clone"
    clone.mkdir()
    run("git", "init", "-q", cwd=clone)
    shutil.copytree(repo / ".dvc", clone / ".dvc", ignore=shutil.ignore_patterns("cache", "tmp"))
    for f in ("big.bin.dvc", "data.dvc"):
        shutil.copy(repo / f, clone / f)
    moto.requests()
    wall, cpu = timed([dvc, "pull", *j], clone, env)
    rows.append(row("dvc pull (empty cache)", wall, cpu, moto.requests()))
    return rows


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
    ap.add_argument("--skip-raw", action="store_true", help="no raw boto3/aiobotocore ceilings")
    ap.add_argument("--dvc", help="path to a `dvc` executable (with dvc-s3) to compare against")
    ap.add_argument(
        "--decompose", action="store_true",
        help="only the big object and the small ones apart: pivot, DVC and the floor "
        "(bench/remote_floor.py), with moto's CPU and requests for each",
    )  # fmt: skip
    ap.add_argument(
        "--rounds", type=int, default=0,
        help="with --dvc: only N interleaved rounds of pivot/DVC push and pull, and the medians",
    )  # fmt: skip
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
        MOTO.append(moto)
        if args.rounds and args.dvc:
            from remote_floor import rounds

            rounds(moto, proj, scratch, args.jobs, args.dvc, args.rounds)
            return
        if args.decompose:
            from remote_floor import decompose

            print(f"load before: {os.getloadavg()[0]:.1f}")
            decompose(moto, proj, scratch, args.jobs, args.dvc)
            return
        print(f"load before: {os.getloadavg()[0]:.1f}")
        j = ["-j", str(args.jobs)]
        rows = []
        wall, cpu = timed([*pivot, "push", *j], proj, env)
        rows.append(row("pivot push (empty bucket)", wall, cpu, moto.requests()))
        wall, cpu = timed([*pivot, "push", *j], proj, env)
        rows.append(row("pivot push (no-op)", wall, cpu, moto.requests()))
        wall, cpu = timed([*pivot, "push", *j, "--verify-remote"], proj, env)
        verify_row = row("pivot push --verify-remote", wall, cpu, moto.requests())
        clone = scratch / "clone"
        (clone / ".pivot").mkdir(parents=True)
        shutil.copytree(proj / ".pivot" / "stages", clone / ".pivot" / "stages")
        shutil.copy(proj / ".pivot" / "config.yaml", clone / ".pivot" / "config.yaml")
        wall, cpu = timed([*pivot, "pull", *j], clone, env)
        rows.append(row("pivot pull (empty cache)", wall, cpu, moto.requests()))
        shutil.rmtree(clone / ".pivot" / "cache")
        wall, cpu = timed([*pivot, "fetch", *j, "data"], clone, env)
        rows.append(row(f"pivot fetch {args.small} small", wall, cpu, moto.requests()))
        # The small files alone to an empty prefix: push's CPU per small object.
        small_remote = RemoteConfig(
            url="s3://bench/small", endpoint_url=moto.url, key=KEY, secret=SECRET,
            region="us-east-1",
        )  # fmt: skip
        save_config(
            proj / ".pivot" / "config.yaml",
            Config(remotes={"origin": remote, "small": small_remote}, default_remote="origin"),
        )
        wall, cpu = timed([*pivot, "push", *j, "-r", "small", "--dry-run", "data"], proj, env)
        push_fixed = row("pivot push --dry-run (fixed)", wall, cpu, moto.requests())
        wall, cpu = timed([*pivot, "push", *j, "-r", "small", "data"], proj, env)
        small_push = row(f"pivot push {args.small} small", wall, cpu, moto.requests())
        # A fetch with everything present: startup, the S3 client, the bucket check.
        wall, cpu = timed([*pivot, "fetch", *j, "data"], clone, env)
        fetch_fixed = row("pivot fetch (no-op, fixed)", wall, cpu, moto.requests())
        wall, cpu = timed([sys.executable, "-c", "import pivot_store.cli.app"], proj, env)
        rows.append(row("(pivot CLI startup)", wall, cpu, Counter()))
        for r in [*rows, verify_row, push_fixed, small_push, fetch_fixed]:
            show(r)
        for what, r, fixed in (("push", small_push, push_fixed), ("fetch", rows[3], fetch_fixed)):
            per = r[2] / args.small * 1e3
            net = (r[2] - fixed[2]) / args.small * 1e3
            print(
                f"{'':<30} {what}: {per:.2f} ms client CPU per small object (all of it), "
                f"{net:.2f} ms above the fixed cost ({fixed[2]:.2f} s: {fixed[0]})"
            )
        print(f"load after: {os.getloadavg()[0]:.1f}")
        probe_head_vs_list(moto, "bench")
        if not args.skip_raw:
            raw_ceiling(moto, proj, args.jobs)
        if args.dvc:
            dvc_rows = run_dvc(args.dvc, moto, scratch, proj, args.jobs)
            for r in dvc_rows:
                show(r)
            for (label, w, *_), (_, dw, *_) in zip(
                (rows[0], rows[1], rows[2]), dvc_rows, strict=True
            ):
                print(f"ratio {label:<24} {w / dw:5.2f} x DVC")
            print(f"load at the end: {os.getloadavg()[0]:.1f}")
        else:
            print("dvc: pass --dvc PATH (research/cas-anchors.md has its figures)")
    finally:
        moto.stop()
        if not args.keep:
            shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
