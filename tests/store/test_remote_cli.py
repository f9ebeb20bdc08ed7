"""`pivot push / pull / fetch` end to end: a real moto S3 over loopback, a file:// remote.

Covers the fresh-clone workflow (only lock files travel through git), dry runs,
one-line errors with exit code 1 (wrong bucket, bad credentials, unknown
remote), and a pull killed with SIGKILL that leaves no partial object behind.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from pivot_store.cli.app import main
from pivot_store.config import Config, RemoteConfig, load_config, save_config
from pivot_store.hashing import hash_file
from tests.fixtures.s3 import remote_options

ROOT = Path(__file__).resolve().parents[2]


def set_remote(project: Path, name: str, cfg: dict[str, Any], default: bool = True) -> None:
    path = project / ".pivot" / "config.yaml"
    config = load_config(path)
    remotes = {**config.remotes, name: RemoteConfig(**cfg)}
    save_config(path, Config(remotes=remotes, default_remote=name if default else None))


def make_project(project: Path, nfiles: int = 20) -> None:
    assert main(["init"]) == 0
    (project / "table.csv").write_bytes(b"a,b\n" + b"1,2\n" * 5000)
    folder = project / "images"
    folder.mkdir()
    for i in range(nfiles):
        (folder / f"img{i:04d}.bin").write_bytes(os.urandom(512) + bytes([i % 256]))
    assert main(["add", "table.csv", "images"]) == 0


def clone(project: Path, dest: Path) -> Path:
    """What git would carry: lock files and config, no cache, no data."""
    (dest / ".pivot").mkdir(parents=True)
    shutil.copytree(project / ".pivot" / "stages", dest / ".pivot" / "stages")
    shutil.copy(project / ".pivot" / "config.yaml", dest / ".pivot" / "config.yaml")
    return dest


def cache_files(project: Path) -> list[Path]:
    root = project / ".pivot" / "cache" / "files"
    return [p for p in root.rglob("*") if p.is_file()] if root.exists() else []


def same_tree(a: Path, b: Path) -> None:
    for p in a.rglob("*"):
        if p.is_file():
            assert (b / p.relative_to(a)).read_bytes() == p.read_bytes()


@pytest.fixture(params=["s3", "file"])
def remote_cfg(request: pytest.FixtureRequest, tmp_path: Path) -> dict[str, Any]:
    if request.param == "s3":
        return request.getfixturevalue("s3_remote_config")
    return {"url": f"file://{tmp_path}/remote"}


def test_push_then_pull_into_fresh_clone(
    project: Path, remote_cfg: dict[str, Any], tmp_path: Path, monkeypatch, capsys
) -> None:
    make_project(project)
    set_remote(project, "origin", remote_cfg)
    capsys.readouterr()
    assert main(["push", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["transferred"] == 22 and summary["failed"] == {}
    assert summary["entries_written"] == 2
    assert main(["push", "--json"]) == 0
    noop = json.loads(capsys.readouterr().out)
    assert noop["transferred"] == 0 and noop["already_present"] == 22
    other = clone(project, tmp_path / "clone")
    monkeypatch.chdir(other)
    assert main(["pull", "-j", "4", "--checkout-mode", "copy"]) == 0
    assert "pulled 22 object(s)" in capsys.readouterr().out
    assert (other / "table.csv").read_bytes() == (project / "table.csv").read_bytes()
    same_tree(project / "images", other / "images")
    assert main(["status"]) == 0


def test_fetch_fills_cache_without_checkout(project: Path, s3_remote_config, tmp_path, monkeypatch):
    make_project(project, nfiles=3)
    set_remote(project, "origin", s3_remote_config)
    assert main(["push"]) == 0
    other = clone(project, tmp_path / "clone")
    monkeypatch.chdir(other)
    assert main(["fetch", "table.csv"]) == 0
    assert not (other / "table.csv").exists()
    assert len(cache_files(other)) == 1


def test_dry_run_sends_nothing(project: Path, s3_remote_config, s3_server, capsys) -> None:
    make_project(project, nfiles=3)
    set_remote(project, "origin", s3_remote_config)
    capsys.readouterr()
    assert main(["push", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "would push" in out and "nothing sent" in out and "images" in out
    bucket = s3_remote_config["url"].split("/")[2]
    assert s3_server.client().list_objects_v2(Bucket=bucket).get("KeyCount", 0) == 0


def test_pull_dry_run_lists_without_downloading(
    project, s3_remote_config, tmp_path, monkeypatch, capsys
):
    make_project(project, nfiles=3)
    set_remote(project, "origin", s3_remote_config)
    assert main(["push"]) == 0
    other = clone(project, tmp_path / "clone")
    monkeypatch.chdir(other)
    capsys.readouterr()
    assert main(["pull", "--dry-run"]) == 0
    assert "would pull" in capsys.readouterr().out
    assert cache_files(other) == []


def _one_error_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert err[0].startswith("error: ")
    return err[0]


def test_unknown_remote_name(project: Path, capsys) -> None:
    make_project(project, nfiles=1)
    set_remote(project, "origin", {"url": "memory://x"})
    capsys.readouterr()
    assert main(["push", "-r", "nope"]) == 1
    line = _one_error_line(capsys)
    assert "unknown remote 'nope'" in line and "pivot remote add nope" in line


def test_wrong_bucket(project: Path, s3_server, capsys) -> None:
    make_project(project, nfiles=1)
    set_remote(
        project,
        "origin",
        {"url": "s3://missing-bucket-x/p", **remote_options(s3_server.endpoint_url)},
    )
    for cmd in (["push"], ["pull"]):
        assert main(cmd) == 1
        line = _one_error_line(capsys)
        assert "'origin'" in line and "missing-bucket-x" in line and "create the bucket" in line


def test_bad_credentials(project: Path, s3_auth_server, capsys) -> None:
    make_project(project, nfiles=1)
    opts = {**remote_options(s3_auth_server.endpoint_url), "key": "AKIAWRONG", "secret": "nope"}
    set_remote(project, "origin", {"url": "s3://some-bucket/p", **opts})
    capsys.readouterr()
    assert main(["push"]) == 1
    line = _one_error_line(capsys)
    assert "'origin'" in line and "credentials" in line


def test_failed_objects_exit_1_and_are_named(
    project, s3_remote_config, tmp_path, monkeypatch, capsys
):
    make_project(project, nfiles=3)
    set_remote(project, "origin", s3_remote_config)
    assert main(["push"]) == 0
    other = clone(project, tmp_path / "clone")
    # Delete one object on the remote: pull restores the rest and names the one.
    from pivot_store.repo import Repo

    lock = Repo.find(project).read_lock("table.csv")
    from pivot_store.remote import open_remote

    rem = open_remote(remote=RemoteConfig(**s3_remote_config), name="origin")
    rem.fs.rm(rem.object_key(lock.outputs[0].hash))
    monkeypatch.chdir(other)
    capsys.readouterr()
    assert main(["pull"]) == 1
    line = _one_error_line(capsys)
    assert lock.outputs[0].hash in line and "not on the remote" in line
    same_tree(project / "images", other / "images")


def test_pull_killed_midway_leaves_no_partial_objects(
    project, s3_bucket, s3_server, tmp_path, monkeypatch
):
    """SIGKILL during a pull: every object under its final name is whole; rerun completes."""
    make_project(project, nfiles=400)
    set_remote(
        project,
        "origin",
        {"url": f"s3://{s3_bucket}/store", **remote_options(s3_server.endpoint_url)},
    )
    assert main(["push"]) == 0
    other = clone(project, tmp_path / "clone")
    code = "import sys; from pivot_store.cli.app import main; sys.exit(main(['fetch', '-j', '2']))"
    proc = subprocess.Popen(
        [sys.executable, "-c", code], cwd=other, env={**os.environ, "PYTHONPATH": str(ROOT)}
    )
    deadline = time.monotonic() + 60
    while len(cache_files(other)) < 40 and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.01)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    got = cache_files(other)
    assert 0 < len(got) < 402, "the kill should land mid-way"
    for p in got:
        assert hash_file(p) == p.parent.name + p.name.removesuffix(".dir")[:14] or p.name.endswith(
            ".dir"
        )
    monkeypatch.chdir(other)
    assert main(["pull"]) == 0
    same_tree(project / "images", other / "images")
    assert len(cache_files(other)) == 402


def test_pull_with_a_signing_key_says_git_locks_are_unsigned(
    project: Path, tmp_path: Path, monkeypatch, capsys
) -> None:
    """Issue 12 item 4: committed locks carry no signature; `pivot pull` says so, once."""
    make_project(project, nfiles=2)
    set_remote(project, "origin", {"url": f"file://{tmp_path}/remote"})
    assert main(["push"]) == 0
    other = clone(project, tmp_path / "clone")
    monkeypatch.chdir(other)
    monkeypatch.delenv("PIVOT_SIGNING_KEY_FILE", raising=False)
    monkeypatch.delenv("PIVOT_SIGNING_KEY", raising=False)
    capsys.readouterr()
    assert main(["fetch", "table.csv"]) == 0
    assert "no signature" not in capsys.readouterr().err
    monkeypatch.setenv("PIVOT_SIGNING_KEY", "team-secret")
    assert main(["pull", "--json"]) == 0
    out, err = capsys.readouterr()
    json.loads(out)  # stdout stays JSON
    assert err.count("carry no signature") == 1 and "team-secret" not in err


def test_a_push_into_a_run_cache_older_pivots_filled_hints_at_upgrade(
    project: Path, tmp_path: Path, capsys
) -> None:
    """An older pivot's run-cache (entries, no `runcache.json`) stays unmarked after a
    push, so its lookups keep listing: the push says how to fix that. A remote pivot
    starts itself is marked and never hinted."""
    make_project(project)
    old = tmp_path / "old-remote"
    folder = old / "runs" / "earlier" / ("f" * 16)  # as an older pivot left it
    folder.mkdir(parents=True)
    (folder / f"{'e' * 16}.json").write_bytes(b"{}")
    set_remote(project, "old", {"url": f"file://{old}"})
    capsys.readouterr()
    assert main(["push"]) == 0
    out = capsys.readouterr().out
    assert "pivot remote upgrade old" in out
    assert not (old / "runcache.json").exists()
    set_remote(project, "new", {"url": f"file://{tmp_path}/new-remote"})
    assert main(["push"]) == 0
    assert "pivot remote upgrade" not in capsys.readouterr().out
    assert (tmp_path / "new-remote" / "runcache.json").exists()
    # The same in `--json`, for scripts: a push that wrote entries into the old one says so.
    (project / "extra.csv").write_text("id,value\n9,9\n")
    assert main(["add", "extra.csv"]) == 0
    capsys.readouterr()
    assert main(["push", "-r", "old", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["run_cache_unmarked"] is True
    assert main(["push", "-r", "new", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["run_cache_unmarked"] is False
