"""The custody chain catches every kind of tampering done directly in the database."""

import sqlalchemy as sa
import pytest

from vestige.db.models import CustodyEvent
from vestige.evidence.cases import create_case, get_case
from vestige.evidence.custody import record_event, verify_chain


@pytest.fixture
def case_with_events(workspace):
    with workspace.db.session() as session:
        case = create_case(session, reference="LAB-1", title="custody", actor="alice")
        for i in range(4):
            record_event(session, case, actor="bob", action="note", details={"n": i, "text": "é"})
    return workspace


def _verify(workspace):
    with workspace.db.session() as session:
        return verify_chain(session, get_case(session, "LAB-1"))


def _sql(workspace, statement, **params):
    with workspace.db.engine.begin() as conn:
        conn.execute(sa.text(statement), params)


def _event_ids(workspace):
    with workspace.db.engine.connect() as conn:
        return [row[0] for row in conn.execute(sa.text("SELECT id FROM custody_events ORDER BY id"))]


def test_an_untouched_chain_is_intact(case_with_events):
    report = _verify(case_with_events)
    assert report.intact
    assert report.sentence() == "chain intact: 5 events"


@pytest.mark.parametrize("column, value", [
    ("details", '{"n":1,"text":"edited"}'),
    ("actor", "mallory"),
    ("action", "deleted"),
    ("at", "2020-01-01T00:00:00.000000Z"),
])
def test_an_edited_event_is_caught(case_with_events, column, value):
    ids = _event_ids(case_with_events)
    _sql(case_with_events, f"UPDATE custody_events SET {column} = :v WHERE id = :id", v=value, id=ids[2])
    report = _verify(case_with_events)
    assert not report.intact
    assert report.problem.startswith("event 3 ") and "altered" in report.problem


def test_an_event_deleted_from_the_middle_is_caught(case_with_events):
    ids = _event_ids(case_with_events)
    _sql(case_with_events, "DELETE FROM custody_events WHERE id = :id", id=ids[1])
    report = _verify(case_with_events)
    assert not report.intact
    assert "event 3 " in report.problem and "missing" in report.problem


def test_events_deleted_from_the_end_are_caught(case_with_events):
    ids = _event_ids(case_with_events)
    _sql(case_with_events, "DELETE FROM custody_events WHERE id IN (:a, :b)", a=ids[-1], b=ids[-2])
    report = _verify(case_with_events)
    assert not report.intact
    assert "removed" in report.problem


def test_an_inserted_event_is_caught(case_with_events):
    with case_with_events.db.session() as session:
        case = get_case(session, "LAB-1")
        last = session.execute(sa.select(CustodyEvent).order_by(CustodyEvent.id.desc())).scalars().first()
        # A forged event that even links to the real head and carries a correct-looking hash.
        from vestige.evidence.custody import event_hash

        forged = CustodyEvent(case_id=case.id, seq=last.seq + 1, at=last.at, actor="mallory", action="note",
                              details="{}", prev_hash=last.hash, hash="")
        forged.hash = event_hash(case.reference, forged.seq, forged.at, forged.actor, forged.action, forged.details, forged.prev_hash)
        session.add(forged)
    report = _verify(case_with_events)
    assert not report.intact
    assert "records 5 events" in report.problem


def test_reordered_events_are_caught(case_with_events):
    ids = _event_ids(case_with_events)
    # Swap the sequence numbers of events 2 and 3 (through a free value: (case, seq) is unique).
    _sql(case_with_events, "UPDATE custody_events SET seq = 99 WHERE id = :id", id=ids[1])
    _sql(case_with_events, "UPDATE custody_events SET seq = 2 WHERE id = :id", id=ids[2])
    _sql(case_with_events, "UPDATE custody_events SET seq = 3 WHERE id = :id", id=ids[1])
    report = _verify(case_with_events)
    assert not report.intact
    assert "out of order" in report.problem or "missing" in report.problem


def test_an_event_moved_to_another_case_is_caught(case_with_events):
    with case_with_events.db.session() as session:
        create_case(session, reference="LAB-2", title="other", actor="alice")
        other = get_case(session, "LAB-2")
    ids = _event_ids(case_with_events)
    _sql(case_with_events, "UPDATE custody_events SET seq = 2, case_id = :c WHERE id = :id", c=other.id, id=ids[4])
    with case_with_events.db.session() as session:
        report = verify_chain(session, get_case(session, "LAB-2"))
    assert not report.intact


