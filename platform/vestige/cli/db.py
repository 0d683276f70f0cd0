"""``vestige init`` and ``vestige db ...``."""

from __future__ import annotations

import click

from vestige.cli.app import State, cli, pass_state
from vestige.core.workspace import Workspace, init_workspace
from vestige.db import migrate


@cli.command()
@pass_state
def init(state: State) -> None:
    """Create the data directory and bring the database to the current schema."""
    workspace, before, after = init_workspace(state.config)
    workspace.close()
    click.echo(f"data directory: {state.config.data_dir}")
    click.echo(f"database: {workspace.db.engine.url.render_as_string(hide_password=True)}")
    click.echo(f"evidence store: {workspace.store.describe()}")
    if before == after:
        click.echo(f"schema already at revision {after}")
    else:
        click.echo(f"schema migrated from {before or 'empty'} to {after}")


@cli.group("db")
def db_group() -> None:
    """Database schema migrations."""


def _open(state: State) -> Workspace:
    workspace = Workspace.open(state.config, check_schema=False)
    workspace.db.ping()
    return workspace


@db_group.command()
@click.argument("revision", default="head")
@pass_state
def upgrade(state: State, revision: str) -> None:
    """Migrate the database up to REVISION (default: head)."""
    workspace = _open(state)
    migrate.upgrade(workspace.db, revision)
    click.echo(f"database at revision {migrate.current_revision(workspace.db)}")


@db_group.command()
@click.argument("revision")
@pass_state
def downgrade(state: State, revision: str) -> None:
    """Migrate the database down to REVISION ('base' removes every table)."""
    workspace = _open(state)
    migrate.downgrade(workspace.db, revision)
    click.echo(f"database at revision {migrate.current_revision(workspace.db) or 'base'}")


@db_group.command()
@pass_state
def current(state: State) -> None:
    """Print the database's revision and the code's."""
    workspace = _open(state)
    rev = migrate.current_revision(workspace.db)
    head = migrate.head_revision()
    click.echo(f"database at revision {rev or 'base (not initialised)'}; code expects {head}")
