"""Alembic, driven from code: ``vestige init`` and ``vestige db ...`` call these."""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config as AlembicConfig
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util import CommandError

from vestige.core.errors import DatabaseStateError, NotFoundError
from vestige.db.engine import Database


def migrations_dir() -> Path:
    """The Alembic environment: inside the wheel, or at the repository root in a checkout."""
    package_dir = Path(__file__).resolve().parent.parent
    for candidate in (package_dir / "migrations", package_dir.parent.parent / "migrations"):
        if (candidate / "env.py").is_file():
            return candidate
    raise DatabaseStateError("the migrations folder is missing from this installation; reinstall vestige")


def alembic_config(db: Database) -> AlembicConfig:
    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(migrations_dir()))
    cfg.attributes["engine"] = db.engine
    return cfg


def head_revision() -> str:
    script = ScriptDirectory(str(migrations_dir()))
    head = script.get_current_head()
    assert head is not None
    return head


def current_revision(db: Database) -> str | None:
    with db.engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def upgrade(db: Database, revision: str = "head") -> None:
    _run(command.upgrade, db, revision)


def downgrade(db: Database, revision: str) -> None:
    _run(command.downgrade, db, revision)


def _run(action, db: Database, revision: str) -> None:  # type: ignore[no-untyped-def]
    try:
        action(alembic_config(db), revision)
    except CommandError as exc:
        raise NotFoundError(f"cannot migrate to {revision!r}: {exc}") from None


def require_current(db: Database) -> None:
    """Stop with a sentence unless the database is at the code's revision."""
    db.ping()
    current = current_revision(db)
    if current is None:
        if sa.inspect(db.engine).has_table("cases"):
            raise DatabaseStateError("the database has tables but no migration record; it was not made by vestige")
        raise DatabaseStateError("the database is not initialised; run `vestige init`")
    head = head_revision()
    if current != head:
        raise DatabaseStateError(
            f"the database is at revision {current} but this vestige expects {head}; run `vestige db upgrade`"
        )
