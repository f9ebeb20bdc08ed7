"""Issue 12: a shared remote is untrusted input. Each test is one attack, under both remotes.

The attacker never runs pivot: `tests/fixtures/attacker.py` writes raw bytes
into a folder remote or into moto S3 following `docs/format.md`. The victim is
a new user's deployment (default `PivotIOManager(remote=...)`, no signing key)
that only uses the public API. A harmless payload (a pickle that creates a
marker file) proves whether attacker code ran.

Every item test here failed at 9b629a1 for the reason the issue gives and
passes now that the item is fixed.
"""

from __future__ import annotations

import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from dagster import asset, instance_for_test, materialize

from pivot_dagster import PivotIOManager, cached
from pivot_store.config import Config, RemoteConfig
from pivot_store.repo import Repo
from tests.fixtures import attacker
from tests.fixtures.attacker import HostileRemote

REMOTE = "origin"
CALLS: list[str] = []
SEEN: dict[str, Any] = {}


@pytest.fixture(params=["folder", "s3"])
def shared(request: pytest.FixtureRequest, tmp_path: Path) -> HostileRemote:
    """The remote every deployment and the attacker write to: a folder, then moto S3."""
    if request.param == "folder":
        return attacker.folder_remote(tmp_path / "shared-remote")
    server = request.getfixturevalue("s3_server")
    return attacker.s3_remote(server, server.make_bucket("hostile"))


@pytest.fixture(autouse=True)
def _no_signing_key(monkeypatch: pytest.MonkeyPatch) -> None:
    """A new user's deployment: no signing key unless a test says so."""
    monkeypatch.delenv("PIVOT_SIGNING_KEY", raising=False)
    monkeypatch.delenv("PIVOT_SIGNING_KEY_FILE", raising=False)
    CALLS.clear()
    SEEN.clear()


def _deployment(root: Path, remote: HostileRemote) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    Repo.open(root).save_config(
        Config(remotes={REMOTE: RemoteConfig(**remote.config)}, default_remote=REMOTE)
    )
    return root


def _lock(root: Path, name: str) -> dict[str, Any]:
    """The victim's lock file, read as raw YAML (docs/format.md), not through pivot."""
    return yaml.safe_load((root / ".pivot" / "stages" / f"{name}.lock").read_text())


# --- item 1: an output with no `format` was loaded as pickle --------------------------
@asset(code_version="1")
@cached
def plain_json() -> dict:
    CALLS.append("plain_json")
    return {"n": 1}


@asset
def reads_plain_json(plain_json: Any) -> int:
    SEEN["reads_plain_json"] = plain_json
    return 1


def test_entry_without_format_is_not_unpickled(project: Path, shared: HostileRemote) -> None:
    root = _deployment(project, shared)
    marker = project / "PWNED-item1"
    payload = attacker.marker_pickle(marker)
    oid = shared.put_object(payload)
    the_parts = attacker.parts("1")  # what the victim computes: code version, no deps
    record = attacker.lock_record("plain_json", the_parts, [attacker.output(oid, len(payload))])
    shared.plant_entry(record)

    io = PivotIOManager(project_dir=str(root), remote=REMOTE)
    with instance_for_test() as inst:
        res = materialize([plain_json, reads_plain_json], resources={"io_manager": io},
                          instance=inst, raise_on_error=False)  # fmt: skip

    assert not marker.exists(), "a run-cache entry without `format` was unpickled"
    # The plant was aimed right: the victim's own fingerprint is the one attacked.
    assert _lock(root, "plain_json")["fingerprint"] == record["fingerprint"]
    assert res.success
    assert CALLS == ["plain_json"], "the hostile entry was taken as a hit"
    assert SEEN["reads_plain_json"] == {"n": 1}
    assert _lock(root, "plain_json")["outputs"][0]["format"] == "json"


# --- item 2: a `format: path` output checked out over .git (and elsewhere) ---------------
@asset(code_version="1")
@cached
def summary_json() -> dict:
    CALLS.append("summary_json")
    return {"total": 42}


@asset
def reads_summary_json(summary_json: Any) -> int:
    SEEN["reads_summary_json"] = summary_json
    return 1


HOOK = b"#!/bin/sh\ntouch PWNED-hook\n"


def _git(root: Path, *args: str) -> str:
    env = {"GIT_CONFIG_NOSYSTEM": "1", "HOME": str(root.parent), "PATH": "/usr/bin:/bin"}
    out = subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True,
                         env=env, check=True)  # fmt: skip
    return out.stdout


