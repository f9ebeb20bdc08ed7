"""The floor and the decomposition for `bench/remote.py --decompose`.

The floor is a minimal client (aiohttp plus botocore's SigV4 signer, no
pivot, no s3fs) that sends exactly the requests any correct push or pull of
the workload must send: one conditional PUT per small object, one multipart
upload of the big one, one GET per small object and GETs of the big one.
What moto spends on those alone says how close to DVC any client can get on
this server. Each row gives wall, client CPU, moto's CPU (from /proc) and the
requests moto logged, for pivot, DVC and the floor, with the big object and
the small ones apart.
"""

from __future__ import annotations

import asyncio
import base64
import os
import shutil
import subprocess
import sys
import time
import zlib
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any
from xml.etree import ElementTree

KEY = SECRET = "bench"


class RawS3:
    """Signed S3 requests over one aiohttp session (UNSIGNED-PAYLOAD: no client hashing)."""

    def __init__(self, url: str, session: Any) -> None:
        from botocore.auth import S3SigV4Auth
        from botocore.credentials import Credentials

        self.url, self.session = url, session
        self.auth = S3SigV4Auth(Credentials(KEY, SECRET), "s3", "us-east-1")

    def sign(self, method: str, url: str, headers: dict[str, str]) -> dict[str, str]:
        from botocore.awsrequest import AWSRequest

        req = AWSRequest(
            method=method, url=url, data=b"",
            headers={"X-Amz-Content-SHA256": "UNSIGNED-PAYLOAD", **headers},
        )  # fmt: skip
        self.auth.add_auth(req)
        return dict(req.headers.items())

    async def req(
        self, method: str, path: str, query: str = "", data: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> tuple[Any, bytes]:  # fmt: skip
        url = self.url + path + (f"?{query}" if query else "")
        hdrs = self.sign(method, url, headers or {})
        async with self.session.request(method, url, headers=hdrs, data=data) as resp:
            body = await resp.read()
            if resp.status >= 300:
                raise RuntimeError(f"{method} {path}?{query}: {resp.status} {body[:200]!r}")
            return resp.headers, body

    async def get_into(self, path: str, fd: int, start: int, end: int | None) -> None:
        url = self.url + path
        hdrs = self.sign("GET", url, {"Range": f"bytes={start}-{end}"} if end is not None else {})
        async with self.session.get(url, headers=hdrs) as resp:
            if resp.status >= 300:
                raise RuntimeError(f"GET {path}: {resp.status}")
            off = start
            async for chunk in resp.content.iter_chunked(1 << 20):
                os.pwrite(fd, chunk, off)
                off += len(chunk)


async def _bounded(jobs: int, coros: list[Awaitable[Any]]) -> list[Any]:
    sem = asyncio.Semaphore(jobs)

    async def one(c: Awaitable[Any]) -> Any:
        async with sem:
            return await c

    return await asyncio.gather(*(one(c) for c in coros))


async def floor_put_small(raw: RawS3, bucket: str, files: list[Path], jobs: int) -> None:
    await _bounded(jobs, [
        raw.req("PUT", f"/{bucket}/s/{p.name}", data=p.read_bytes(), headers={"If-None-Match": "*"})
        for p in files
    ])  # fmt: skip


async def floor_get_small(raw: RawS3, bucket: str, files: list[Path], jobs: int) -> None:
    await _bounded(jobs, [raw.req("GET", f"/{bucket}/s/{p.name}") for p in files])


async def floor_put_big(raw: RawS3, bucket: str, big: Path, part: int, inflight: int) -> None:
    """Multipart, `part` bytes a part, CRC32 per part declared at create (composite)."""
    size = big.stat().st_size
    path = f"/{bucket}/big"
    _, body = await raw.req("POST", path, "uploads", headers={"x-amz-checksum-algorithm": "CRC32"})
    uid = ElementTree.fromstring(body).find("{*}UploadId").text  # type: ignore[union-attr]

    async def one(n: int, start: int) -> str:
        with open(big, "rb") as f:
            f.seek(start)
            data = f.read(part)
        crc = base64.b64encode(zlib.crc32(data).to_bytes(4, "big")).decode()
        hdrs = {"x-amz-checksum-crc32": crc, "x-amz-sdk-checksum-algorithm": "CRC32"}
        got, _ = await raw.req("PUT", path, f"partNumber={n}&uploadId={uid}", data, hdrs)
        return (
            f"<Part><PartNumber>{n}</PartNumber><ETag>{got['ETag']}</ETag>"
            f"<ChecksumCRC32>{crc}</ChecksumCRC32></Part>"
        )

    parts = await _bounded(inflight, [one(i + 1, s) for i, s in enumerate(range(0, size, part))])
    xml = f"<CompleteMultipartUpload>{''.join(parts)}</CompleteMultipartUpload>".encode()
    await raw.req("POST", path, f"uploadId={uid}", xml, {"If-None-Match": "*"})


async def floor_get_big(raw: RawS3, bucket: str, size: int, ranges: int, out: Path) -> None:
    fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        if ranges == 1:
            await raw.get_into(f"/{bucket}/big", fd, 0, None)
            return
        per = -(-size // ranges)
        await _bounded(ranges, [
            raw.get_into(f"/{bucket}/big", fd, s, min(s + per, size) - 1)
            for s in range(0, size, per)
        ])  # fmt: skip
    finally:
        os.close(fd)


def run_floor(moto: Any, raw_call: Callable[..., Any], label: str, step: Callable) -> None:
    """Run one floor coroutine on a fresh loop with one aiohttp session (40 connections)."""
    import aiohttp

    async def main() -> None:
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=40)) as s:
            await raw_call(RawS3(moto.url, s))

    step(label, lambda: asyncio.run(main()))


