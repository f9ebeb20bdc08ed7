"""Issue 12 items 1 and 2, the rules the first hostile file leaves to unit tests, as attacks.

`test_hostile_remote.py` plants a formatless pickle and `path` outputs aimed at
`.git`, `.pivot` and outside the project. This file plants what is left, each
under a folder remote and moto S3, raw (`tests/fixtures/attacker.py`, after
`docs/format.md`), against a new user's deployment (no signing key):

- a value in a format the asset cannot produce (its forced format says JSON,
  the entry says pickle; a format name nobody registered);
- a `path` output for an asset that does not return a `Path`;
- a `path` output of a Path asset somewhere other than its own path;
- a folder checkout over files the asset's previous lock never listed;
- a `path` output over a project source file, by run-cache entry and by
  remote-first `latest/` pointer;
- a `.npy` holding a pickle (a safe format stays safe).

Each test failed on 9b629a1 by its main assertion, except the `.npy` one (held
there already; it fails with its guard removed). A Path asset's first hit here
(no lock of it in this project) is refused, since only its own lock (or, in
remote-first mode, the instance's recorded path) says where it writes; an honest
remote-first Path upstream is loaded at the path the instance recorded.
"""

from __future__ import annotations

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
HERE: list[Path] = []  # the victim's project folder, for the Path assets' bodies


@pytest.fixture(params=["folder", "s3"])
def shared(request: pytest.FixtureRequest, tmp_path: Path) -> HostileRemote:
    """The remote the victim and the attacker both write to: a folder, then moto S3."""
    if request.param == "folder":
        return attacker.folder_remote(tmp_path / "shared-remote")
    server = request.getfixturevalue("s3_server")
    return attacker.s3_remote(server, server.make_bucket("hostile"))


@pytest.fixture(autouse=True)
def _no_signing_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PIVOT_SIGNING_KEY", raising=False)
    monkeypatch.delenv("PIVOT_SIGNING_KEY_FILE", raising=False)
    CALLS.clear()
    SEEN.clear()
    HERE.clear()


def _deployment(root: Path, remote: HostileRemote) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    Repo.open(root).save_config(
        Config(remotes={REMOTE: RemoteConfig(**remote.config)}, default_remote=REMOTE)
    )
    HERE[:] = [root]
    return root


def _lock(root: Path, name: str) -> dict[str, Any]:
    """The victim's lock, read as raw YAML (docs/format.md)."""
    return yaml.safe_load((root / ".pivot" / "stages" / f"{name}.lock").read_text())


def _run(root: Path, assets: list[Any], **io_kw: Any) -> Any:
    io = PivotIOManager(project_dir=str(root), remote=REMOTE, **io_kw)
    with instance_for_test() as inst:
        return materialize(assets, resources={"io_manager": io}, instance=inst,
                           raise_on_error=False)  # fmt: skip


# --- item 1: a format the asset could not have produced ---------------------------------
@asset(code_version="1", metadata={"pivot/format": "json"})
@cached
def forced_json() -> dict:
    CALLS.append("forced_json")
    return {"n": 1}


@asset
def reads_forced_json(forced_json: Any) -> int:
    SEEN["reads_forced_json"] = forced_json
    return 1


@pytest.mark.parametrize("fmt", ["pickle", "evil"])
def test_a_remote_entry_must_be_in_the_assets_forced_format(
    project: Path, shared: HostileRemote, fmt: str
) -> None:
    """The deployment trusts remote pickles in general; this asset is forced to JSON.

    An entry that says `pickle` (or a format no handler has) is not this asset's
    result: a miss, the asset runs, the marker payload never runs.
    """
    root = _deployment(project, shared)
    marker = project / f"PWNED-forced-{fmt}"
    payload = attacker.marker_pickle(marker)
    out = attacker.output(shared.put_object(payload), len(payload), fmt=fmt)
    record = attacker.lock_record("forced_json", attacker.parts("1"), [out])
    shared.plant_entry(record)

    res = _run(root, [forced_json, reads_forced_json], trust_remote_pickle=True)

    assert not marker.exists(), f"a {fmt!r} entry for a JSON-forced asset was unpickled"
    assert _lock(root, "forced_json")["fingerprint"] == record["fingerprint"]  # aimed right
    assert res.success
    assert CALLS == ["forced_json"], "the entry in the wrong format was taken as a hit"
    assert SEEN["reads_forced_json"] == {"n": 1}
    assert _lock(root, "forced_json")["outputs"][0]["format"] == "json"