def test_custody_verify_command_exit_codes(vestige, case_with_events):
    ok = vestige("custody", "verify", "LAB-1")
    assert ok.exit_code == 0 and ok.stdout.strip() == "chain intact: 5 events; no signed checkpoint yet (`vestige custody checkpoint`)"
    ids = _event_ids(case_with_events)
    _sql(case_with_events, "UPDATE custody_events SET actor = 'mallory' WHERE id = :id", id=ids[3])
    broken = vestige("custody", "verify", "LAB-1")
    assert broken.exit_code == 1
    assert broken.stderr.startswith("chain broken: event 4 ")
    assert len(broken.stderr.strip().splitlines()) == 1


def test_custody_log_lists_events_in_order(vestige, case_with_events):
    import json

    result = vestige("custody", "log", "LAB-1", "--json")
    events = json.loads(result.stdout)
    assert [e["seq"] for e in events] == [1, 2, 3, 4, 5]
    assert events[0]["action"] == "case.opened" and events[1]["details"] == {"n": 0, "text": "é"}


def test_concurrent_writers_never_fork_the_chain(workspace):
    """Writers in several threads, each with its own session that already loaded the case."""
    import threading

    from sqlalchemy.exc import OperationalError

    with workspace.db.session() as session:
        create_case(session, reference="LAB-RACE", title="race", actor="alice")
    failures: list[Exception] = []

    def writer(n: int) -> None:
        for i in range(5):
            for attempt in range(50):
                try:
                    with workspace.db.session() as session:
                        case = get_case(session, "LAB-RACE")  # loaded before the event, as views do
                        record_event(session, case, actor=f"w{n}", action="note", details={"i": i})
                    break
                except OperationalError:  # SQLite: another writer committed after our snapshot; retry
                    continue
            else:
                failures.append(RuntimeError(f"writer {n} never got through"))

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not failures
    with workspace.db.session() as session:
        report = verify_chain(session, get_case(session, "LAB-RACE"))
    assert report.intact, report.problem
    assert report.events == 1 + 4 * 5


def test_group_commit_appends_queued_events_in_one_transaction(workspace):
    """Events queued while another thread writes go in together: one INSERT for all, the chain intact."""
    import threading

    from vestige.evidence.custody import GroupCommit, NewEvent

    with workspace.db.session() as session:
        create_case(session, reference="LAB-GROUP", title="group commit", actor="alice")
    inserts: list[int] = []

    def count_inserts(conn, cursor, statement, parameters, context, executemany):  # type: ignore[no-untyped-def]
        if statement.lstrip().upper().startswith("INSERT INTO CUSTODY_EVENTS"):
            inserts.append(len(parameters) if executemany else 1)

    sa.event.listen(workspace.db.engine, "before_cursor_execute", count_inserts)
    group = GroupCommit()
    digests: dict[int, str] = {}

    def viewer(n: int) -> None:
        session = workspace.db.sessionmaker()
        try:
            digests[n] = group.append(session, get_case(session, "LAB-GROUP"), NewEvent(f"viewer{n}", "image.viewed", {"n": n}))
        finally:
            session.close()

    group._writer.acquire()  # as if a writer were busy: every viewer queues behind it
    threads = [threading.Thread(target=viewer, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    while len(group._queue) < 8:
        threading.Event().wait(0.01)
    group._writer.release()
    for t in threads:
        t.join()
    sa.event.remove(workspace.db.engine, "before_cursor_execute", count_inserts)

    assert inserts == [8]  # one statement carried all eight events
    with workspace.db.session() as session:
        case = get_case(session, "LAB-GROUP")
        report = verify_chain(session, case)
        events = session.execute(sa.select(CustodyEvent).where(CustodyEvent.case_id == case.id)
                                 .order_by(CustodyEvent.seq)).scalars().all()
    assert report.intact and report.events == 9, report.problem
    assert sorted(digests.values()) == sorted(e.hash for e in events[1:])
    assert sorted(e.actor for e in events[1:]) == sorted(f"viewer{n}" for n in range(8))


def test_group_commit_failure_raises_in_the_waiting_thread_and_writes_nothing(workspace):
    from vestige.evidence.custody import GroupCommit, NewEvent

    from vestige.db.models import Case

    with workspace.db.session() as session:
        create_case(session, reference="LAB-FAIL", title="group commit", actor="alice")
    ghost = Case(id=10**6, reference="LAB-GHOST", title="no such row", created_by="alice")  # claiming its head fails
    with workspace.db.session() as session:
        with pytest.raises(RuntimeError, match="custody event could not be recorded"):
            GroupCommit().append(session, ghost, NewEvent("bob", "image.viewed"))
    with workspace.db.session() as session:
        assert verify_chain(session, get_case(session, "LAB-FAIL")).events == 1
