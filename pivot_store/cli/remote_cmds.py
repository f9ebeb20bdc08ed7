"""`pivot remote add|list|remove|default|modify`: edit remotes in .pivot/config.yaml;
`pivot remote upgrade`: give a remote's run-cache its heads (format 3)."""

from __future__ import annotations

import typer

from pivot_store.cli.output import console


def _repo():
    from pivot_store.repo import Repo

    return Repo.find()


def _known(config, name: str) -> None:
    from pivot_store.errors import ConfigError

    if name not in config.remotes:
        raise ConfigError(f"unknown remote {name!r}", f"add it with `pivot remote add {name} URL`")


def add(
    name: str,
    url: str,
    default: bool = typer.Option(False, "--default", help="Make it the default remote."),
) -> None:
    """Add a remote (s3://bucket/prefix, file:///path, gs://..., memory://...)."""
    from pivot_store.config import Config
    from pivot_store.errors import ConfigError

    repo = _repo()
    data = repo.file_config().model_dump(mode="json")
    if name in data["remotes"]:
        raise ConfigError(f"remote {name!r} already exists", "use `pivot remote modify`")
    data["remotes"][name] = {"url": url}
    if default:
        data["default_remote"] = name
    repo.save_config(_validated(Config, data))
    console().print(f"added remote {name} -> {url}" + (" (default)" if default else ""))


def list_() -> None:
    """List remotes; the default is marked with *."""
    cfg = _repo().config
    for name, r in sorted(cfg.remotes.items()):
        mark = "*" if name == cfg.default_remote else " "
        opts = " ".join(f"{k}={v}" for k, v in sorted(r.storage_options().items()))
        console().print(f"{mark} {name}\t{r.url}\t{opts}".rstrip())


def remove(name: str) -> None:
    """Remove a remote from the config (nothing on the remote is touched)."""
    from pivot_store.config import Config

    repo = _repo()
    _known(repo.file_config(), name)
    data = repo.file_config().model_dump(mode="json")
    del data["remotes"][name]
    if data.get("default_remote") == name:
        data["default_remote"] = None
    repo.save_config(_validated(Config, data))
    console().print(f"removed remote {name}")


def default(name: str) -> None:
    """Set the default remote."""
    from pivot_store.config import Config

    repo = _repo()
    _known(repo.file_config(), name)
    data = repo.file_config().model_dump(mode="json")
    data["default_remote"] = name
    repo.save_config(_validated(Config, data))
    console().print(f"default remote is now {name}")


def modify(name: str, key: str, value: str) -> None:
    """Set one option of a remote (url, endpoint_url, region, profile, jobs, ...)."""
    import yaml

    from pivot_store.config import Config

    repo = _repo()
    _known(repo.file_config(), name)
    data = repo.file_config().model_dump(mode="json")
    try:  # `jobs 8` is an int, `verify false` a bool; anything unparsable stays text
        parsed = yaml.safe_load(value) if key != "url" else value
    except yaml.YAMLError:
        parsed = value
    data["remotes"][name][key] = parsed
    repo.save_config(_validated(Config, data))
    console().print(f"set {name}.{key} = {value}")


def upgrade(
    name: str = typer.Argument(None, help="The remote (default: default_remote)."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Give a run-cache older pivots filled its heads, then mark it (lookups: one GET).

    Run it once every deployment pushing there writes heads; see
    docs/remotes.md#one-request-lookups.
    """
    from pivot_store import run_heads, sync
    from pivot_store.cli.output import emit_json

    res = run_heads.upgrade_remote(sync.remote(_repo(), name))
    if as_json:
        emit_json(res.to_json())
    else:
        out = console()
        out.print(
            f"{res.remote}: {res.folders} fingerprint folder(s); wrote {len(res.written)} "
            f"head(s), {res.present} already there"
        )
        for folder in res.headless:
            out.print(f"no entry fit to copy in {folder}: its lookups stay misses")
        out.print("marked: lookups are one GET" if res.marked else f"not marked: {res.blocked}")
    if not res.marked:
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    remote_app = typer.Typer(help="Manage remotes in .pivot/config.yaml.", no_args_is_help=True)
    for name, command in (
        ("add", add), ("list", list_), ("remove", remove), ("default", default),
        ("modify", modify), ("upgrade", upgrade),
    ):  # fmt: skip
        remote_app.command(name)(command)
    app.add_typer(remote_app, name="remote")


def _validated(cls, data: dict):
    from pydantic import ValidationError

    from pivot_store.errors import ConfigError

    try:
        return cls.model_validate(data)
    except ValidationError as e:
        first = e.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise ConfigError(
            f"invalid remote setting {where}: {first['msg']}", "check the value"
        ) from None