def decompose(moto: Any, proj: Path, scratch: Path, jobs: int, dvc: str | None) -> list[tuple]:
    """Pivot, DVC and the floor, the big object and the small ones apart, push and pull."""
    from pivot_store.config import Config, RemoteConfig, save_config

    rows: list[tuple] = []
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    pivot = [sys.executable, "-m", "pivot_store.cli.app"]
    j = ["-j", str(jobs)]

    def step(label: str, fn: Callable[[], Any], child: bool = False) -> None:
        moto.requests()
        r0 = os.times()
        c0, t0, m0 = time.process_time(), time.perf_counter(), moto.cpu()
        fn()
        wall, m1, r1 = time.perf_counter() - t0, moto.cpu(), os.times()
        cpu = (
            (r1.children_user - r0.children_user + r1.children_system - r0.children_system)
            if child else time.process_time() - c0
        )  # fmt: skip
        rows.append((label, wall, cpu, m1 - m0, moto.requests(), os.getloadavg()[0]))
        show(rows[-1])

    def sh(cmd: list[str], cwd: Path, e: dict[str, str] = env) -> Callable[[], Any]:
        return lambda: subprocess.run(cmd, cwd=cwd, env=e, check=True, stdout=subprocess.DEVNULL)

    s3 = moto.client()
    remotes = {}
    for name in ("dbig", "dsmall"):
        s3.create_bucket(Bucket=name)
        remotes[name] = RemoteConfig(
            url=f"s3://{name}/store", endpoint_url=moto.url, key=KEY, secret=SECRET,
            region="us-east-1",
        )  # fmt: skip
    save_config(proj / ".pivot" / "config.yaml", Config(remotes=remotes, default_remote="dbig"))
    clone = scratch / "dclone"
    (clone / ".pivot").mkdir(parents=True)
    shutil.copytree(proj / ".pivot" / "stages", clone / ".pivot" / "stages")
    shutil.copy(proj / ".pivot" / "config.yaml", clone / ".pivot" / "config.yaml")
    step("pivot push big", sh([*pivot, "push", *j, "-r", "dbig", "big.bin"], proj), True)
    step("pivot push small", sh([*pivot, "push", *j, "-r", "dsmall", "data"], proj), True)
    step("pivot pull big", sh([*pivot, "pull", *j, "-r", "dbig", "big.bin"], clone), True)
    step("pivot pull small", sh([*pivot, "pull", *j, "-r", "dsmall", "data"], clone), True)

    files = sorted((proj / "data").iterdir())
    big = proj / "big.bin"
    s3.create_bucket(Bucket="floor")
    run_floor(moto, lambda r: floor_put_big(r, "floor", big, 16 << 20, 8), "floor push big", step)
    run_floor(moto, lambda r: floor_put_small(r, "floor", files, jobs), "floor push small", step)
    out = scratch / "floor-big"
    size = big.stat().st_size
    for n in (8, 4, 1):
        run_floor(
            moto, lambda r, n=n: floor_get_big(r, "floor", size, n, out),
            f"floor pull big ({n} GET{'s' if n > 1 else ''})", step,
        )  # fmt: skip
    run_floor(moto, lambda r: floor_get_small(r, "floor", files, jobs), "floor pull small", step)

    if dvc:
        repo, denv = _dvc_repo(dvc, moto, scratch, proj)
        for name in ("dvcbig", "dvcsmall"):
            s3.create_bucket(Bucket=name)
        dv = [dvc, "push", *j]
        step("dvc push big", sh([*dv, "-r", "big", "big.bin.dvc"], repo, denv), True)
        step("dvc push small", sh([*dv, "-r", "small", "data.dvc"], repo, denv), True)
        dclone = scratch / "dvc-dclone"
        dclone.mkdir()
        subprocess.run(["git", "init", "-q"], cwd=dclone, env=denv, check=True)
        skip = shutil.ignore_patterns("cache", "tmp")
        shutil.copytree(repo / ".dvc", dclone / ".dvc", ignore=skip)
        for f in ("big.bin.dvc", "data.dvc"):
            shutil.copy(repo / f, dclone / f)
        dp = [dvc, "pull", *j]
        step("dvc pull big", sh([*dp, "-r", "big", "big.bin.dvc"], dclone, denv), True)
        step("dvc pull small", sh([*dp, "-r", "small", "data.dvc"], dclone, denv), True)
    return rows


