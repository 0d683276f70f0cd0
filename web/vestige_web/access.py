"""Who may see and do what: per-case membership, checked on every page and API call.

A user sees a case when they are a member of it, or an admin. A case the user
may not see answers exactly as a case that does not exist (404, same
sentence), so references cannot be probed. Acting on a case (uploading,
analysing) needs a case role of lead or examiner and a global role other
than viewer.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session, contains_eager

from vestige.core.errors import NotFoundError, VestigeError
from vestige.db.models import Case, CaseMember, Image, User
from vestige.evidence.cases import list_case_rows, list_cases

WRITE_ROLES = ("lead", "examiner")
#: Ids are 32-bit integers on PostgreSQL; a larger one names nothing (and must not reach the database).
MAX_ID = 2**31 - 1


class AccessDeniedError(VestigeError):
    """The user may see this, but not do it."""

    status = 403


def case_not_found(reference: str) -> NotFoundError:
    return NotFoundError(f"There is no case {reference} that you can see.")


def case_role(session: Session, user: User, case: Case) -> str | None:
    """The user's role on ``case`` (admins act as lead everywhere), or None."""
    if user.role == "admin":
        return "lead"
    member = session.get(CaseMember, (case.id, user.id))
    return member.role if member is not None else None


def visible_case_ids(session: Session, user: User) -> set[int] | None:
    """Ids of the cases ``user`` may see; None means all of them."""
    if user.role == "admin":
        return None
    return set(session.execute(sa.select(CaseMember.case_id).where(CaseMember.user_id == user.id)).scalars())


# The user's role on the case in the same query as the case itself: one round trip per check. The
# statements are built once, the user and the case or image bound per call (a memoised cache key).
_MEMBER_ROLE = (
    sa.select(CaseMember.role)
    .where(CaseMember.case_id == Case.id, CaseMember.user_id == sa.bindparam("user_id"))
    .scalar_subquery()
)
_CASE_AND_ROLE = sa.select(Case, _MEMBER_ROLE).where(Case.reference == sa.bindparam("reference"))
_IMAGE_AND_ROLE = (
    sa.select(Image, _MEMBER_ROLE).join(Image.case).options(contains_eager(Image.case))
    .where(Image.id == sa.bindparam("image_id"))
)


def _visible(user: User, role: str | None) -> bool:
    return user.role == "admin" or role is not None


def find_case(session: Session, user: User, reference: str) -> Case:
    """The case named ``reference`` if ``user`` may see it; otherwise the same 404 as for no case."""
    row = session.execute(_CASE_AND_ROLE, {"reference": reference, "user_id": user.id}).first()
    if row is None or not _visible(user, row[1]):
        raise case_not_found(reference)
    return row[0]


def find_image(session: Session, user: User, image_id: int) -> Image:
    """The image if ``user`` may see its case; otherwise 404."""
    row = None
    if 0 < image_id <= MAX_ID:
        row = session.execute(_IMAGE_AND_ROLE, {"image_id": image_id, "user_id": user.id}).first()
    if row is None or not _visible(user, row[1]):
        raise NotFoundError(f"There is no image {image_id} that you can see.")
    return row[0]


def can_act(session: Session, user: User, case: Case) -> bool:
    return user.role != "viewer" and case_role(session, user, case) in WRITE_ROLES


def require_act(session: Session, user: User, case: Case, what: str) -> None:
    if not can_act(session, user, case):
        raise AccessDeniedError(f"You may read case {case.reference} but not {what}: ask its lead for the examiner role.")


def require_case_creator(user: User) -> None:
    if user.role == "viewer":
        raise AccessDeniedError("Viewers cannot open cases; ask an admin for the examiner role.")


def visible_cases(session: Session, user: User, search: str | None = None) -> list[tuple[sa.Row[Any], int]]:
    """The cases ``user`` may see with their image counts, newest first; each case a row of its columns
    (:func:`vestige.evidence.cases.list_case_rows`), which is all a listing shows."""
    return list_case_rows(session, search=search or None, member_id=None if user.role == "admin" else user.id)


def visible_case_references(session: Session, user: User, references: set[str]) -> set[str]:
    """Which of ``references`` the user may see."""
    if not references:
        return set()
    allowed = visible_case_ids(session, user)
    if allowed is None:
        return set(references)
    rows = session.execute(sa.select(Case.id, Case.reference).where(Case.reference.in_(references))).all()
    return {ref for case_id, ref in rows if case_id in allowed}


def filter_related(session: Session, user: User, history: dict[str, list[dict[str, Any]]]) -> dict[str, list[dict[str, Any]]]:
    """Drop perturbation links to images in cases the user may not see."""
    refs = {row[key]["case"] for key in ("parent", "image") for part in history.values() for row in part
            if row.get(key)}
    seen = visible_case_references(session, user, refs)

    def keep(row: dict[str, Any]) -> bool:
        related = row.get("parent") or row.get("image")
        return related is None or related["case"] in seen

    return {part: [row for row in rows if keep(row)] for part, rows in history.items()}
