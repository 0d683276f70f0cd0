"""Users, API tokens and case membership: the service functions behind logins and access.

Passwords are stored as werkzeug's salted scrypt hashes. API tokens are 256
random bits shown once; only their SHA-256 is stored, which is enough for a
secret with that much entropy and lets a token be found with one indexed
lookup instead of trying a slow hash against every row.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
import secrets

import sqlalchemy as sa
from sqlalchemy.orm import Session
from werkzeug.security import check_password_hash, generate_password_hash

from vestige.core.errors import ConflictError, InvalidInputError, NotFoundError
from vestige.db.models import CASE_ROLES, ROLES, ApiToken, Case, CaseMember, User, utcnow
from vestige.evidence.custody import record_event

_USERNAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$")
MIN_PASSWORD_LENGTH = 10
#: A token's last use is written at most this often, so reads stay reads.
TOKEN_TOUCH_INTERVAL = dt.timedelta(minutes=5)
# Checked against when the user does not exist, so a wrong name costs as long as a wrong password.
_DUMMY_HASH = generate_password_hash("vestige-no-such-user")


def hash_password(password: str) -> str:
    """A salted scrypt hash of ``password``."""
    return generate_password_hash(password, method="scrypt")


def add_user(session: Session, *, username: str, role: str, password: str | None) -> User:
    """Create a user; ``password`` None makes an account that can use API tokens but not log in."""
    username = username.strip()
    if not _USERNAME.match(username):
        raise InvalidInputError(
            f"user name {username!r} is not valid: use up to 64 letters, digits, '.', '_', '@' or '-'"
        )
    if role not in ROLES:
        raise InvalidInputError(f"role {role!r} is not one of {', '.join(ROLES)}")
    if password is not None and len(password) < MIN_PASSWORD_LENGTH:
        raise InvalidInputError(f"the password is too short: use at least {MIN_PASSWORD_LENGTH} characters")
    if session.execute(sa.select(User.id).where(User.username == username)).first():
        raise ConflictError(f"user {username} already exists")
    user = User(username=username, role=role, password_hash=hash_password(password) if password else None)
    session.add(user)
    session.flush()
    return user


def get_user(session: Session, username: str) -> User:
    user = session.execute(sa.select(User).where(User.username == username)).scalar_one_or_none()
    if user is None:
        raise NotFoundError(f"no user {username!r}; `vestige user list` shows the users")
    return user


def list_users(session: Session) -> list[User]:
    return list(session.execute(sa.select(User).order_by(User.username)).scalars())


def authenticate(session: Session, username: str, password: str) -> User | None:
    """The active user with this name and password, else None (in about the same time either way)."""
    user = session.execute(sa.select(User).where(User.username == username)).scalar_one_or_none()
    stored = user.password_hash if user is not None and user.password_hash else _DUMMY_HASH
    ok = check_password_hash(stored, password)
    if user is None or not user.is_active or not user.password_hash or not ok:
        return None
    return user


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def create_token(session: Session, user: User, *, name: str = "") -> str:
    """A new API token for ``user``; the caller shows it once, only its hash is kept."""
    token = "vst_" + secrets.token_urlsafe(32)
    session.add(ApiToken(user_id=user.id, token_hash=token_digest(token), name=name))
    session.flush()
    return token


# Built once (a memoised cache key): every API request looks its token up.
_LIVE_TOKEN = (
    sa.select(ApiToken, User)
    .join(User, User.id == ApiToken.user_id)
    .where(ApiToken.token_hash == sa.bindparam("digest"), ApiToken.revoked_at.is_(None))
)


def user_for_token(session: Session, token: str) -> User | None:
    """The active user a live token belongs to, else None."""
    row = session.execute(_LIVE_TOKEN, {"digest": token_digest(token)}).first()
    if row is None or not row.User.is_active:
        return None
    now = utcnow()
    if row.ApiToken.last_used_at is None or now - row.ApiToken.last_used_at > TOKEN_TOUCH_INTERVAL:
        row.ApiToken.last_used_at = now
        session.commit()
    return row.User


def revoke_tokens(session: Session, user: User) -> int:
    """Revoke every live token of ``user``; returns how many."""
    tokens = session.execute(
        sa.select(ApiToken).where(ApiToken.user_id == user.id, ApiToken.revoked_at.is_(None))
    ).scalars().all()
    for token in tokens:
        token.revoked_at = utcnow()
    return len(tokens)


def add_member(session: Session, case: Case, user: User, *, role: str, actor: str) -> CaseMember:
    """Give ``user`` a role on ``case`` (or change it); a custody event records it."""
    if role not in CASE_ROLES:
        raise InvalidInputError(f"case role {role!r} is not one of {', '.join(CASE_ROLES)}")
    member = session.get(CaseMember, (case.id, user.id))
    if member is None:
        member = CaseMember(case_id=case.id, user_id=user.id, role=role)
        session.add(member)
    elif member.role == role:
        return member
    else:
        member.role = role
    session.flush()
    record_event(session, case, actor=actor, action="case.member_added",
                 details={"user": user.username, "role": role})
    return member


def remove_member(session: Session, case: Case, user: User, *, actor: str) -> None:
    member = session.get(CaseMember, (case.id, user.id))
    if member is None:
        raise NotFoundError(f"{user.username} is not a member of case {case.reference}")
    session.delete(member)
    session.flush()
    record_event(session, case, actor=actor, action="case.member_removed", details={"user": user.username})


def case_members(session: Session, case: Case) -> list[tuple[str, str]]:
    """(user name, case role) of every member, by name."""
    rows = session.execute(
        sa.select(User.username, CaseMember.role).join(CaseMember, CaseMember.user_id == User.id)
        .where(CaseMember.case_id == case.id).order_by(User.username)
    ).all()
    return [(name, role) for name, role in rows]
