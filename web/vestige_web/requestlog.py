"""A request id for every request, bound to its log lines and echoed in ``X-Request-ID``.

A proxy's ``X-Request-ID`` is kept when it is a plain token (letters, digits,
``.``, ``_``, ``-``, at most 64), so a line in the proxy's log and one here
can be matched; otherwise the app makes one. The id is bound with
:func:`vestige.core.logs.log_context` as ``request`` (and ``user`` once known), so
whatever the request logs, in the web app or the core below it, names it; a
server error's page quotes it for the admin to look up.
"""

from __future__ import annotations

import logging
import re
import secrets
from contextlib import ExitStack

from flask import Flask, Response, g, request

from vestige.core.logs import log_context

log = logging.getLogger(__name__)

HEADER = "X-Request-ID"
_TOKEN = re.compile(r"^[A-Za-z0-9._-]{1,64}$")


def request_id() -> str | None:
    """This request's id (None outside a request)."""
    return g.get("request_id")


def _begin() -> None:
    given = request.headers.get(HEADER, "")
    g.request_id = given if _TOKEN.match(given) else secrets.token_hex(8)
    g.log_scope = ExitStack()
    g.log_scope.enter_context(log_context(request=g.request_id))


def bind_user(username: str) -> None:
    """Name the signed-in user on the rest of this request's lines."""
    scope = g.get("log_scope")
    if scope is not None:
        scope.enter_context(log_context(user=username))


def _answer(response: Response) -> Response:
    if "request_id" in g:
        response.headers[HEADER] = g.request_id
        if response.status_code >= 500:
            log.error("%s %s answered %d", request.method, request.path, response.status_code)
    return response


def _end(_exc: BaseException | None) -> None:
    scope = g.pop("log_scope", None)
    if scope is not None:
        scope.close()


def init_request_logging(app: Flask) -> None:
    """Register the hooks; the id is made before anything else of the request runs."""
    app.before_request_funcs.setdefault(None, []).insert(0, _begin)
    app.after_request(_answer)
    app.teardown_request(_end)