# --- item 2: a path output for an asset that returns no Path ---------------------------
@asset(code_version="1")
@cached
def counts() -> dict:
    CALLS.append("counts")
    return {"rows": 3}


def test_a_path_output_is_refused_for_an_asset_that_returns_no_path(
    project: Path, shared: HostileRemote
) -> None:
    """An ordinary target (not `.git`, not `.pivot`): refused because `counts` returns a dict."""
    root = _deployment(project, shared)
    (root / "notes.txt").write_text("the user's own notes\n")
    data = b"the attacker's notes\n"
    out = attacker.output(shared.put_object(data), len(data), fmt="path", path="notes.txt")
    record = attacker.lock_record("counts", attacker.parts("1"), [out])
    shared.plant_entry(record)

    res = _run(root, [counts])

    assert (root / "notes.txt").read_text() == "the user's own notes\n", (
        "a remote `path` output was checked out for an asset that returns a dict"
    )
    assert _lock(root, "counts")["fingerprint"] == record["fingerprint"]
    assert res.success and CALLS == ["counts"]
    assert _lock(root, "counts")["outputs"][0]["format"] == "json"


# --- item 2: a Path asset's output only at its own path --------------------------------
def _write_report(version: str) -> Path:
    CALLS.append(f"report-{version}")
    p = HERE[0] / "reports" / "out.txt"
    p.parent.mkdir(exist_ok=True)
    p.write_text(f"report {version}\n")
    return p


@asset(name="report", code_version="1")
@cached
def report_v1() -> Path:
    return _write_report("1")


@asset(name="report", code_version="2")
@cached
def report_v2() -> Path:
    return _write_report("2")


def test_a_path_output_lands_only_at_the_assets_own_path(
    project: Path, shared: HostileRemote
) -> None:
    """`report`'s lock here names `reports/out.txt`; an entry for its next version names
    the project's source file. Refused: the asset runs and the source is untouched."""
    root = _deployment(project, shared)
    (root / "src").mkdir()
    (root / "src" / "app.py").write_text("print('the user code')\n")
    assert _run(root, [report_v1]).success
    assert _lock(root, "report")["outputs"][0]["path"] == "reports/out.txt"
    data = b"import os; os.system('touch PWNED-app')\n"
    out = attacker.output(shared.put_object(data), len(data), fmt="path", path="src/app.py")
    record = attacker.lock_record("report", attacker.parts("2"), [out])
    shared.plant_entry(record)

    res = _run(root, [report_v2])

    assert (root / "src" / "app.py").read_text() == "print('the user code')\n", (
        "a remote entry checked a Path asset's output out over another project file"
    )
    assert res.success
    assert CALLS == ["report-1", "report-2"], "the entry at another path was taken as a hit"
    lock = _lock(root, "report")
    assert lock["fingerprint"] == record["fingerprint"]
    assert lock["outputs"][0]["path"] == "reports/out.txt"


# --- item 2: a folder checkout deletes only what the previous lock listed ----------------
@asset(name="tree", code_version="1")
@cached
def tree_v1() -> Path:
    CALLS.append("tree-1")
    d = HERE[0] / "out"
    d.mkdir(exist_ok=True)
    (d / "a.txt").write_text("a\n")
    return d


@asset(name="tree", code_version="2")
@cached
def tree_v2() -> Path:
    CALLS.append("tree-2")
    return HERE[0] / "out"


