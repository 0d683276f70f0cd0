"""Vestige's web app (Flask): pages and the JSON API, built on the core in ``vestige``.

``create_app()`` builds the app on the configured workspace; ``vestige serve``
runs it for the embedded default, and in production a WSGI server runs
``vestige_web:create_app()`` behind a proxy (docs/web.md).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from flask import Flask, g

from vestige import __version__
from vestige.access.websessions import SESSION_LIFETIME
from vestige.core.logs import configure_logging, configured
from vestige_web.errors import register_error_handlers
from vestige_web.extensions import vestige
from vestige_web.security import Csrf, load_secret_key

__all__ = ["create_app"]

csrf = Csrf()


def create_app(test_config: Mapping[str, Any] | None = None) -> Flask:
    """The app; ``test_config`` may hold Flask settings and ``VESTIGE``, a :class:`vestige.core.config.Config`."""
    app = Flask(__name__)
    if test_config is not None:
        app.config.from_mapping(test_config)
    vestige.init_app(app)
    config = app.config["VESTIGE"]
    app.config.from_mapping(
        SECRET_KEY=app.config.get("SECRET_KEY") or load_secret_key(config),
        MAX_CONTENT_LENGTH=config.web.max_upload_bytes,
        SESSION_COOKIE_NAME="vestige_session",
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SECURE=True,
        SESSION_COOKIE_SAMESITE="Lax",
        PERMANENT_SESSION_LIFETIME=SESSION_LIFETIME,
    )
    if config.web.trusted_proxies > 0:  # only then is X-Forwarded-For the proxies' word, not the client's
        from werkzeug.middleware.proxy_fix import ProxyFix

        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=config.web.trusted_proxies)  # type: ignore[method-assign]
    from vestige_web import analyses, api, auth, cases, custody, images, plugins, reports, uploads
    from vestige_web.requestlog import init_request_logging

    if not configured():  # under gunicorn; `vestige serve` has configured it already
        configure_logging(config.logging.level, config.logging.format)
    init_request_logging(app)
    app.before_request(auth.load_user)
    csrf.init_app(app)
    auth.limiter.init_app(app)
    register_error_handlers(app)
    for module in (auth, cases, uploads, images, analyses, reports, custody, plugins, api):
        app.register_blueprint(module.bp)
    with app.app_context():
        extra = vestige.pm.hook.vestige_blueprints()
    for blueprints in extra:
        for blueprint in blueprints or []:
            app.register_blueprint(blueprint)

    from vestige.analysis.robustness import entry_change
    from vestige.analysis.verdicts import stated_confidence

    app.jinja_env.globals.update(change_of_entry=entry_change, stated_confidence=stated_confidence)

    @app.context_processor
    def _globals() -> dict[str, Any]:
        return {"current_user": g.get("user"), "version": __version__}

    @app.after_request
    def _headers(response):  # type: ignore[no-untyped-def]
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("X-Frame-Options", "DENY")
        response.headers.setdefault("Referrer-Policy", "same-origin")
        response.headers.setdefault(
            "Content-Security-Policy",
            "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; frame-ancestors 'none'",
        )
        return response

    return app
