"""The chain of custody: an append-only, hash-chained log per case.

Each event's hash covers the case reference, its sequence number, time, actor,
action, details and the previous event's hash, so editing, deleting,
inserting or reordering any event breaks the chain at that event. The case row
keeps the head hash and the count, which catches the one edit a chain alone
cannot see: removing events from its end.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from vestige.db.models import Case, CustodyEvent

GENESIS = "0" * 64


def canonical_json(value: Any) -> str:
    """Sorted keys, no whitespace, UTF-8 kept: the bytes that get hashed."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def event_hash(reference: str, seq: int, at: str, actor: str, action: str, details: str, prev_hash: str) -> str:
    payload = canonical_json(
        {"case": reference, "seq": seq, "at": at, "actor": actor, "action": action, "details": details, "prev": prev_hash}
    )
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


def _now_text() -> str:
    return dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def record_event(session: Session, case: Case, *, actor: str, action: str, details: dict[str, Any] | None = None) -> CustodyEvent:
    """Append an event to ``case``'s chain in the caller's transaction.

    The head is claimed with one ``UPDATE ... RETURNING`` on the case row
    before anything of the chain is read. That statement takes the row lock
    on PostgreSQL (a concurrent writer waits, then sees the new head) and the
    database write lock on SQLite, which ignores ``FOR UPDATE``; so two
    writers can never extend the same head, whatever the caller's session
    has already loaded. A session whose SQLite snapshot is older than another
    writer's commit fails here with "database is locked" instead of forking
    the chain.
    """
    reference, seq, prev = session.execute(
        sa.update(Case)
        .where(Case.id == case.id)
        .values(custody_count=Case.custody_count + 1)
        .returning(Case.reference, Case.custody_count, Case.custody_head)
        .execution_options(synchronize_session=False)
    ).one()
    prev = prev or GENESIS
    at = _now_text()
    details_text = canonical_json(details or {})
    digest = event_hash(reference, seq, at, actor, action, details_text, prev)
    event = CustodyEvent(
        case_id=case.id, seq=seq, at=at, actor=actor, action=action, details=details_text, prev_hash=prev, hash=digest
    )
    session.add(event)
    session.execute(
        sa.update(Case).where(Case.id == case.id).values(custody_head=digest).execution_options(synchronize_session=False)
    )
    if case in session:
        # The loaded object still holds the old head and count; reload them on next access.
        session.expire(case, ["custody_head", "custody_count"])
    session.flush()
    return event


@dataclass(frozen=True)
class ChainReport:
    intact: bool
    events: int
    #: Which event (sequence number, or the database id where the order itself is broken) and what is wrong.
    problem: str | None = None

    def sentence(self) -> str:
        if self.intact:
            return f"chain intact: {self.events} events"
        return f"chain broken: {self.problem}"


def verify_chain(session: Session, case: Case) -> ChainReport:
    """Recompute every hash of ``case``'s chain and compare it with what is stored."""
    events = session.execute(
        sa.select(CustodyEvent).where(CustodyEvent.case_id == case.id).order_by(CustodyEvent.id)
    ).scalars().all()
    return verify_events(case.reference, events, expected_count=case.custody_count, expected_head=case.custody_head)


def verify_events(reference: str, events: Sequence[Any], *, expected_count: int, expected_head: str | None) -> ChainReport:
    """Check a chain given in stored order: from the database, or read back from an evidence bundle.

    Each event has ``seq``, ``at``, ``actor``, ``action``, ``details`` (the
    stored canonical text), ``prev_hash``, ``hash`` and optionally ``id``.
    ``expected_count`` and ``expected_head`` are what the case records.
    """
    prev = GENESIS
    for position, event in enumerate(events, start=1):
        ident = f"id {event.id}, " if getattr(event, "id", None) is not None else ""
        where = f"event {event.seq} ({ident}{event.action} by {event.actor} at {event.at})"
        if event.seq != position:
            if event.seq > position:
                return ChainReport(False, len(events), f"{where} follows event {position - 1}: events are missing or out of order")
            return ChainReport(False, len(events), f"{where} is out of order or was inserted (expected sequence number {position})")
        if event.prev_hash != prev:
            return ChainReport(False, len(events), f"{where} does not link to the event before it")
        expected = event_hash(reference, event.seq, event.at, event.actor, event.action, event.details, event.prev_hash)
        if expected != event.hash:
            return ChainReport(False, len(events), f"{where} was altered: its content no longer matches its hash")
        prev = event.hash
    if len(events) != expected_count or (events and prev != expected_head):
        return ChainReport(
            False,
            len(events),
            f"the case records {expected_count} events ending in {str(expected_head)[:12]}…, "
            f"but the log holds {len(events)}: events after event {len(events)} were removed",
        )
    return ChainReport(True, len(events))


def list_events(session: Session, case: Case) -> list[CustodyEvent]:
    return list(
        session.execute(sa.select(CustodyEvent).where(CustodyEvent.case_id == case.id).order_by(CustodyEvent.seq)).scalars()
    )
