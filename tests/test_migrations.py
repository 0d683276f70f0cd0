"""Models and migrations agree, and migrations run both ways, on SQLite and PostgreSQL."""

from __future__ import annotations

import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from vestige.db import Base, Database
from vestige.db import migrate


def _tables(db: Database) -> set[str]:
    return set(sa.inspect(db.engine).get_table_names()) - {"alembic_version"}


def test_autogenerate_finds_no_difference(workspace):
    with workspace.db.engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        diff = compare_metadata(context, Base.metadata)
    assert diff == []


def test_upgrade_downgrade_upgrade(workspace):
    db = workspace.db
    assert migrate.current_revision(db) == migrate.head_revision()
    assert _tables(db) == set(Base.metadata.tables)
    migrate.downgrade(db, "base")
    assert migrate.current_revision(db) is None
    assert _tables(db) == set()
    migrate.upgrade(db, "head")
    assert migrate.current_revision(db) == migrate.head_revision()
    assert _tables(db) == set(Base.metadata.tables)


def test_db_commands(vestige):
    assert vestige("init").exit_code == 0
    current = vestige("db", "current")
    assert current.exit_code == 0 and f"database at revision {migrate.head_revision()}" in current.stdout
    assert vestige("db", "downgrade", "base").exit_code == 0
    assert "not initialised" in vestige("db", "current").stdout
    stale = vestige("case", "list")
    assert stale.exit_code == 1 and stale.stderr.strip() == "error: the database is not initialised; run `vestige init`"
    assert vestige("db", "upgrade").exit_code == 0
    assert vestige("case", "list").exit_code == 0


def test_unknown_revision_is_one_line(vestige):
    vestige("init")
    result = vestige("db", "downgrade", "nonesuch")
    assert result.exit_code == 1
    assert len(result.stderr.strip().splitlines()) == 1 and "nonesuch" in result.stderr


def test_init_twice_is_harmless(vestige):
    assert "migrated from empty" in vestige("init").stdout
    again = vestige("init")
    assert again.exit_code == 0 and "already at revision" in again.stdout


def test_commands_before_init_say_what_to_do(vestige):
    result = vestige("case", "list")
    assert result.exit_code == 1
    assert "run `vestige init`" in result.stderr
