"""A workspace: the configuration, database and evidence store a command works on."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from vestige.config import Config, load_config
from vestige.db import Database
from vestige.db import migrate
from vestige.errors import ConfigError
from vestige.store import BlobStore, open_store


@dataclass
class Workspace:
    config: Config
    db: Database
    store: BlobStore

    @classmethod
    def open(cls, config: Config | None = None, *, check_schema: bool = True) -> Workspace:
        """Open the configured workspace; by default stop unless its database is migrated."""
        config = config or load_config()
        db = Database.from_url(
            config.database_url, busy_timeout=config.database.sqlite_busy_timeout, echo=config.database.echo
        )
        if check_schema:
            migrate.require_current(db)
        return cls(config=config, db=db, store=open_store(config.store.backend, config.store_path, config.store))

    def close(self) -> None:
        self.db.dispose()


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
