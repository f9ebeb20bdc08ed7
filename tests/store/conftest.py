"""Helpers for the local-store tests: a fresh Repo and an in-process CLI runner."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from pivot_store.cli.app import main
from pivot_store.repo import Repo
from tests.fixtures.faulty_proxy import FaultyProxy
from tests.fixtures.raw_remote import RawRemote
from tests.fixtures.s3 import S3Server, remote_options

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def repo(project: Path) -> Repo:
    """An initialized pivot project in the `project` folder (the cwd)."""
    return Repo.init(project)


class Cli:
    """Run `pivot ...` in-process; returns (exit code, stdout, stderr)."""

    def __init__(self, capsys: pytest.CaptureFixture[str]) -> None:
        self.capsys = capsys

    def __call__(self, *args: str) -> tuple[int, str, str]:
        self.capsys.readouterr()
        code = main([str(a) for a in args])
        out, err = self.capsys.readouterr()
        return code, out, err


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str]) -> Cli:
    return Cli(capsys)


def pivot_subprocess(*args: str, cwd: Path, **kw) -> subprocess.CompletedProcess[str]:
    """`pivot ...` as a real process (for exit codes and stderr without capture tricks)."""
    return subprocess.run(
        [sys.executable, "-m", "pivot_store.cli.app", *map(str, args)],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        **kw,
    )


def assert_one_error_line(code: int, err: str, *needles: str) -> None:
    """Contract line 6: one line `error: ...`, non-zero exit, no traceback."""
    assert code == 1, err
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert lines[0].startswith("error: "), err
    for needle in needles:
        assert needle in lines[0], (needle, err)


@pytest.fixture(params=["memory", "file", "s3"])
def remote(request: pytest.FixtureRequest, tmp_path: Path):
    """One remote per backend, so the transfer and run-cache suites run on each."""
    import uuid

    from pivot_store.config import RemoteConfig
    from pivot_store.remote import open_remote

    if request.param == "memory":
        cfg = RemoteConfig(url=f"memory://pivot-{uuid.uuid4().hex[:8]}/store")
    elif request.param == "file":
        cfg = RemoteConfig(url=f"file://{tmp_path}/remote")
    else:
        cfg = RemoteConfig(**request.getfixturevalue("s3_remote_config"))
    return open_remote(remote=cfg, name="origin")


# A moto bucket behind a counting proxy (a real HTTP hop, `FaultyProxy` with no
# faults: its log is what went over the wire) and raw hands on it (`RawRemote`,
# writing what older pivots or attackers would, following docs/format.md).
@pytest.fixture
def proxy(s3_server: S3Server) -> Iterator[FaultyProxy]:
    p = FaultyProxy(s3_server.port, every=0).start()
    yield p
    p.stop()


@pytest.fixture
def raw(s3_server: S3Server, s3_bucket: str, proxy: FaultyProxy) -> RawRemote:
    cfg = {"url": f"s3://{s3_bucket}/store", **remote_options(proxy.url)}
    return RawRemote("s3", cfg, server=s3_server, bucket=s3_bucket)
