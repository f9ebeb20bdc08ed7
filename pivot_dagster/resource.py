"""PivotStoreResource: the store for assets that write or read files themselves.

For outputs too big to pass through an IO manager (or that are folders), an
asset can open the Repo directly: `add_path`, `checkout_output`, `objects`.
"""

from __future__ import annotations

from pathlib import Path

from dagster import ConfigurableResource
from pydantic import Field, PrivateAttr

from pivot_store.lockfile import OutputRecord
from pivot_store.repo import Repo


class PivotStoreResource(ConfigurableResource):
    """Opens `<project_dir>/.pivot` once per process."""

    project_dir: str = Field(default=".", description="Project folder holding `.pivot/`.")

    _repo: Repo | None = PrivateAttr(default=None)

    def get_repo(self) -> Repo:
        if self._repo is None:
            self._repo = Repo.open(Path(self.project_dir).resolve(), create=True)
        return self._repo

    def add_path(self, path: str | Path, *, move: bool = False) -> OutputRecord:
        """Store a file or folder; the record's hash names it in the cache."""
        repo = self.get_repo()
        with repo.writing():
            return repo.add_path(Path(path), move=move)

    def checkout(self, out: OutputRecord, dest: str | Path) -> Path:
        return self.get_repo().checkout_output(out, Path(dest))