def _git_repo(root: Path) -> None:
    _git(root, "init", "-q")
    (root / "README.md").write_text("the victim's project\n")
    _git(root, "add", "README.md")
    _git(root, "-c", "user.name=v", "-c", "user.email=v@x", "commit", "-q", "-m", "first")


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes()
            for p in sorted(folder.rglob("*")) if p.is_file()}  # fmt: skip


def _plant_path_output(shared: HostileRemote, target: str) -> dict[str, Any]:
    """An entry for summary_json's fingerprint whose output is a path at `target`."""
    if target == ".git":
        hook = shared.put_object(HOOK)
        manifest = attacker.manifest_bytes({"hooks/pre-commit": (hook, len(HOOK), True)})
        oid = shared.put_object(manifest, ".dir")
        out = attacker.output(oid, len(HOOK), fmt="path", path=target, kind="dir")
    else:  # a file: a config that points the victim at the attacker's bucket
        data = b"default_remote: evil\nremotes:\n  evil: s3://attacker/bucket\n"
        out = attacker.output(shared.put_object(data), len(data), fmt="path", path=target)
    record = attacker.lock_record("summary_json", attacker.parts("1"), [out])
    shared.plant_entry(record)
    return record


@pytest.mark.parametrize(
    "target",
    [
        pytest.param(".git", id="dot-git"),
        pytest.param(".pivot/config.yaml", id="dot-pivot"),
        # Refused at 9b629a1 already (names are validated): kept so they stay refused.
        pytest.param("../outside", id="parent"),
        pytest.param("ABSOLUTE", id="absolute"),
    ],
)
def test_path_output_from_remote_cannot_write_outside_the_asset(
    project: Path, shared: HostileRemote, tmp_path: Path, target: str
) -> None:
    root = _deployment(project, shared)
    _git_repo(root)
    absolute = tmp_path / "absolute-target"
    if target == "ABSOLUTE":
        target = str(absolute)
    git_before = _snapshot(root / ".git")
    log_before = _git(root, "log", "--format=%H %s")
    config_before = (root / ".pivot" / "config.yaml").read_bytes()
    record = _plant_path_output(shared, target)

    io = PivotIOManager(project_dir=str(root), remote=REMOTE)
    with instance_for_test() as inst:
        res = materialize([summary_json, reads_summary_json], resources={"io_manager": io},
                          instance=inst, raise_on_error=False)  # fmt: skip

    git_after = _snapshot(root / ".git")
    gone, new = sorted(git_before.keys() - git_after), sorted(git_after.keys() - git_before)
    assert git_after == git_before, (
        f".git was changed by a remote entry: {len(gone)} files deleted, new: {new}"
    )
    assert not (root / ".git" / "hooks" / "pre-commit").exists()
    assert _git(root, "log", "--format=%H %s") == log_before
    _git(root, "status", "--porcelain")  # still a working repository
    assert (root / ".pivot" / "config.yaml").read_bytes() == config_before, (
        ".pivot/config.yaml was overwritten by a remote entry"
    )
    assert not (tmp_path / "outside").exists() and not absolute.exists()
    assert res.success
    assert CALLS == ["summary_json"], "the hostile entry was taken as a hit"
    assert SEEN["reads_summary_json"] == {"total": 42}
    lock = _lock(root, "summary_json")
    assert lock["fingerprint"] == record["fingerprint"]  # the plant was aimed right
    assert lock["outputs"][0]["format"] == "json"


# --- item 3: refusing an untrusted pickle held only for the first load -----------------
@asset
def pickled_up() -> dict:
    CALLS.append("pickled_up")
    return {"never": "run in the victim"}


@asset
def reads_pickled_up(pickled_up: Any) -> int:
    SEEN.setdefault("reads_pickled_up", []).append(pickled_up)
    return 1


def test_untrusted_pickle_is_refused_on_every_load(project: Path, shared: HostileRemote) -> None:
    root = _deployment(project, shared)
    marker = project / "PWNED-item3"
    payload = attacker.marker_pickle(marker)
    out = attacker.output(shared.put_object(payload), len(payload), fmt="pickle")
    record = attacker.lock_record("pickled_up", attacker.parts("run-attacker"), [out])
    shared.plant_latest(record)  # "the newest pickled_up", for remote-first readers

    io = PivotIOManager(project_dir=str(root), remote=REMOTE, remote_first=True)
    with instance_for_test() as inst:
        for attempt in (1, 2):  # the same deployment, the same step, run again
            materialize([pickled_up, reads_pickled_up], resources={"io_manager": io},
                        instance=inst, selection=[reads_pickled_up],
                        raise_on_error=False)  # fmt: skip
            assert not marker.exists(), f"the remote pickle was unpickled on load {attempt}"
    assert CALLS == []
    assert SEEN.get("reads_pickled_up", []) == []


