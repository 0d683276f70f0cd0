"""A workspace: the configuration, database and evidence store a command works on."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import sqlalchemy as sa

from vestige.core.config import Config, load_config
from vestige.core.errors import ConfigError, DatabaseStateError
from vestige.db import Database, migrate
from vestige.evidence.store import BlobStore, open_store


@dataclass
class Workspace:
    config: Config
    db: Database
    store: BlobStore

    @classmethod
    def open(cls, config: Config | None = None, *, check_schema: bool = True) -> Workspace:
        """Open the configured workspace; by default stop unless its database is migrated."""
        config = config or load_config()
        if check_schema:
            require_sqlite_file(config)
        db = Database.from_url(
            config.database_url, busy_timeout=config.database.sqlite_busy_timeout, echo=config.database.echo
        )
        if check_schema:
            migrate.require_current(db)
        return cls(config=config, db=db, store=open_store(config.store.backend, config.store_path, config.store))

    def close(self) -> None:
        self.db.dispose()


def require_sqlite_file(config: Config) -> None:
    """Stop before connecting when the configured SQLite database does not exist.

    Connecting would create an empty file: a mistyped or forgotten
    ``VESTIGE_DATA_DIR`` must not leave ``var/vestige.db`` behind as a side
    effect of the error.
    """
    url = sa.engine.make_url(config.database_url)
    if url.get_backend_name() != "sqlite" or not url.database or url.database == ":memory:":
        return
    if not Path(url.database).is_file():
        hint = "" if os.environ.get("VESTIGE_DATA_DIR") else " (VESTIGE_DATA_DIR is not set)"
        raise DatabaseStateError(f"there is no Vestige database at {url.database}{hint}: set VESTIGE_DATA_DIR to "
                                 "your data directory, or run `vestige init` to start one there")


def init_workspace(config: Config | None = None) -> tuple[Workspace, str | None, str]:
    """Create the data directory and migrate the database to head.

    Returns the workspace and the revisions before and after. Safe to run again.
    """
    config = config or load_config()
    data_dir = config.data_dir
    try:
        data_dir.mkdir(parents=True, exist_ok=True)
        for sub in ("artifacts", "reports"):
            (data_dir / sub).mkdir(exist_ok=True)
        config.store_path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"cannot create the data directory {data_dir}: {exc.strerror}") from None
    workspace = Workspace.open(config, check_schema=False)
    workspace.db.ping()
    before = migrate.current_revision(workspace.db)
    migrate.upgrade(workspace.db, "head")
    return workspace, before, migrate.head_revision()


def data_path(config: Config, *parts: str) -> Path:
    return config.data_dir.joinpath(*parts)
