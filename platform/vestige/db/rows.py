"""Writes that two processes may make at the same moment, safe on SQLite and PostgreSQL."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from vestige.db.models import Blob, Case


def record_blob(session: Session, sha256: str, size: int, media_type: str) -> None:
    """The ``blobs`` row for bytes just stored, unless another writer (or an earlier file) recorded it.

    ``INSERT ... ON CONFLICT DO NOTHING``: a concurrent insert of the same key
    waits for the other transaction and then does nothing, where a read-then-insert
    raced and failed with an IntegrityError on the key.
    """
    dialect = session.get_bind().dialect.name
    insert = {"postgresql": postgresql.insert, "sqlite": sqlite.insert}.get(dialect)
    values = {"sha256": sha256, "size": size, "media_type": media_type}
    if insert is None:  # another backend: read, then insert (not race-safe, but correct alone)
        if session.get(Blob, sha256) is None:
            session.add(Blob(**values))
            session.flush()
        return
    session.execute(insert(Blob).values(**values).on_conflict_do_nothing(index_elements=["sha256"]))


def lock_case(session: Session, case: Case) -> None:
    """Hold the case row until the transaction ends, so that what is read next stays true.

    A no-op ``UPDATE`` takes the row lock on PostgreSQL and the write lock on
    SQLite (which ignores ``FOR UPDATE``); a concurrent writer on the same case
    waits, then reads what this one committed. Ingest takes it before looking
    for an existing image, so two ingests of one file into one case give an
    image and a duplicate, never two inserts of one (case, blob).
    """
    session.execute(
        sa.update(Case).where(Case.id == case.id).values(custody_count=Case.custody_count)
        .execution_options(synchronize_session=False)
    )
