"""Cases: open, look up, list, close. Every change is a custody event."""

from __future__ import annotations

import re
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from vestige.core.errors import ConflictError, InvalidInputError, NotFoundError
from vestige.db.engine import core_connection
from vestige.db.models import Case, CaseMember, Image
from vestige.evidence.custody import record_event

_REFERENCE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/-]{0,63}$")


def create_case(session: Session, *, reference: str, title: str, actor: str) -> Case:
    """Open a new case; the reference is the lab's own and must be unique."""
    reference = reference.strip()
    if not _REFERENCE.match(reference):
        raise InvalidInputError(
            f"case reference {reference!r} is not valid: use up to 64 letters, digits, '.', '_', '/' or '-'"
        )
    title = title.strip()
    if not title:
        raise InvalidInputError("a case needs a title")
    if session.execute(sa.select(Case.id).where(Case.reference == reference)).first():
        raise ConflictError(f"case {reference} already exists")
    case = Case(reference=reference, title=title, created_by=actor)
    session.add(case)
    session.flush()
    record_event(session, case, actor=actor, action="case.opened", details={"reference": reference, "title": title})
    return case


def get_case(session: Session, reference: str) -> Case:
    case = session.execute(sa.select(Case).where(Case.reference == reference)).scalar_one_or_none()
    if case is None:
        raise NotFoundError(f"no case {reference!r}; `vestige case list` shows the cases")
    return case


_EVIDENCE_COUNT = (
    sa.select(sa.func.count(Image.id)).where(Image.case_id == Case.id, Image.origin == "evidence").scalar_subquery()
)
_CASES = sa.select(Case, _EVIDENCE_COUNT).order_by(Case.created_at.desc(), Case.id.desc())
_MEMBER_CASES = _CASES.where(Case.id.in_(sa.select(CaseMember.case_id).where(CaseMember.user_id == sa.bindparam("member_id"))))


def list_cases(session: Session, *, search: str | None = None, member_id: int | None = None) -> list[tuple[Case, int]]:
    """Cases with their evidence image counts (not the lab's own copies), newest first; ``search`` matches
    reference or title; ``member_id`` keeps the cases that user is a member of.

    The statements are built once (SQLAlchemy memoises their cache key): the
    case list is the web's most frequent request."""
    query, params = (_CASES, {}) if member_id is None else (_MEMBER_CASES, {"member_id": member_id})
    if search:
        pattern = f"%{search}%"
        query = query.where(sa.or_(Case.reference.ilike(pattern), Case.title.ilike(pattern)))
    return [(case, n) for case, n in session.execute(query, params).all()]


# The same listing as rows of the cases table's columns (plus ``images``, the count) rather than Case objects:
# the web's case list (its most frequent request) only shows columns, and building twenty ORM objects per
# request cost about as much CPU as the statement itself.
_CASE_TABLE = Case.__table__
_CASE_ROWS = sa.select(_CASE_TABLE, _EVIDENCE_COUNT.label("images")).order_by(_CASE_TABLE.c.created_at.desc(),
                                                                              _CASE_TABLE.c.id.desc())
_MEMBER_CASE_ROWS = _CASE_ROWS.where(
    _CASE_TABLE.c.id.in_(sa.select(CaseMember.case_id).where(CaseMember.user_id == sa.bindparam("member_id"))))


def list_case_rows(session: Session, *, search: str | None = None,
                   member_id: int | None = None) -> list[tuple[sa.Row[Any], int]]:
    """:func:`list_cases` as read-only rows (a case's columns as attributes: ``reference``, ``title``,
    ``status``...), each with its evidence image count; for listings that only show them."""
    query, params = (_CASE_ROWS, {}) if member_id is None else (_MEMBER_CASE_ROWS, {"member_id": member_id})
    if search:
        pattern = f"%{search}%"
        query = query.where(sa.or_(_CASE_TABLE.c.reference.ilike(pattern), _CASE_TABLE.c.title.ilike(pattern)))
    return [(row, row.images) for row in core_connection(session).execute(query, params).all()]


def evidence_count(case: Case) -> int:
    """How many evidence images the case holds (the lab's own copies, such as robustness probes, are not evidence)."""
    return sum(1 for image in case.images if image.origin == "evidence")


def set_case_status(session: Session, case: Case, status: str, *, actor: str) -> None:
    if case.status == status:
        return
    case.status = status
    record_event(session, case, actor=actor, action=f"case.{status}", details={})


def require_open(case: Case) -> None:
    if case.status != "open":
        raise ConflictError(f"case {case.reference} is closed; reopen it with `vestige case reopen {case.reference}`")