def test_a_remote_folder_checkout_deletes_only_what_the_previous_lock_listed(
    project: Path, shared: HostileRemote
) -> None:
    """A planted folder result at the asset's own path is a hit (no key: its bytes are
    the writer's word), but its checkout removes only what `tree`'s previous lock
    listed (`a.txt`), never the user's file beside it."""
    root = _deployment(project, shared)
    assert _run(root, [tree_v1]).success
    (root / "out" / "mine.txt").write_text("the user's, never listed by a lock\n")
    b = b"b from the remote\n"
    manifest = attacker.manifest_bytes({"b.txt": (shared.put_object(b), len(b), False)})
    oid = shared.put_object(manifest, ".dir")
    out = attacker.output(oid, len(b), fmt="path", path="out", kind="dir")
    shared.plant_entry(attacker.lock_record("tree", attacker.parts("2"), [out]))

    res = _run(root, [tree_v2])

    assert (root / "out" / "mine.txt").exists(), "a folder checkout deleted an unlisted file"
    assert (root / "out" / "mine.txt").read_text() == "the user's, never listed by a lock\n"
    assert res.success and CALLS == ["tree-1"]  # the planted result was a hit
    assert (root / "out" / "b.txt").read_bytes() == b
    assert not (root / "out" / "a.txt").exists()  # listed before, dropped now: removed


# --- item 2, without a lock here: where a Path asset's output may land ------------------
APP = "print('the user code')\n"
EVIL_APP = b"import os; os.system('touch PWNED-app')\n"


def _project_with_source(project: Path, shared: HostileRemote) -> tuple[Path, str]:
    """The victim's project with its own `src/app.py`; the attacker's replacement uploaded."""
    root = _deployment(project, shared)
    (root / "src").mkdir()
    (root / "src" / "app.py").write_text(APP)
    return root, shared.put_object(EVIL_APP)


def test_a_first_hit_of_a_path_asset_cannot_replace_a_project_file(
    project: Path, shared: HostileRemote
) -> None:
    """`report` never ran here; a planted entry for its fingerprint names `src/app.py`."""
    root, oid = _project_with_source(project, shared)
    out = attacker.output(oid, len(EVIL_APP), fmt="path", path="src/app.py")
    shared.plant_entry(attacker.lock_record("report", attacker.parts("1"), [out]))

    _run(root, [report_v1])

    assert (root / "src" / "app.py").read_text() == APP, (
        "a remote entry replaced a project source file on a Path asset's first hit"
    )


@asset(name="report", code_version="1", metadata={"pivot/workspace_path": "reports/out.txt"})
@cached
def declared_report() -> Path:
    return _write_report("1")


def test_a_declared_path_refuses_a_first_hit_elsewhere(
    project: Path, shared: HostileRemote
) -> None:
    """With `pivot/workspace_path` declared, a planted entry naming another path is refused
    although this project has no lock of the asset yet: the body runs."""
    root, oid = _project_with_source(project, shared)
    out = attacker.output(oid, len(EVIL_APP), fmt="path", path="src/app.py")
    shared.plant_entry(attacker.lock_record("report", attacker.parts("1"), [out]))

    assert _run(root, [declared_report]).success

    assert (root / "src" / "app.py").read_text() == APP
    assert CALLS == ["report-1"]


def test_a_declared_path_takes_a_first_hit_there(project: Path, shared: HostileRemote) -> None:
    """Control: an entry at the declared path is a hit before this project has the lock."""
    root = _deployment(project, shared)
    data = b"the remote's report\n"
    out = attacker.output(shared.put_object(data), len(data), fmt="path", path="reports/out.txt")
    shared.plant_entry(attacker.lock_record("report", attacker.parts("1"), [out]))

    assert _run(root, [declared_report]).success

    assert CALLS == []
    assert (root / "reports" / "out.txt").read_bytes() == data


@asset
def up_path() -> Path:
    raise AssertionError("remote-first: the upstream is not run in the downstream's step")