def _dvc_repo(dvc: str, moto: Any, scratch: Path, proj: Path) -> tuple[Path, dict[str, str]]:
    """A DVC repo of the same files with remotes `big` and `small` on the same moto."""
    env = {
        **os.environ, "AWS_ACCESS_KEY_ID": KEY, "AWS_SECRET_ACCESS_KEY": SECRET,
        "AWS_DEFAULT_REGION": "us-east-1", "DVC_NO_ANALYTICS": "1",
        "DVC_SITE_CACHE_DIR": str(scratch / "ddvc-site"),
        "DVC_GLOBAL_CONFIG_DIR": str(scratch / "ddvc-global"),
        "DVC_SYSTEM_CONFIG_DIR": str(scratch / "ddvc-system"),
        "GIT_AUTHOR_NAME": "b", "GIT_AUTHOR_EMAIL": "b@example.invalid",
        "GIT_COMMITTER_NAME": "b", "GIT_COMMITTER_EMAIL": "b@example.invalid",
    }  # fmt: skip
    env.pop("PYTHONPATH", None)
    repo = scratch / "ddvc-proj"
    repo.mkdir()
    shutil.copy(proj / "big.bin", repo / "big.bin")
    shutil.copytree(proj / "data", repo / "data")

    def run(*cmd: str) -> None:
        subprocess.run(cmd, cwd=repo, env=env, check=True, stdout=subprocess.DEVNULL)

    run("git", "init", "-q")
    run(dvc, "init", "-q")
    run(dvc, "config", "core.autostage", "false")
    for name in ("big", "small"):
        run(dvc, "remote", "add", "-q", name, f"s3://dvc{name}/store")
        run(dvc, "remote", "modify", name, "endpointurl", moto.url)
    run(dvc, "add", "-q", "big.bin", "data")
    return repo, env