# --- item 6: remote-first, a plain upstream: the instance's record must rule -------------
UP_VALUE: dict[str, str] = {}


@asset
def plain_up() -> dict:
    CALLS.append("plain_up")
    return dict(UP_VALUE)


@asset
def reads_plain_up(plain_up: Any) -> int:
    SEEN["reads_plain_up"] = plain_up
    return 1


def _step(root: Path, remote: HostileRemote, inst: Any, selection: list[Any]) -> Any:
    """One remote-first step: a fresh project folder (an empty machine), the given instance."""
    io = PivotIOManager(project_dir=str(_deployment(root, remote)), remote_first=True)
    return materialize([plain_up, reads_plain_up], resources={"io_manager": io}, instance=inst,
                       selection=selection, raise_on_error=False)  # fmt: skip


def test_remote_first_plain_upstream_follows_this_instance(
    tmp_path: Path, shared: HostileRemote
) -> None:
    with instance_for_test() as inst_b:
        UP_VALUE.update(deployment="B")
        assert _step(tmp_path / "B-step0", shared, inst_b, [plain_up]).success
        h1 = _lock(tmp_path / "B-step0", "plain_up")["outputs"][0]["hash"]
        # Deployment A (its own instance, same remote) later publishes a newer plain_up.
        with instance_for_test() as inst_a:
            UP_VALUE.update(deployment="A")
            assert _step(tmp_path / "A-step0", shared, inst_a, [plain_up]).success
        h2 = _lock(tmp_path / "A-step0", "plain_up")["outputs"][0]["hash"]
        assert h1 != h2
        assert len(shared.keys("latest/plain_up")) == 2  # B's pointer, then A's newer one
        # B's downstream runs on another empty machine; B's instance records H1.
        res = _step(tmp_path / "B-step1", shared, inst_b, [reads_plain_up])

    assert SEEN.get("reads_plain_up") != {"deployment": "A"}, (
        "B's downstream loaded A's newer plain_up although B's instance records " + h1
    )
    if res.success:
        assert SEEN["reads_plain_up"] == {"deployment": "B"}
        assert _lock(tmp_path / "B-step1", "plain_up")["outputs"][0]["hash"] == h1
    assert CALLS == ["plain_up", "plain_up"]


def test_remote_first_a_newer_non_pivot_record_is_not_replaced_by_a_pointer(
    tmp_path: Path, shared: HostileRemote
) -> None:
    """Item 6, the instance's newest record is not pivot's: a miss, not A's pointer."""
    from dagster import AssetMaterialization

    with instance_for_test() as inst_b:
        UP_VALUE.update(deployment="B")
        assert _step(tmp_path / "B-step0", shared, inst_b, [plain_up]).success
        inst_b.report_runless_asset_event(AssetMaterialization("plain_up"))  # no pivot keys
        with instance_for_test() as inst_a:
            UP_VALUE.update(deployment="A")
            assert _step(tmp_path / "A-step0", shared, inst_a, [plain_up]).success
        res = _step(tmp_path / "B-step1", shared, inst_b, [reads_plain_up])

    assert SEEN.get("reads_plain_up") is None, "a pointer replaced the instance's newest record"
    assert not res.success
    assert CALLS == ["plain_up", "plain_up"]


def test_the_attacker_writes_what_pivot_reads(project: Path, shared: HostileRemote) -> None:
    """Control: with a pickle-free planted entry the victim does take the hit.

    So the hostile tests above fail for the reason they name (the entry is
    read, a check is missing), not because the plant was malformed.
    """
    root = _deployment(project, shared)
    data = attacker.canonical_json({"n": 1, "planted": True})
    out = attacker.output(shared.put_object(data), len(data), fmt="json")
    old = datetime.now(UTC) - timedelta(days=1)
    shared.plant_entry(attacker.lock_record("plain_json", attacker.parts("1"), [out]), old)
    io = PivotIOManager(project_dir=str(root), remote=REMOTE)
    with instance_for_test() as inst:
        assert materialize([plain_json, reads_plain_json], resources={"io_manager": io},
                           instance=inst).success  # fmt: skip
    assert CALLS == []  # a hit: the remote value is used (json cannot run code)
    assert SEEN["reads_plain_json"] == {"n": 1, "planted": True}
