"""A request id for every request, bound to its log lines and echoed in ``X-Request-ID``.

A proxy's ``X-Request-ID`` is kept when it is a plain token (letters, digits,
``.``, ``_``, ``-``, at most 64), so a line in the proxy's log and one here
can be matched; otherwise the app makes one. The id is bound with
:func:`vestige.core.logs.bind_context` as ``request`` (and ``user`` once known), so
whatever the request logs, in the web app or the core below it, names it; a
server error's page quotes it for the admin to look up.
"""

from __future__ import annotations

import logging
import re
import secrets

from flask import Flask, Response, g, request

from vestige.core.logs import bind_context, log_context, unbind_context

log = logging.getLogger(__name__)

HEADER = "X-Request-ID"
_TOKEN = re.compile(r"^[A-Za-z0-9._-]{1,64}$")


def request_id() -> str | None:
    """This request's id (None outside a request)."""
    return g.get("request_id")


def _begin() -> None:
    given = request.headers.get(HEADER, "")
    g.request_id = rid = given if _TOKEN.match(given) else secrets.token_hex(8)
    # A context variable's token, not a stack of context managers: this runs on every request.
    g.log_token = bind_context(request=rid)


def bind_user(username: str) -> None:
    """Name the signed-in user on the rest of this request's lines."""
    if "log_token" in g:
        bind_context(user=username)  # undone with the request's binding at its end


def _answer(response: Response) -> Response:
    if "request_id" in g:
        response.headers[HEADER] = g.request_id
        if response.status_code >= 500:
            log.error("%s %s answered %d", request.method, request.path, response.status_code)
    return response


def _end(_exc: BaseException | None) -> None:
    token = g.pop("log_token", None)
    if token is not None:
        unbind_context(token)  # back to the context before the request, the user's binding included


def init_request_logging(app: Flask) -> None:
    """Register the hooks; the id is made before anything else of the request runs."""
    app.before_request_funcs.setdefault(None, []).insert(0, _begin)
    app.after_request(_answer)
    app.teardown_request(_end)
