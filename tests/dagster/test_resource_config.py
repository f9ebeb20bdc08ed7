"""The config of the resources a `cached` asset requires is part of its fingerprint.

Issue 13 item 1: a `ConfigurableResource` changed from `prod` to `staging` was
a hit returning prod's value. EnvVar-backed fields are recorded by the
variable's name, never its value; `exclude_resources` leaves fields out.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from dagster import ConfigurableResource, EnvVar, asset, materialize

from pivot_dagster import PivotIOManager, cached
from pivot_store.repo import Repo
from tests.dagster.helpers import hits, load_stored, materializations

CALLS: list[str] = []


class Warehouse(ConfigurableResource):
    env: str = "dev"
    password: str = ""
    port: int = 5432


class Creds(ConfigurableResource):
    user: str = "nobody"


class Client(ConfigurableResource):
    creds: Creds
    region: str = "eu"


@asset(code_version="1")
@cached
def whoami(client: Client) -> str:
    CALLS.append("whoami")
    return f"{client.creds.user}@{client.region}"


@asset(code_version="1")
@cached
def report(warehouse: Warehouse) -> str:
    CALLS.append(warehouse.env)
    return f"rows from {warehouse.env}"


@asset(code_version="1")
@cached(exclude_resources=["warehouse.password"])
def tolerant(warehouse: Warehouse) -> str:
    CALLS.append("tolerant")
    return warehouse.env


def _run(project: Path, instance: Any, assets: list, warehouse: Warehouse) -> str:
    res = {"io_manager": PivotIOManager(project_dir=str(project)), "warehouse": warehouse}
    r = materialize(assets, resources=res, instance=instance)
    assert r.success
    return r.run_id


def test_changed_resource_config_is_a_miss(project: Path, dagster_instance: Any) -> None:
    CALLS.clear()
    run = _run(project, dagster_instance, [report], Warehouse(env="prod"))
    assert hits(dagster_instance, run) == {"report": False}
    run = _run(project, dagster_instance, [report], Warehouse(env="prod"))
    assert hits(dagster_instance, run) == {"report": True}
    run = _run(project, dagster_instance, [report], Warehouse(env="staging"))
    assert hits(dagster_instance, run) == {"report": False}
    assert load_stored(project, "report") == "rows from staging"
    assert CALLS == ["prod", "staging"]
    lock = Repo.open(project).read_lock("report")
    # defaults filled in, as the run resolved them
    assert lock.parts.resources == {"warehouse": {"env": "staging", "password": "", "port": 5432}}


def test_env_var_fields_are_recorded_by_name(
    project: Path, dagster_instance: Any, monkeypatch: Any
) -> None:
    CALLS.clear()
    monkeypatch.setenv("WH_PASSWORD", "hunter2-secret")
    monkeypatch.setenv("WH_PASSWORD_NEW", "other-secret")
    _run(project, dagster_instance, [report], Warehouse(env="prod", password=EnvVar("WH_PASSWORD")))
    lock_text = (project / ".pivot/stages/report.lock").read_text()
    assert "hunter2-secret" not in lock_text
    lock = Repo.open(project).read_lock("report")
    assert lock.parts.resources["warehouse"]["password"] == {"env": "WH_PASSWORD"}
    meta = materializations(dagster_instance, "report")[-1].metadata
    assert "hunter2-secret" not in json.dumps({k: str(v) for k, v in meta.items()})
    # the value rotates: same name, a hit (the documented rule)
    monkeypatch.setenv("WH_PASSWORD", "rotated-secret")
    run = _run(project, dagster_instance, [report],
               Warehouse(env="prod", password=EnvVar("WH_PASSWORD")))  # fmt: skip
    assert hits(dagster_instance, run) == {"report": True}
    # another variable: a miss
    run = _run(project, dagster_instance, [report],
               Warehouse(env="prod", password=EnvVar("WH_PASSWORD_NEW")))  # fmt: skip
    assert hits(dagster_instance, run) == {"report": False}
    assert CALLS == ["prod", "prod"]
    assert "other-secret" not in (project / ".pivot/stages/report.lock").read_text()


def test_excluded_fields_stay_out(project: Path, dagster_instance: Any) -> None:
    CALLS.clear()
    _run(project, dagster_instance, [tolerant], Warehouse(env="prod", password="a"))
    run = _run(project, dagster_instance, [tolerant], Warehouse(env="prod", password="b"))
    assert hits(dagster_instance, run) == {"tolerant": True}
    lock = Repo.open(project).read_lock("tolerant")
    assert lock.parts.resources == {"warehouse": {"env": "prod", "port": 5432}}
    run = _run(project, dagster_instance, [tolerant], Warehouse(env="staging", password="b"))
    assert hits(dagster_instance, run) == {"tolerant": False}
    assert CALLS == ["tolerant", "tolerant"]


def test_run_config_overrides_the_definition(project: Path, dagster_instance: Any) -> None:
    CALLS.clear()
    res = {"io_manager": PivotIOManager(project_dir=str(project)), "warehouse": Warehouse()}
    cfg = {"resources": {"warehouse": {"config": {"env": "qa"}}}}
    assert materialize([report], resources=res, instance=dagster_instance, run_config=cfg).success
    assert load_stored(project, "report") == "rows from qa"
    r = materialize([report], resources=res, instance=dagster_instance)
    assert hits(dagster_instance, r.run_id) == {"report": False}
    assert load_stored(project, "report") == "rows from dev"
    assert CALLS == ["qa", "dev"]


def test_nested_resource_config_counts(project: Path, dagster_instance: Any) -> None:
    CALLS.clear()
    io = PivotIOManager(project_dir=str(project))

    def run(user: str) -> bool:
        res = {"io_manager": io, "client": Client(creds=Creds(user=user))}
        r = materialize([whoami], resources=res, instance=dagster_instance)
        return hits(dagster_instance, r.run_id)["whoami"]

    assert run("alice") is False
    assert run("alice") is True
    assert run("bob") is False
    assert load_stored(project, "whoami") == "bob@eu"
    lock = Repo.open(project).read_lock("whoami")
    assert lock.parts.resources == {"client": {"creds": {"user": "bob"}, "region": "eu"}}
    assert CALLS == ["whoami", "whoami"]