@asset
def reads_up_path(up_path: Path) -> int:
    SEEN["reads_up_path"] = up_path
    return 1


def test_a_remote_first_path_upstream_cannot_replace_a_project_file(
    project: Path, shared: HostileRemote
) -> None:
    """A planted `latest/` pointer for a Path upstream naming `src/app.py` (failed on 9b629a1)."""
    root, oid = _project_with_source(project, shared)
    out = attacker.output(oid, len(EVIL_APP), fmt="path", path="src/app.py")
    shared.plant_latest(attacker.lock_record("up_path", attacker.parts("run-x"), [out]))
    io = PivotIOManager(project_dir=str(root), remote=REMOTE, remote_first=True)
    with instance_for_test() as inst:
        res = materialize([up_path, reads_up_path], resources={"io_manager": io}, instance=inst,
                          selection=[reads_up_path], raise_on_error=False)  # fmt: skip

    assert (root / "src" / "app.py").read_text() == APP, (
        "a remote-first upstream's pointer replaced a project source file"
    )
    assert not res.success and "reads_up_path" not in SEEN


@asset
def honest_path() -> Path:
    p = HERE[0] / "out" / "honest.txt"
    p.parent.mkdir(exist_ok=True)
    p.write_text("honest\n")
    return p


@asset
def reads_honest_path(honest_path: Path) -> int:
    SEEN["reads_honest_path"] = honest_path.read_text()
    return 1


def test_control_a_remote_first_path_upstream_made_by_pivot_is_loaded(
    tmp_path: Path, shared: HostileRemote
) -> None:
    """Control for the test above: an honest Path upstream from another step is usable."""
    with instance_for_test() as inst:
        for step, selection in (("step0", [honest_path]), ("step1", [reads_honest_path])):
            root = _deployment(tmp_path / step, shared)
            io = PivotIOManager(project_dir=str(root), remote_first=True)
            res = materialize([honest_path, reads_honest_path], resources={"io_manager": io},
                              instance=inst, selection=selection, raise_on_error=False)  # fmt: skip
            assert res.success, step
    assert SEEN["reads_honest_path"] == "honest\n"


# --- a safe format stays safe: a planted `.npy` that holds a pickle -----------------------
@asset(code_version="1")
@cached
def matrix() -> Any:
    import numpy as np

    CALLS.append("matrix")
    return np.arange(4)


@asset
def reads_matrix(matrix: Any) -> int:
    SEEN["reads_matrix"] = matrix
    return 1


def test_a_planted_npy_holding_a_pickle_never_runs_it(project: Path, shared: HostileRemote) -> None:
    """`.npy` may embed a pickle (an object array); pivot reads it with allow_pickle=False.

    The entry is in the asset's own format, so it can be a hit; the load refuses
    the object array instead of running it. (Held on 9b629a1 already; fails with
    `allow_pickle=True` in `formats/numpy.py`.)
    """
    import io as _io

    import numpy as np

    root = _deployment(project, shared)
    marker = project / "PWNED-npy"
    buf = _io.BytesIO()
    payload = np.empty(1, dtype=object)
    payload[0] = attacker._Touch(marker)
    np.save(buf, payload, allow_pickle=True)
    data = buf.getvalue()
    out = attacker.output(shared.put_object(data), len(data), fmt="npy")
    record = attacker.lock_record("matrix", attacker.parts("1"), [out])
    shared.plant_entry(record)

    res = _run(root, [matrix, reads_matrix])

    assert not marker.exists(), "loading a planted .npy ran the pickle inside it"
    assert _lock(root, "matrix")["fingerprint"] == record["fingerprint"]  # aimed right
    if res.success:  # recomputed: the downstream has the honest array
        assert list(SEEN["reads_matrix"]) == [0, 1, 2, 3]
    else:  # a hit whose load refused the object array: the body saw nothing
        assert "reads_matrix" not in SEEN
