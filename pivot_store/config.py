"""`.pivot/config.yaml`: remotes, the default remote and the checkout mode.

```yaml
remotes:
  origin: s3://bucket/prefix            # shorthand
  minio:
    url: s3://bucket/prefix
    endpoint_url: http://127.0.0.1:9000 # any fsspec storage option
default_remote: origin
checkout_mode: hardlink
```

A worker without a config file (a container, a Celery worker) names its remote
in the environment instead; `with_env_remote` adds it to the loaded config:
`PIVOT_REMOTE_URL` (required), `PIVOT_REMOTE_ENDPOINT_URL`, `PIVOT_REMOTE_REGION`,
`PIVOT_REMOTE_PROFILE`, `PIVOT_REMOTE_JOBS`, under the name `PIVOT_REMOTE_NAME`
(default `env`). It is the default remote unless the file names one.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from pivot_store import atomic
from pivot_store.checkout import CheckoutMode
from pivot_store.errors import ConfigError


class RemoteConfig(BaseModel):
    """A remote's URL plus storage options passed to fsspec as they are."""

    model_config = ConfigDict(extra="allow")

    url: str
    jobs: int | None = Field(default=None, ge=1, le=256)

    @field_validator("url")
    @classmethod
    def _url(cls, v: str) -> str:
        if not v or ("://" not in v and not v.startswith("/")):
            raise ValueError(f"{v!r} is not a URL (e.g. s3://bucket/prefix, file:///path)")
        return v.rstrip("/")

    def storage_options(self) -> dict[str, Any]:
        return dict(self.model_extra or {})


class Config(BaseModel):
    model_config = ConfigDict(extra="forbid")

    remotes: dict[str, RemoteConfig] = Field(default_factory=dict)
    default_remote: str | None = None
    checkout_mode: CheckoutMode = "hardlink"
    fsync: bool = False

    @field_validator("remotes", mode="before")
    @classmethod
    def _shorthand(cls, v: Any) -> Any:
        if isinstance(v, dict):
            return {k: {"url": u} if isinstance(u, str) else u for k, u in v.items()}
        return v

    @model_validator(mode="after")
    def _default_exists(self) -> Config:
        if self.default_remote is not None and self.default_remote not in self.remotes:
            raise ValueError(
                f"default_remote {self.default_remote!r} is not in remotes"
                f" (add it under remotes, or change default_remote)"
            )
        return self

    def remote(self, name: str | None) -> tuple[str, RemoteConfig]:
        """The named remote, or the default one; ConfigError says how to add it."""
        name = name or self.default_remote
        if name is None:
            if len(self.remotes) == 1:
                name = next(iter(self.remotes))
            else:
                raise ConfigError(
                    "no remote given and no default_remote set",
                    "pass -r NAME or run `pivot remote default NAME`",
                )
        if name not in self.remotes:
            known = ", ".join(sorted(self.remotes)) or "none"
            raise ConfigError(
                f"unknown remote {name!r} (configured: {known})",
                f"add it with `pivot remote add {name} URL`",
            )
        return name, self.remotes[name]


#: The environment's remote: variable suffix -> RemoteConfig field.
ENV_PREFIX = "PIVOT_REMOTE_"
ENV_FIELDS = ("url", "endpoint_url", "region", "profile", "jobs")
ENV_DEFAULT_NAME = "env"


def remote_from(
    url: str | None,
    *,
    endpoint_url: str | None = None,
    region: str | None = None,
    profile: str | None = None,
    jobs: int | str | None = None,
) -> RemoteConfig | None:
    """A RemoteConfig from given settings (None without a URL); ConfigError when invalid."""
    if not url:
        return None
    given = {"endpoint_url": endpoint_url, "region": region, "profile": profile, "jobs": jobs}
    try:
        return RemoteConfig(url=url, **{k: v for k, v in given.items() if v not in (None, "")})
    except ValidationError as e:
        first = e.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise ConfigError(
            f"remote {url!r} is invalid at {where}: {first['msg']}",
            "fix the remote URL or its settings",
        ) from None


def with_remote(config: Config, name: str, remote: RemoteConfig) -> Config:
    """`config` plus `remote` as `name` (replacing one of that name), in memory only.
    It becomes the default unless the file names another default."""
    remotes = {**config.remotes, name: remote}
    default = config.default_remote if config.default_remote in config.remotes else name
    return config.model_copy(update={"remotes": remotes, "default_remote": default})


def with_env_remote(config: Config, environ: Mapping[str, str]) -> Config:
    """`config` plus the environment's remote (`PIVOT_REMOTE_URL` ...), if one is set.
    Never saved: the file keeps only what `pivot remote` wrote."""
    given = {f: environ.get(ENV_PREFIX + f.upper()) for f in ENV_FIELDS}
    remote = remote_from(given.pop("url"), **given)
    if remote is None:
        return config
    return with_remote(config, environ.get(ENV_PREFIX + "NAME") or ENV_DEFAULT_NAME, remote)


def load_config(path: Path) -> Config:
    """The file's config alone (`Repo.config` adds the environment's remote)."""
    if not path.exists():
        return Config()
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except OSError as e:
        raise ConfigError(
            f"{path} cannot be read: {e.strerror}", "make it a readable YAML file"
        ) from None
    except RecursionError:
        raise ConfigError(f"{path} is nested too deeply", "fix the file by hand") from None
    except (yaml.YAMLError, UnicodeDecodeError) as e:
        mark = getattr(e, "problem_mark", None)
        line = f" (line {mark.line + 1})" if mark else ""
        raise ConfigError(f"{path} is not valid YAML{line}", "fix the file by hand") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path} must be a mapping", "see docs/remotes.md for the format")
    try:
        return Config.model_validate(data)
    except ValidationError as e:
        first = e.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "<root>"
        raise ConfigError(
            f"{path} is invalid at {where}: {first['msg']}", "fix the file by hand"
        ) from None


def save_config(path: Path, config: Config) -> None:
    data = config.model_dump(mode="json", exclude_none=True, exclude_defaults=False)
    data["remotes"] = {
        k: r.model_dump(mode="json", exclude_none=True) for k, r in config.remotes.items()
    }
    atomic.write_replace(path, yaml.safe_dump(data, sort_keys=True).encode("utf-8"))
