"""Config: `.pivot/config.yaml` errors name the file or remote and the fix (contract line 6)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from pivot_store.config import Config, RemoteConfig, load_config, save_config
from pivot_store.errors import ConfigError


@pytest.fixture
def cfg_path(tmp_path: Path) -> Path:
    return tmp_path / "config.yaml"


def test_missing_config_is_the_default(cfg_path: Path) -> None:
    cfg = load_config(cfg_path)
    assert cfg == Config() and cfg.checkout_mode == "hardlink" and cfg.remotes == {}


def test_save_load_round_trip_with_options(cfg_path: Path) -> None:
    cfg = Config(
        remotes={
            "origin": RemoteConfig(url="s3://bucket/prefix/"),
            "minio": RemoteConfig(url="s3://b", endpoint_url="http://127.0.0.1:9000", jobs=8),
        },
        default_remote="origin",
        checkout_mode="copy",
    )
    save_config(cfg_path, cfg)
    again = load_config(cfg_path)
    assert again == cfg
    assert again.remotes["origin"].url == "s3://bucket/prefix"  # trailing slash dropped
    assert again.remotes["minio"].storage_options() == {"endpoint_url": "http://127.0.0.1:9000"}
    assert again.remote(None) == ("origin", again.remotes["origin"])
    first = cfg_path.read_bytes()
    save_config(cfg_path, again)
    assert cfg_path.read_bytes() == first  # deterministic


def test_shorthand_remote_url(cfg_path: Path) -> None:
    cfg_path.write_text("remotes:\n  origin: s3://bucket/p\n")
    cfg = load_config(cfg_path)
    assert cfg.remote(None)[1].url == "s3://bucket/p"  # the only remote is the default


@pytest.mark.parametrize(
    "text, needle",
    [
        ("remotes: {a: s3://x\n", "not valid YAML"),
        ("- a\n- b\n", "must be a mapping"),
        ("remotes: 5\n", "remotes"),
        ("checkout_mode: fast\n", "checkout_mode"),
        ("remotes: {a: {url: s3://x, jobs: lots}}\n", "remotes.a.jobs"),
        ("remotes: {a: {url: s3://x, jobs: 0}}\n", "remotes.a.jobs"),
        ("remotes: {a: not-a-url}\n", "not a URL"),
        ("surprise: 1\n", "surprise"),
        ("remotes: {a: s3://x}\ndefault_remote: b\n", "default_remote 'b' is not in remotes"),
    ],
)
def test_bad_config_names_the_file_and_the_fix(cfg_path: Path, text: str, needle: str) -> None:
    cfg_path.write_text(text)
    with pytest.raises(ConfigError, match=re.escape(needle)) as e:
        load_config(cfg_path)
    assert str(cfg_path) in str(e.value)
    assert e.value.fix
    assert "\n" not in str(e.value)


def test_unknown_remote_names_it_and_the_fix() -> None:
    cfg = Config(remotes={"a": RemoteConfig(url="s3://x"), "b": RemoteConfig(url="s3://y")})
    with pytest.raises(ConfigError, match="unknown remote 'nope'") as e:
        cfg.remote("nope")
    assert "pivot remote add nope" in str(e.value) and "a, b" in str(e.value)
    with pytest.raises(ConfigError, match="pivot remote default"):
        cfg.remote(None)  # two remotes, no default
    with pytest.raises(ConfigError, match="configured: none"):
        Config().remote("x")


def test_environment_names_a_remote_without_a_config_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A worker with no .pivot/config.yaml: PIVOT_REMOTE_* name its remote (issue 16)."""
    from pivot_store.repo import Repo

    monkeypatch.setenv("PIVOT_REMOTE_URL", "s3://bucket/prefix/")
    monkeypatch.setenv("PIVOT_REMOTE_ENDPOINT_URL", "http://127.0.0.1:9")
    monkeypatch.setenv("PIVOT_REMOTE_REGION", "eu-west-3")
    monkeypatch.setenv("PIVOT_REMOTE_PROFILE", "worker")
    repo = Repo.open(tmp_path / "p")
    name, remote = repo.config.remote(None)
    assert (name, remote.url) == ("env", "s3://bucket/prefix")
    assert remote.storage_options() == {
        "endpoint_url": "http://127.0.0.1:9", "region": "eu-west-3", "profile": "worker"
    }  # fmt: skip
    # Never written to the file: `pivot remote` edits only what the file holds.
    assert repo.file_config().remotes == {}
    repo.save_config(repo.file_config())
    assert "bucket" not in repo.config_path.read_text()
    assert repo.config.remote("env")[1].url == "s3://bucket/prefix"


def test_environment_remote_keeps_the_files_default(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pivot_store.repo import Repo

    repo = Repo.open(tmp_path / "p")
    repo.save_config(Config(remotes={"origin": RemoteConfig(url="s3://o/p")},
                            default_remote="origin"))  # fmt: skip
    monkeypatch.setenv("PIVOT_REMOTE_URL", "s3://other/p")
    monkeypatch.setenv("PIVOT_REMOTE_NAME", "worker")
    repo = Repo.open(tmp_path / "p")
    assert repo.config.remote(None)[1].url == "s3://o/p"
    assert repo.config.remote("worker")[1].url == "s3://other/p"
    monkeypatch.setenv("PIVOT_REMOTE_JOBS", "0")
    with pytest.raises(ConfigError, match="jobs"):
        _ = Repo.open(tmp_path / "p").config
