"""One error shape everywhere: ``{"ok": false, "error": "...", "status": N}`` for JSON, a calm page otherwise.

Errors a user can cause are :class:`~vestige.core.errors.VestigeError` (their
sentence and status are used as they are) or HTTP errors raised with
``abort(status, "A sentence.")``.
"""

from __future__ import annotations

from flask import Flask, Response, jsonify, render_template, request
from werkzeug.exceptions import HTTPException, InternalServerError

from vestige.core.errors import VestigeError

#: Headers of an HTTP error worth keeping on the JSON version (405's Allow, 401's challenge, 429's wait).
KEPT_HEADERS = ("Allow", "WWW-Authenticate", "Retry-After")


def is_api_request() -> bool:
    """Under ``/api/``: bearer tokens only, no CSRF, JSON always (even when no route matched)."""
    return request.path.startswith("/api/")


def wants_json() -> bool:
    """JSON for the API and the pages' polling endpoints, and for clients that ask for it."""
    if is_api_request() or request.path.endswith(".json"):
        return True
    best = request.accept_mimetypes.best_match(["text/html", "application/json"])
    return best == "application/json" and request.accept_mimetypes[best] > request.accept_mimetypes["text/html"]


def error_response(message: str, status: int, headers: dict[str, str] | None = None) -> Response:
    if wants_json():
        response = jsonify({"ok": False, "error": message, "status": status})
    else:
        response = Response(render_template("error.html", message=message, status=status), mimetype="text/html")
    response.status_code = status
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response


def _http_error(exc: HTTPException) -> Response:
    if isinstance(exc, InternalServerError):
        return _server_error(exc)
    headers = {name: value for name, value in exc.get_headers() if name in KEPT_HEADERS}
    return error_response(exc.description or exc.name, exc.code or 500, headers)


def _vestige_error(exc: VestigeError) -> Response:
    return error_response(exc.message, exc.status)


def _server_error(_exc: Exception) -> Response:
    # Flask has logged the exception with its traceback (and the request id) before calling this.
    from vestige_web.requestlog import request_id

    return error_response("Something went wrong on the server; it has been logged as request "
                          f"{request_id() or 'unknown'}. Try again, or tell the lab's admin that reference.", 500)


def register_error_handlers(app: Flask) -> None:
    app.register_error_handler(HTTPException, _http_error)
    app.register_error_handler(VestigeError, _vestige_error)
    app.register_error_handler(InternalServerError, _server_error)
