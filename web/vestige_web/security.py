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

from vestige.config import Config
from vestige.errors import ConfigError
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
    """Failed logins per user name and per client address, counted in memory.

    The counts live in each server process (gunicorn workers count
    separately), which bounds guessing to ``max_failures`` × workers per
    window; a proxy in front can add a global limit.
    """

    def __init__(self, app: Flask | None = None, *, max_failures: int = 5, window_s: float = 300.0) -> None:
        self.max_failures = max_failures
        self.window_s = window_s
        if app is not None:
            self.init_app(app)

    def init_app(self, app: Flask) -> None:
        app.config.setdefault("LOGIN_MAX_FAILURES", self.max_failures)
        app.config.setdefault("LOGIN_WINDOW_SECONDS", self.window_s)
        app.extensions["vestige_login_limiter"] = _Failures()

    def _keys(self, username: str) -> list[str]:
        return [f"user:{username.lower()}", f"addr:{request.remote_addr}"]

    def retry_after(self, username: str) -> int | None:
        """Seconds until another try is allowed, or None when it is allowed now."""
        app = current_app
        failures: _Failures = app.extensions["vestige_login_limiter"]
        waits = [failures.wait(key, app.config["LOGIN_MAX_FAILURES"], app.config["LOGIN_WINDOW_SECONDS"])
                 for key in self._keys(username)]
        longest = max(waits)
        return int(longest) + 1 if longest > 0 else None

    def failed(self, username: str) -> None:
        failures: _Failures = current_app.extensions["vestige_login_limiter"]
        for key in self._keys(username):
            failures.add(key, current_app.config["LOGIN_WINDOW_SECONDS"])

    def succeeded(self, username: str) -> None:
        current_app.extensions["vestige_login_limiter"].clear(self._keys(username)[0])


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
