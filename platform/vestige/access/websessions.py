"""Browser sessions that the server can end: logout, a password change, a user's removal.

The signed cookie alone cannot be revoked: a copy of it stays valid until it
expires. So the cookie carries only a random session id (256 bits); the
server keeps its SHA-256 with the user, the expiry and, once ended, when.
Every request looks the id up, so an ended session stops working at once on
every web host that shares the database.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets

import sqlalchemy as sa
from sqlalchemy.orm import Session

from vestige.core.errors import InvalidInputError
from vestige.db.models import ApiToken, User, WebSession, utcnow

#: How long a session lasts from login (the cookie's own lifetime is the same).
SESSION_LIFETIME = dt.timedelta(hours=12)
#: Sessions that expired or were ended longer ago than this are deleted at the next login: they can never
#: work again, and who saw what is in the custody log, not here.
KEEP_FINISHED = dt.timedelta(days=30)


def _digest(sid: str) -> str:
    return hashlib.sha256(sid.encode("utf-8")).hexdigest()


def start_session(session: Session, user: User) -> str:
    """A new session for ``user``; returns the id for the cookie (only its hash is kept)."""
    sid = secrets.token_urlsafe(32)
    now = utcnow()
    prune_sessions(session, now)
    session.add(WebSession(user_id=user.id, sid_hash=_digest(sid), created_at=now, expires_at=now + SESSION_LIFETIME))
    session.flush()
    return sid


def prune_sessions(session: Session, now: dt.datetime | None = None) -> int:
    """Delete the sessions that expired or were ended more than :data:`KEEP_FINISHED` ago; returns how many."""
    before = (now or utcnow()) - KEEP_FINISHED
    result = session.execute(sa.delete(WebSession).where(
        sa.or_(WebSession.expires_at < before, WebSession.revoked_at < before)))
    return result.rowcount or 0


def user_for_session(session: Session, sid: str) -> User | None:
    """The active user of a live (not ended, not expired) session, else None."""
    row = session.execute(
        sa.select(User).join(WebSession, WebSession.user_id == User.id)
        .where(WebSession.sid_hash == _digest(sid), WebSession.revoked_at.is_(None), WebSession.expires_at > utcnow())
    ).scalar_one_or_none()
    return row if row is not None and row.is_active else None


def end_session(session: Session, sid: str) -> None:
    session.execute(sa.update(WebSession).where(WebSession.sid_hash == _digest(sid), WebSession.revoked_at.is_(None))
                    .values(revoked_at=utcnow()))


def end_sessions(session: Session, user: User) -> int:
    """End every live session of ``user``; returns how many."""
    result = session.execute(
        sa.update(WebSession).where(WebSession.user_id == user.id, WebSession.revoked_at.is_(None),
                                    WebSession.expires_at > utcnow()).values(revoked_at=utcnow())
    )
    return result.rowcount or 0


def change_password(session: Session, user: User, password: str) -> int:
    """Set a new password and end every session of ``user`` (a stolen cookie dies with the old password)."""
    from vestige.access.accounts import MIN_PASSWORD_LENGTH, hash_password

    if len(password) < MIN_PASSWORD_LENGTH:
        raise InvalidInputError(f"the password is too short: use at least {MIN_PASSWORD_LENGTH} characters")
    user.password_hash = hash_password(password)
    return end_sessions(session, user)


def remove_user(session: Session, user: User) -> tuple[int, int]:
    """Deactivate ``user`` (kept, since custody names them), ending their sessions and revoking their tokens."""
    user.is_active = False
    user.password_hash = None
    tokens = session.execute(
        sa.update(ApiToken).where(ApiToken.user_id == user.id, ApiToken.revoked_at.is_(None)).values(revoked_at=utcnow())
    ).rowcount or 0
    return end_sessions(session, user), tokens
