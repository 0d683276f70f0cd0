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
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from vestige.db.engine import core_connection
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


# Built once (a memoised cache key): a custody event is written on every page view. Core statements on the
# tables, run on the session's connection: through the ORM (an ORM-enabled UPDATE and a bulk INSERT of mappings)
# the same three statements cost about 0.25 ms more of CPU per event, for nothing the chain uses.
_CASES = Case.__table__
_CLAIM_HEAD = (
    sa.update(_CASES)
    .where(_CASES.c.id == sa.bindparam("case_id"))
    .values(custody_count=_CASES.c.custody_count + sa.bindparam("n"))
    .returning(_CASES.c.reference, _CASES.c.custody_count, _CASES.c.custody_head)
)
_SET_HEAD = sa.update(_CASES).where(_CASES.c.id == sa.bindparam("case_id")).values(custody_head=sa.bindparam("head"))
_INSERT_EVENT = sa.insert(CustodyEvent.__table__)


@dataclass(frozen=True)
class NewEvent:
    """An event to append: who did what, with which details (hashed as canonical JSON)."""

    actor: str
    action: str
    details: dict[str, Any] | None = None


def record_event(session: Session, case: Case, *, actor: str, action: str, details: dict[str, Any] | None = None) -> str:
    """Append an event to ``case``'s chain in the caller's transaction; returns its hash.

    See :func:`record_events`, which this calls with one event.
    """
    digest = record_events(session, case.id, [NewEvent(actor, action, details)])[0]
    if case in session:
        # The loaded object still holds the old head and count; reload them on next access.
        session.expire(case, ["custody_head", "custody_count"])
    return digest


def record_events(session: Session, case_id: int, events: Sequence[NewEvent]) -> list[str]:
    """Append ``events``, in order, to the chain of case ``case_id`` in the caller's transaction; their hashes.

    The head is claimed with one ``UPDATE ... RETURNING`` on the case row
    before anything of the chain is read: it adds ``len(events)`` to the
    count and returns the new count and the old head. That statement takes
    the row lock on PostgreSQL (a concurrent writer waits, then sees the new
    head) and the database write lock on SQLite, which ignores ``FOR
    UPDATE``; so two writers can never extend the same head, whatever the
    caller's session has already loaded. A session whose SQLite snapshot is
    older than another writer's commit fails here with "database is locked"
    instead of forking the chain. The rows are written with one plain
    ``INSERT`` (no ORM unit of work: nothing reads them back in the same
    transaction), so appending several events costs about what one does.
    A loaded :class:`Case` keeps its old head and count until expired.
    """
    if not events:
        return []
    connection = core_connection(session)  # flushed: a case added in this transaction exists first
    reference, count, prev = connection.execute(_CLAIM_HEAD, {"case_id": case_id, "n": len(events)}).one()
    prev = prev or GENESIS
    rows, digests = [], []
    for seq, event in enumerate(events, start=count - len(events) + 1):
        at = _now_text()
        details_text = canonical_json(event.details or {})
        digest = event_hash(reference, seq, at, event.actor, event.action, details_text, prev)
        rows.append({"case_id": case_id, "seq": seq, "at": at, "actor": event.actor, "action": event.action,
                     "details": details_text, "prev_hash": prev, "hash": digest})
        digests.append(digest)
        prev = digest
    connection.execute(_INSERT_EVENT, rows)
    connection.execute(_SET_HEAD, {"case_id": case_id, "head": prev})
    return digests


@dataclass
class _Waiting:
    case_id: int
    event: NewEvent
    done: threading.Event = field(default_factory=threading.Event)
    digest: str | None = None
    error: BaseException | None = None


class GroupCommit:
    """Appends custody events from the many threads of one process, several per transaction.

    Every page view and API read appends an event, and a case's chain takes
    one writer at a time, so under concurrent readers the appends queue
    behind each other; each paid for a transaction of its own (claim the
    head, insert, set the head, commit). Here a thread that wants to append
    puts its event in a queue and, unless another thread is already writing,
    becomes the writer: it takes every event queued so far, appends them per
    case with :func:`record_events` in one transaction and commits; threads
    that queued meanwhile wait for the next writer, which is one of them.
    :meth:`append` commits the caller's session first (ending its reads), and
    returns only once its own event is committed (nothing is acknowledged
    that could be lost), or raises if that commit failed. The writer's
    session carries the write.
    """

    def __init__(self) -> None:
        self._queue: list[_Waiting] = []
        self._queue_lock = threading.Lock()
        self._writer = threading.Lock()

    def append(self, session: Session, case: Case, event: NewEvent) -> str:
        """Append ``event`` to ``case``'s chain and commit it; returns the event's hash."""
        session.commit()  # end this thread's reads (a later write of its own must not start from a stale snapshot)
        waiting = _Waiting(case.id, event)
        with self._queue_lock:
            self._queue.append(waiting)
        while not waiting.done.is_set():
            with self._writer:
                if not waiting.done.is_set():
                    with self._queue_lock:
                        batch, self._queue = self._queue, []
                    self._write(session, batch)
        if case in session:
            session.expire(case, ["custody_head", "custody_count"])
        if waiting.error is not None:
            raise RuntimeError(f"the custody event could not be recorded: {waiting.error}") from waiting.error
        assert waiting.digest is not None
        return waiting.digest

    @staticmethod
    def _write(session: Session, batch: list[_Waiting]) -> None:
        from vestige.db.engine import writer_gate

        by_case: dict[int, list[_Waiting]] = {}
        for waiting in batch:
            by_case.setdefault(waiting.case_id, []).append(waiting)
        try:
            with writer_gate(session.get_bind()):
                for case_id, group in by_case.items():
                    for waiting, digest in zip(group, record_events(session, case_id, [w.event for w in group])):
                        waiting.digest = digest
                session.commit()
        except BaseException as exc:  # every waiting thread raises it, the writer included
            session.rollback()
            for waiting in batch:
                waiting.error = exc
        finally:
            for waiting in batch:
                waiting.done.set()


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
