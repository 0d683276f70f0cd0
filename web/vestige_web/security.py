"""The session secret, CSRF tokens on every form, and login rate limiting.

Both extensions follow Flask's pattern: created unbound here, bound to an app
by ``init_app`` in the factory, with their state kept per app.
"""

from __future__ import annotations

import hmac
import os
import secrets
import threading
import time
from collections import deque
from pathlib import Path

from flask import Flask, abort, current_app, request, session

from vestige.core.config import Config
from vestige.core.errors import ConfigError
from vestige_web.errors import is_api_request

SECRET_FILE = "web-secret-key"
UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


def load_secret_key(config: Config) -> str:
    """``web.secret_key`` if set (from ``VESTIGE_WEB__SECRET_KEY``), else one made once per data directory.

    The generated key is written with mode 0600 next to the database, never in
    the repository, and read back by every process of the same data directory.
    """
    if config.web.secret_key:
        return config.web.secret_key
    path: Path = config.data_dir / SECRET_FILE
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        key = path.read_text().strip()
        if len(key) < 32:
            raise ConfigError(f"the secret key in {path} is too short; delete the file and a new one is made") from None
        return key
    except OSError as exc:
        raise ConfigError(f"cannot create the secret key file {path}: {exc.strerror}") from None
    key = secrets.token_urlsafe(48)
    with os.fdopen(fd, "w") as fh:
        fh.write(key + "\n")
    return key


class Csrf:
    """A per-session token that every state-changing form (and fetch) must send back.

    The JSON API is exempt: it authenticates with bearer tokens only, never
    with the session cookie, so a forged cross-site request carries nothing.
    """

    FIELD = "csrf_token"
    HEADER = "X-CSRF-Token"

    def __init__(self, app: Flask | None = None) -> None:
        if app is not None:
            self.init_app(app)

    def init_app(self, app: Flask) -> None:
        app.before_request(self.protect)
        app.jinja_env.globals["csrf_token"] = self.token

    def token(self) -> str:
        if "csrf" not in session:
            session["csrf"] = secrets.token_urlsafe(32)
        return session["csrf"]

    def protect(self) -> None:
        if request.method not in UNSAFE_METHODS or is_api_request():
            return
        sent = request.headers.get(self.HEADER) or request.form.get(self.FIELD, "")
        expected = session.get("csrf", "")
        if not expected or not hmac.compare_digest(sent.encode(), expected.encode()):
            abort(400, "This form has expired or did not come from this site; reload the page and try again.")


class LoginLimiter:
    """Failed logins, counted in memory, under three separate limits.

    - per account *and* client address (``LOGIN_MAX_FAILURES``, 5): guessing
      one password from one place;
    - per client address, whatever the account (``LOGIN_MAX_FAILURES_PER_ADDRESS``,
      20): one place trying many accounts; one user's typos do not lock out
      the others behind the same address;
    - per account, whatever the address (``LOGIN_MAX_FAILURES_PER_ACCOUNT``,
      50): guessing one password from many places. Only this one lets
      strangers lock an account, and only from many addresses at once.

    The client address is the connection's, unless ``[web] trusted_proxies``
    says how many proxies in front append to ``X-Forwarded-For`` (werkzeug's
    ``ProxyFix``, installed by the app factory); otherwise that header is the
    client's own word and is ignored. The counts live in each server process
    (gunicorn workers count separately), which multiplies each bound by the
    number of workers; a proxy in front can add a global limit.
    """

    def __init__(self, app: Flask | None = None, *, max_failures: int = 5, per_address: int = 20,
                 per_account: int = 50, window_s: float = 300.0) -> None:
        self.defaults = {"LOGIN_MAX_FAILURES": max_failures, "LOGIN_MAX_FAILURES_PER_ADDRESS": per_address,
                         "LOGIN_MAX_FAILURES_PER_ACCOUNT": per_account, "LOGIN_WINDOW_SECONDS": window_s}
        if app is not None:
            self.init_app(app)

    def init_app(self, app: Flask) -> None:
        for key, value in self.defaults.items():
            app.config.setdefault(key, value)
        app.extensions["vestige_login_limiter"] = _Failures()

    def _limits(self, username: str) -> list[tuple[str, int]]:
        name, addr, cfg = username.lower(), request.remote_addr or "unknown", current_app.config
        return [(f"pair:{addr}|{name}", cfg["LOGIN_MAX_FAILURES"]),
                (f"addr:{addr}", cfg["LOGIN_MAX_FAILURES_PER_ADDRESS"]),
                (f"user:{name}", cfg["LOGIN_MAX_FAILURES_PER_ACCOUNT"])]

    def retry_after(self, username: str) -> int | None:
        """Seconds until another try is allowed, or None when it is allowed now."""
        failures: _Failures = current_app.extensions["vestige_login_limiter"]
        window = current_app.config["LOGIN_WINDOW_SECONDS"]
        longest = max(failures.wait(key, limit, window) for key, limit in self._limits(username))
        return int(longest) + 1 if longest > 0 else None

    def failed(self, username: str) -> None:
        failures: _Failures = current_app.extensions["vestige_login_limiter"]
        for key, _ in self._limits(username):
            failures.add(key, current_app.config["LOGIN_WINDOW_SECONDS"])

    def succeeded(self, username: str) -> None:
        current_app.extensions["vestige_login_limiter"].clear(self._limits(username)[0][0])


class _Failures:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._times: dict[str, deque[float]] = {}

    def _prune(self, key: str, window: float, now: float) -> deque[float]:
        times = self._times.setdefault(key, deque())
        while times and now - times[0] > window:
            times.popleft()
        return times

    def add(self, key: str, window: float) -> None:
        now = time.monotonic()
        with self._lock:
            self._prune(key, window, now).append(now)

    def wait(self, key: str, limit: int, window: float) -> float:
        now = time.monotonic()
        with self._lock:
            times = self._prune(key, window, now)
            if len(times) < limit:
                return 0.0
            return window - (now - times[-limit])

    def clear(self, key: str) -> None:
        with self._lock:
            self._times.pop(key, None)
