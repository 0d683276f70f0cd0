"""Sessions end on the server (issue 21, item 3): logout, a password change and removing a user revoke them."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from test_web import CSRF, PASSWORD, Browser, app, client, lab, runner, with_password  # noqa: F401  (shared fixtures)

COOKIE = "vestige_session"


def log_in(client) -> str:
    """Log alice in through the form; returns the session cookie's value."""
    Browser(client, None)
    response = client.post("/login", data={"username": "alice", "password": PASSWORD, "csrf_token": CSRF})
    assert response.status_code == 302
    assert client.get("/cases").status_code == 200
    return client.get_cookie(COOKIE).value


def replay(app, cookie: str):
    """A fresh client that presents a copy of an old cookie, as someone who kept it would."""
    other = app.test_client()
    other.set_cookie(COOKIE, cookie)
    return other


def test_a_cookie_kept_from_before_logout_no_longer_works(client, app, lab, with_password):
    cookie = log_in(client)
    assert replay(app, cookie).get("/cases").status_code == 200
    with client.session_transaction() as session:
        token = session["csrf"]
    assert client.post("/logout", data={"csrf_token": token}).status_code == 302
    response = replay(app, cookie).get("/cases")
    assert response.status_code == 302 and response.headers["Location"].startswith("/login")


@pytest.mark.parametrize("change", ["password", "remove"])
def test_a_password_change_or_removal_ends_every_session_of_the_user(client, app, lab, with_password, runner, tmp_path,
                                                                       change):
    cookie = log_in(client)
    if change == "password":
        secret = tmp_path / "pw"
        secret.write_text("a brand new passphrase\n")
        result = runner("user", "password", "alice", "--password-file", secret)
        assert result.exit_code == 0, result.stderr
        assert "1 session(s) ended" in result.stdout
    else:
        result = runner("user", "remove", "alice")
        assert result.exit_code == 0, result.stderr
        assert result.stdout.strip() == "user alice removed: 1 session(s) ended, 1 token(s) revoked"
        api = app.test_client().get("/api/v1/cases", headers={"Authorization": f"Bearer {lab.tokens['alice']}"})
        assert api.status_code == 401
    assert replay(app, cookie).get("/cases").status_code == 302


def test_a_removed_user_cannot_log_in_again(client, app, lab, with_password, runner):
    assert runner("user", "remove", "alice").exit_code == 0
    Browser(client, None)
    response = client.post("/login", data={"username": "alice", "password": PASSWORD, "csrf_token": CSRF})
    assert response.status_code == 401


def test_a_login_deletes_sessions_finished_over_a_month_ago(workspace):
    import datetime as dt

    from vestige.access.accounts import add_user
    from vestige.access.websessions import KEEP_FINISHED, start_session, user_for_session
    from vestige.db.models import WebSession, utcnow

    with workspace.db.session() as session:
        user = add_user(session, username="olga", role="examiner", password="a long password")
        long_ago = utcnow() - KEEP_FINISHED - dt.timedelta(days=1)
        session.add_all([
            WebSession(user_id=user.id, sid_hash="a" * 64, created_at=long_ago, expires_at=long_ago),
            WebSession(user_id=user.id, sid_hash="b" * 64, created_at=long_ago, expires_at=utcnow() + dt.timedelta(hours=1),
                       revoked_at=long_ago),
            WebSession(user_id=user.id, sid_hash="c" * 64, created_at=utcnow(), expires_at=utcnow() - dt.timedelta(days=1)),
        ])
        session.flush()
        sid = start_session(session, user)
        kept = sorted(h[:1] for h in session.execute(sa.select(WebSession.sid_hash)).scalars())
        assert user_for_session(session, sid) is not None
    assert len(kept) == 2 and "c" in kept  # expired yesterday: kept for a month; the two finished long ago: gone