def show(r: tuple) -> None:
    label, wall, cpu, mcpu, reqs, load = r
    reqs_s = f"{sum(reqs.values())}: " + ", ".join(f"{v} {k}" for k, v in sorted(reqs.items()))
    print(
        f"{label:<26} {wall:7.2f} s  client cpu {cpu:6.2f} s  moto cpu {mcpu:6.2f} s  "
        f"load {load:4.1f}  requests {reqs_s}",
        flush=True,
    )


def rounds(moto: Any, proj: Path, scratch: Path, jobs: int, dvc: str, n: int) -> None:
    """`n` rounds of pivot push, DVC push, pivot pull, DVC pull, interleaved (load drifts
    on a shared machine, so each ratio is of two runs side by side), then the medians."""
    import statistics

    from pivot_store.config import Config, RemoteConfig, save_config

    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    pivot = [sys.executable, "-m", "pivot_store.cli.app"]
    j = ["-j", str(jobs)]
    s3 = moto.client()
    repo, denv = _dvc_repo(dvc, moto, scratch, proj)
    got: dict[str, list[float]] = {}

    def timed(label: str, cmd: list[str], cwd: Path, e: dict[str, str]) -> None:
        moto.requests()
        m0, t0 = moto.cpu(), time.perf_counter()
        subprocess.run(cmd, cwd=cwd, env=e, check=True, stdout=subprocess.DEVNULL)
        wall, mcpu = time.perf_counter() - t0, moto.cpu() - m0
        got.setdefault(label, []).append(wall)
        print(
            f"  {label:<11} {wall:6.2f} s  moto cpu {mcpu:5.2f} s  "
            f"load {os.getloadavg()[0]:4.1f}  requests {sum(moto.requests().values())}",
            flush=True,
        )

    for r in range(n):
        print(f"round {r + 1}")
        bucket = f"round{r}"
        s3.create_bucket(Bucket=bucket)
        cfg = RemoteConfig(
            url=f"s3://{bucket}/pivot", endpoint_url=moto.url, key=KEY, secret=SECRET,
            region="us-east-1",
        )  # fmt: skip
        save_config(proj / ".pivot" / "config.yaml", Config(remotes={"r": cfg}, default_remote="r"))
        subprocess.run(
            [dvc, "remote", "add", "-q", "-f", "-d", "round", f"s3://{bucket}/dvc"],
            cwd=repo, env=denv, check=True,
        )  # fmt: skip
        subprocess.run(
            [dvc, "remote", "modify", "round", "endpointurl", moto.url],
            cwd=repo, env=denv, check=True,
        )  # fmt: skip
        timed("pivot push", [*pivot, "push", *j], proj, env)
        timed("dvc push", [dvc, "push", *j, "-r", "round"], repo, denv)
        clone = scratch / f"round-clone-{r}"
        (clone / ".pivot").mkdir(parents=True)
        shutil.copytree(proj / ".pivot" / "stages", clone / ".pivot" / "stages")
        shutil.copy(proj / ".pivot" / "config.yaml", clone / ".pivot" / "config.yaml")
        dclone = scratch / f"round-dvc-clone-{r}"
        dclone.mkdir()
        subprocess.run(["git", "init", "-q"], cwd=dclone, env=denv, check=True)
        skip = shutil.ignore_patterns("cache", "tmp")
        shutil.copytree(repo / ".dvc", dclone / ".dvc", ignore=skip)
        for f in ("big.bin.dvc", "data.dvc"):
            shutil.copy(repo / f, dclone / f)
        timed("pivot pull", [*pivot, "pull", *j], clone, env)
        timed("dvc pull", [dvc, "pull", *j, "-r", "round"], dclone, denv)
    for what in ("push", "pull"):
        mine, theirs = got[f"pivot {what}"], got[f"dvc {what}"]
        each = ", ".join(f"{a / b:.2f}" for a, b in zip(mine, theirs, strict=True))
        a, b = statistics.median(mine), statistics.median(theirs)
        print(f"{what}: pivot median {a:.2f} s, DVC {b:.2f} s: {a / b:.2f}x (rounds: {each})")
