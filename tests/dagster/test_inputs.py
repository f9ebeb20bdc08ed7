"""The pull sensor computes the same inputs as the step (`inputs.extra_parts`).

Issue 13 item 5 of the inputs work: outside a run, `pull_matching` must not
claim a match the step would not: another deployment's result computed with
other resource config, or against an external asset this instance has no
data version for, is not pulled.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from dagster import AssetObservation, AssetSpec, Definitions, asset, instance_for_test, materialize
from dagster._core.definitions.data_version import DATA_VERSION_TAG

from pivot_dagster import PivotIOManager, cached, pull_matching, push_new_materializations
from pivot_store.config import Config as PivotConfig
from pivot_store.config import RemoteConfig
from pivot_store.repo import Repo
from tests.dagster.helpers import load_stored
from tests.dagster.test_resource_config import Warehouse, report


@asset(code_version="1", deps=[AssetSpec("ext")])
@cached
def from_ext() -> str:
    return "from ext"


@asset(code_version="1")
@cached(file_deps=["in.txt"])
def from_file() -> str:
    return "from a file"


def _repo(root: Path, remote: Path) -> Repo:
    repo = Repo.open(root)
    repo.save_config(
        PivotConfig(remotes={"origin": RemoteConfig(url=str(remote))}, default_remote="origin")
    )
    return repo


def _defs(repo: Repo, env: str) -> Definitions:
    return Definitions(
        assets=[report, from_ext],
        resources={
            "io_manager": PivotIOManager(project_dir=str(repo.root)),
            "warehouse": Warehouse(env=env),
        },
    )


def _observe(instance: Any, version: str) -> None:
    instance.report_runless_asset_event(
        AssetObservation(asset_key="ext", tags={DATA_VERSION_TAG: version})
    )


def test_pull_agrees_with_the_step(tmp_path: Path, dagster_instance: Any) -> None:
    remote = tmp_path / "remote"
    a = _repo(tmp_path / "a", remote)
    _observe(dagster_instance, "v1")
    res = {
        "io_manager": PivotIOManager(project_dir=str(a.root)),
        "warehouse": Warehouse(env="prod"),
    }
    assert materialize([report, from_ext], resources=res, instance=dagster_instance).success
    assert not push_new_materializations(dagster_instance, a, "origin").failed
    b = _repo(tmp_path / "b", remote)
    with instance_for_test() as inst_b:
        # other resource config, no data version for `ext`: nothing matches
        assert pull_matching(_defs(b, "staging"), b, "origin", instance=inst_b) == []
        assert b.read_lock("report") is None
        # the same config: `report` matches; `ext` seen at another version: still not
        _observe(inst_b, "v0")
        got = pull_matching(_defs(b, "prod"), b, "origin", instance=inst_b)
        assert [e.asset_key.to_user_string() for e in got] == ["report"]
        assert load_stored(b.root, "report") == "rows from prod"
        _observe(inst_b, "v1")
        got = pull_matching(_defs(b, "prod"), b, "origin", instance=inst_b)
        assert [e.asset_key.to_user_string() for e in got] == ["from_ext"]
        # and the step in b agrees: both are hits
        res_b = {"io_manager": PivotIOManager(project_dir=str(b.root)),
                 "warehouse": Warehouse(env="prod")}  # fmt: skip
        r = materialize([report, from_ext], resources=res_b, instance=inst_b)
        metas = {
            m.asset_key.to_user_string(): m.metadata["pivot/cache_hit"].value
            for m in (
                e.event_specific_data.materialization for e in r.get_asset_materialization_events()
            )
        }
        assert metas == {"report": True, "from_ext": True}


def test_pull_needs_the_same_file_deps(tmp_path: Path, dagster_instance: Any) -> None:
    remote = tmp_path / "remote"
    a = _repo(tmp_path / "a", remote)
    (a.root / "in.txt").write_text("1")
    res = {"io_manager": PivotIOManager(project_dir=str(a.root))}
    assert materialize([from_file], resources=res, instance=dagster_instance).success
    assert not push_new_materializations(dagster_instance, a, "origin").failed
    b = _repo(tmp_path / "b", remote)
    defs = Definitions(
        assets=[from_file], resources={"io_manager": PivotIOManager(project_dir=str(b.root))}
    )
    with instance_for_test() as inst_b:
        assert pull_matching(defs, b, "origin", instance=inst_b) == []  # no file here
        (b.root / "in.txt").write_text("2")
        assert pull_matching(defs, b, "origin", instance=inst_b) == []  # another file
        (b.root / "in.txt").write_text("1")
        got = pull_matching(defs, b, "origin", instance=inst_b)
        assert [e.asset_key.to_user_string() for e in got] == ["from_file"]


def test_pull_follows_a_self_dependency(tmp_path: Path, dagster_instance: Any) -> None:
    """Day 2 names day 1's content for the sensor as for the step: with day 1 unknown
    here, day 2 is not pulled; once day 1 is there, both are, in order."""
    import shutil

    from tests.dagster.test_fingerprint import DAY1, DAY2, cumsum

    remote = tmp_path / "remote"
    a = _repo(tmp_path / "a", remote)
    res = {"io_manager": PivotIOManager(project_dir=str(a.root))}
    for day in (DAY1, DAY2):
        assert materialize([cumsum], resources=res, instance=dagster_instance,
                           partition_key=day).success  # fmt: skip
    assert not push_new_materializations(dagster_instance, a, "origin").failed
    day1_entries = remote / "runs" / "cumsum" / f"@{DAY1}"
    assert day1_entries.is_dir()
    hidden = tmp_path / "hidden"
    shutil.move(day1_entries, hidden)  # the remote knows day 2 only
    c = _repo(tmp_path / "c", remote)
    defs_c = Definitions(
        assets=[cumsum], resources={"io_manager": PivotIOManager(project_dir=str(c.root))}
    )
    with instance_for_test() as inst_c:
        got = pull_matching(defs_c, c, "origin", instance=inst_c)
        assert [e.partition for e in got if e.partition in (DAY1, DAY2)] == []
        shutil.move(hidden, day1_entries)
        got = pull_matching(defs_c, c, "origin", instance=inst_c)
        assert [e.partition for e in got if e.partition in (DAY1, DAY2)] == [DAY1, DAY2]
        assert load_stored(c.root, "cumsum", DAY2) == 2
