"""The Celery app, built from Vestige's configuration (settings live in :mod:`vestige.jobs.settings`)."""

from __future__ import annotations

from celery import Celery

from vestige.core.config import Config
from vestige.jobs.settings import celery_settings


def create_celery_app(config: Config) -> Celery:
    """A Celery app for ``config``, with Vestige's tasks registered."""
    app = Celery("vestige", set_as_current=True)
    app.config_from_object(celery_settings(config))
    app.vestige_config = config  # the tasks open their workspace from it
    from vestige.jobs import tasks  # noqa: F401  (registers the shared tasks)

    return app
