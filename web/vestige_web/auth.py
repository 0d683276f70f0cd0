"""Logging in and out, and who is asking: a session user for pages, a bearer token for the API."""

from __future__ import annotations

from urllib.parse import urlsplit

from flask import Blueprint, flash, g, redirect, render_template, request, session, url_for

from werkzeug.exceptions import TooManyRequests

from vestige.access.accounts import authenticate, user_for_token
from vestige.access.websessions import end_session, start_session, user_for_session
from vestige_web.errors import is_api_request
from vestige_web.extensions import vestige
from vestige_web.requestlog import bind_user
from vestige_web.security import LoginLimiter

bp = Blueprint("auth", __name__)
limiter = LoginLimiter()


def load_user() -> None:
    """Set ``g.user``: from the bearer token on the API, from the session cookie elsewhere."""
    g.user = None
    if is_api_request():
        header = request.headers.get("Authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() == "bearer" and token.strip():
            g.user = user_for_token(vestige.session, token.strip())
        if g.user is not None:
            bind_user(g.user.username)
        return
    sid = session.get("sid")
    if sid is not None:
        g.user = user_for_session(vestige.session, sid)  # an ended or expired session is looked up, and refused
        if g.user is None:
            session.clear()
        else:
            bind_user(g.user.username)


def require_login() -> object | None:
    """A blueprint's ``before_request``: pages send strangers to the login form."""
    if g.user is None:
        return redirect(url_for("auth.login", next=request.full_path.rstrip("?")))
    return None


def _safe_next(target: str | None) -> str:
    # Only a path on this site: never an absolute URL an attacker could plant.
    if target and target.startswith("/") and not target.startswith("//") and not urlsplit(target).netloc:
        return target
    return url_for("cases.index")


@bp.route("/login", methods=["GET", "POST"])
def login() -> object:
    if request.method == "GET":
        return render_template("login.html", next=request.args.get("next", ""))
    username = request.form.get("username", "").strip()
    password = request.form.get("password", "")
    wait = limiter.retry_after(username)
    if wait is not None:
        raise TooManyRequests(f"Too many failed logins; wait {wait} seconds and try again.", retry_after=wait)
    user = authenticate(vestige.session, username, password) if username and password else None
    if user is None:
        limiter.failed(username)
        flash("That user name and password do not match an active account.", "error")
        return render_template("login.html", next=request.form.get("next", ""), username=username), 401
    limiter.succeeded(username)
    session.clear()  # a fresh session on login: nothing from before carries over
    session["sid"] = start_session(vestige.session, user)
    vestige.session.commit()
    session.permanent = True
    return redirect(_safe_next(request.form.get("next")))


@bp.post("/logout")
def logout() -> object:
    if session.get("sid"):
        end_session(vestige.session, session["sid"])  # the cookie, or any copy of it, stops working now
        vestige.session.commit()
    session.clear()
    flash("You are logged out.", "info")
    return redirect(url_for("auth.login"))
