"""Issue 12 items 1 and 2: a remote output only in a format the asset could produce."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from dagster import MaterializeResult, asset

from pivot_dagster import cached
from pivot_dagster.formats import expect
from pivot_dagster.formats.expect import Expected, refusal
from pivot_store.lockfile import OutputRecord

OID = "0123456789abcdef"


def _out(fmt: str | None, path: str | None = None) -> OutputRecord:
    return OutputRecord(name="result", hash=OID, size=1, format=fmt, path=path)


def test_missing_and_unknown_formats_are_refused() -> None:
    assert "no format" in refusal(_out(None))  # type: ignore[operator]
    assert "unknown format" in refusal(_out("evil"))  # type: ignore[operator]
    assert refusal(_out("json")) is None
    assert refusal(_out("pickle")) is None  # the pickle rule is the engine's (trust)


def test_a_forced_format_must_match() -> None:
    assert "asset's format is 'json'" in refusal(_out("pickle"), Expected(forced="json"))  # type: ignore[operator]
    assert refusal(_out("json"), Expected(forced="json")) is None


@pytest.mark.parametrize("path", [".git", ".pivot/config.yaml", "a/.git/hooks", ".Git"])
def test_a_path_output_never_lands_in_git_or_the_store(path: str) -> None:
    """(`..` and absolute paths never parse: the lock reader refuses them first.)"""
    assert refusal(_out("path", path), Expected(returns_path=True)) is not None


def test_a_path_output_only_for_an_asset_returning_a_path_at_its_own_path() -> None:
    out = _out("path", "reports")
    assert "does not return a Path" in refusal(out, Expected(returns_path=False))  # type: ignore[operator]
    assert "does not return a Path" in refusal(out, Expected())  # type: ignore[operator]
    assert refusal(out, Expected(returns_path=True)) is None
    assert refusal(out, Expected(forced="path")) is None
    assert "own path" in refusal(out, Expected(returns_path=True, path="other"))  # type: ignore[operator]
    assert refusal(out, Expected(returns_path=True, path="reports")) is None
    assert "returns a Path" in refusal(_out("json"), Expected(returns_path=True))  # type: ignore[operator]
    assert "workspace path" in refusal(_out("json", "reports"))  # type: ignore[operator]


def f_path() -> Path: ...
def f_dict() -> dict: ...
def f_none(): ...
def f_opt() -> Path | None: ...
def f_mr() -> MaterializeResult[Path]: ...
def f_any() -> Any: ...


@pytest.mark.parametrize(
    ("fn", "want"),
    [(f_path, True), (f_dict, False), (f_none, None), (f_opt, True), (f_mr, True), (f_any, None)],
)
def test_returns_path_reads_the_annotation(fn: Any, want: bool | None) -> None:
    assert expect.returns_path(fn) is want


def test_for_asset_sees_through_cached_and_reads_the_forced_format() -> None:
    @asset(metadata={"pivot/format": "json"})
    @cached
    def forced() -> dict:
        return {}

    @asset
    @cached
    def folder() -> Path:
        return Path("x")

    assert expect.for_asset(forced, forced.key) == Expected(forced="json", returns_path=False)
    assert expect.for_asset(folder, folder.key) == Expected(returns_path=True)
    by_io = expect.for_asset(folder, folder.key, {"folder": "path"})
    assert by_io == Expected(forced="path", returns_path=True)


# --- remote-first upstreams: a planted latest pointer is held to the same rules ----------
SEEN: list[Any] = []


@asset
def up_json() -> dict:
    return {"never": "run"}


@asset
def reads_up_json(up_json: Any) -> int:
    SEEN.append(up_json)
    return 1


@asset(code_version="1")
@cached
def reads_up_json_cached(up_json: dict) -> int:
    SEEN.append(up_json)
    return 1


@pytest.mark.parametrize("reader", [reads_up_json, reads_up_json_cached], ids=["plain", "cached"])
@pytest.mark.parametrize("kind", ["no-format", "path-for-a-dict"])
def test_remote_first_upstream_in_a_format_it_cannot_make_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, kind: str, reader: Any
) -> None:
    from dagster import instance_for_test, materialize

    from pivot_dagster import PivotIOManager
    from pivot_store.config import Config, RemoteConfig
    from pivot_store.repo import Repo
    from tests.fixtures import attacker

    monkeypatch.delenv("PIVOT_SIGNING_KEY", raising=False)
    shared = attacker.folder_remote(tmp_path / "remote")
    root = tmp_path / "victim"
    root.mkdir()
    Repo.open(root).save_config(
        Config(remotes={"origin": RemoteConfig(**shared.config)}, default_remote="origin")
    )
    data = attacker.canonical_json({"planted": True})
    oid = shared.put_object(data)
    if kind == "no-format":
        out = attacker.output(oid, len(data))
    else:
        out = attacker.output(oid, len(data), fmt="path", path="data/other.json")
    shared.plant_latest(attacker.lock_record("up_json", attacker.parts("run-x"), [out]))
    SEEN.clear()
    io = PivotIOManager(project_dir=str(root), remote="origin", remote_first=True)
    with instance_for_test() as inst:
        res = materialize([up_json, reader], resources={"io_manager": io}, instance=inst,
                          selection=[reader], raise_on_error=False)  # fmt: skip
    assert not res.success and SEEN == []
    assert not (root / "data" / "other.json").exists()
