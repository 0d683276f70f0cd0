"""Engines and sessions, with the settings each backend needs."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import ContextManager

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.exc import ArgumentError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from vestige.core.errors import ConfigError, DatabaseStateError


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


class _WriterGate:
    """One writer at a time on an SQLite file, across the threads and processes that open it here.

    SQLite serialises writers itself, but a writer that finds the lock taken
    sleeps in SQLite's busy handler in growing steps (up to 100 ms) instead of
    being woken when the lock frees, so under concurrent writes from several
    web worker processes most of the latency was sleeping. Here writers queue
    on a threading lock within a process and on ``flock`` of a file beside the
    database between processes: the kernel wakes the next one at once. Only
    writers that take the gate queue here; the others (workers, the CLI) still
    meet them at SQLite's lock, which stays correct, only slower.
    """

    def __init__(self, database: Path) -> None:
        self.path = database.with_name(database.name + ".writer-lock")
        self._threads = threading.Lock()
        self._fd: int | None = None

    @contextmanager
    def __call__(self) -> Iterator[None]:
        import fcntl
        import os

        with self._threads:
            if self._fd is None:
                self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
            fcntl.flock(self._fd, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(self._fd, fcntl.LOCK_UN)


_GATES: dict[str, _WriterGate] = {}
#: The gate of each absolute database path as the URL gives it, so that a write (one per page view) does not
#: resolve the path again: ~0.02 ms of system calls each time.
_GATES_BY_NAME: dict[str, _WriterGate] = {}
_GATES_LOCK = threading.Lock()


def writer_gate(engine: Engine) -> ContextManager[None]:
    """A context in which to run a short write transaction on ``engine``: :class:`_WriterGate` for an SQLite
    file, nothing for other databases (PostgreSQL has row locks and wakes waiters itself)."""
    database = engine.url.database if engine.dialect.name == "sqlite" else None
    if not database or database == ":memory:":
        return nullcontext()
    gate = _GATES_BY_NAME.get(database)
    if gate is None:
        key = str(Path(database).resolve())
        with _GATES_LOCK:
            gate = _GATES.get(key)
            if gate is None:
                gate = _GATES[key] = _WriterGate(Path(key))
            if Path(database).is_absolute():  # a relative one depends on the working directory: resolved each time
                _GATES_BY_NAME[database] = gate
    return gate()


def core_connection(session: Session) -> sa.Connection:
    """``session``'s connection in its transaction, for Core statements on the hot paths (building ORM objects
    costs more than the statement, and the caller wants plain rows); flushed first, as the ORM's autoflush
    would have done before a query of its own."""
    session.flush()
    return session.connection()


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
