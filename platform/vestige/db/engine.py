"""Engines and sessions, with the settings each backend needs."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.exc import ArgumentError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from vestige.errors import ConfigError, DatabaseStateError


def make_engine(url: str, *, busy_timeout: float = 30.0, echo: bool = False, poolclass: type | None = None) -> Engine:
    """An engine for ``url``; SQLite gets WAL, a busy timeout and enforced foreign keys.

    Web, workers and the CLI share one SQLite file: without WAL and a busy
    timeout, "database is locked" appears under the lightest concurrent load.
    """
    try:
        parsed = sa.engine.make_url(url)
    except ArgumentError:
        raise ConfigError(f"database.url {url!r} is not a valid SQLAlchemy URL") from None
    if parsed.get_backend_name() == "sqlite":
        database = parsed.database or ""
        if database and database != ":memory:":
            parent = Path(database).parent
            if not parent.is_dir():
                raise DatabaseStateError(
                    f"the database folder {parent} does not exist; run `vestige init` first"
                )
        engine = sa.create_engine(
            url, echo=echo, connect_args={"timeout": busy_timeout, "check_same_thread": False},
            **({"poolclass": poolclass} if poolclass else {}),
        )

        @sa.event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_connection, _record):  # type: ignore[no-untyped-def]
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute(f"PRAGMA busy_timeout={int(busy_timeout * 1000)}")
            cursor.close()

        return engine
    try:
        return sa.create_engine(url, echo=echo, **({"poolclass": poolclass} if poolclass else {"pool_pre_ping": True}))
    except (ArgumentError, ImportError) as exc:
        raise ConfigError(f"database.url {parsed.render_as_string(hide_password=True)!r} cannot be used: {exc}") from None


class Database:
    """An engine and its session factory."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.sessionmaker = sessionmaker(engine, expire_on_commit=False)

    @classmethod
    def from_url(cls, url: str, **kwargs: object) -> Database:
        return cls(make_engine(url, **kwargs))  # type: ignore[arg-type]

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A session whose transaction commits on success and rolls back on any error."""
        session = self.sessionmaker()
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise
        finally:
            session.close()

    def ping(self) -> None:
        """Fail with a sentence when the database cannot be reached."""
        try:
            with self.engine.connect() as conn:
                conn.execute(sa.text("SELECT 1"))
        except OperationalError as exc:
            url = self.engine.url.render_as_string(hide_password=True)
            reason = str(exc.orig).strip().splitlines()[0] if exc.orig else str(exc)
            raise DatabaseStateError(f"cannot connect to the database {url}: {reason}") from None

    def dispose(self) -> None:
        self.engine.dispose()
