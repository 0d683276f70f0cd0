"""The embedded broker: kombu's SQLAlchemy transport on a SQLite file of its own.

It needs no server, so ``vestige worker`` and ``vestige analyze`` work right
after installation. The file is separate from the Vestige database (a broker
polls and writes constantly; sharing one file would make every writer wait),
and it runs in WAL mode with a busy timeout, like the database.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import sqlalchemy as sa
from kombu.transport import sqlalchemy as kombu_sqlalchemy

#: Seconds between polls of an empty queue. kombu's default (1 s) adds up to
#: a second between tasks; each poll is one short transaction on this file.
POLLING_INTERVAL = 0.05
BUSY_TIMEOUT_S = 30.0


class EmbeddedChannel(kombu_sqlalchemy.Channel):
    def _engine_from_config(self):  # type: ignore[no-untyped-def]
        engine = sa.create_engine(self.connection.client.hostname, connect_args={"timeout": BUSY_TIMEOUT_S})

        @sa.event.listens_for(engine, "connect")
        def _pragmas(dbapi_connection, _record):  # type: ignore[no-untyped-def]
            cursor = dbapi_connection.cursor()
            cursor.execute(f"PRAGMA busy_timeout={int(BUSY_TIMEOUT_S * 1000)}")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.close()

        return engine


class EmbeddedTransport(kombu_sqlalchemy.Transport):
    """kombu's SQLAlchemy transport with a short polling interval and SQLite's settings."""

    Channel = EmbeddedChannel
    polling_interval = POLLING_INTERVAL


def embedded_broker_url(path: Path) -> str:
    """The broker URL for the SQLite file ``path``; the file is created in WAL mode."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with sqlite3.connect(path) as conn:  # WAL is a property of the file: set it once
        conn.execute("PRAGMA journal_mode=WAL")
    conn.close()
    return f"sqlite:///{path}"


#: Celery's ``broker_transport`` setting naming this transport (kombu refuses
#: import paths inside URLs).
TRANSPORT = f"{__name__}:EmbeddedTransport"


def pending_message_ids(path: Path) -> set[str]:
    """Celery task ids of the messages still waiting in the embedded broker (not yet delivered)."""
    if not path.is_file():
        return set()
    ids = set()
    with sqlite3.connect(path, timeout=BUSY_TIMEOUT_S) as conn:
        try:
            rows = conn.execute("SELECT payload FROM kombu_message WHERE visible = 1").fetchall()
        except sqlite3.OperationalError:  # no message was ever sent: the tables do not exist yet
            rows = []
    conn.close()
    for (payload,) in rows:
        try:
            ids.add(str(json.loads(payload)["headers"]["id"]))
        except (ValueError, KeyError, TypeError):
            continue
    return ids


def forget_delivered_messages(path: Path) -> int:
    """Delete delivered messages, which kombu's SQLAlchemy transport keeps forever."""
    if not path.is_file():
        return 0
    with sqlite3.connect(path, timeout=BUSY_TIMEOUT_S) as conn:
        try:
            count = conn.execute("DELETE FROM kombu_message WHERE visible = 0").rowcount
        except sqlite3.OperationalError:
            count = 0
    conn.close()
    return count
