"""Logging: the standard library's, configured once per process, with the context each line belongs to.

Modules log with ``logging.getLogger(__name__)``; nothing here replaces that.
What this module adds:

- **Context.** :func:`log_context` binds fields (``request``, ``case``,
  ``analysis``, ``task``, ``worker``...) for the code it wraps, in a
  :class:`contextvars.ContextVar`, so a line logged deep in ingest or in a
  detector names the request or task it serves without every function
  passing them along. The web app binds ``request`` (its request id) per
  request, workers bind ``task`` and ``analysis`` per task.
- **Formats.** ``text`` (default): ``2026-12-05T22:10:00.123Z INFO
  vestige.evidence.ingest [case=LAB-1 request=4f2a…] ingested 3 images``; ``json``:
  one JSON object per line (``time``, ``level``, ``logger``, ``message``,
  the context fields, ``exception`` with the traceback when there is one),
  for a lab's log collector. Set by ``[logging] format`` (or
  ``VESTIGE_LOGGING__FORMAT``).
- **Levels.** ``[logging] level`` (default ``INFO``) applies to Vestige's
  own loggers (``vestige``, ``vestige_web`` and the plugins' ``vestige_*``);
  other libraries log at ``WARNING`` and above. The command line logs only
  warnings unless given ``--verbose`` (``-v``: INFO, ``-vv``: DEBUG), so
  its own output stays readable; ``vestige worker`` and the web app use the
  configured level.

Log lines go to stderr. They are operational records, not evidence: the
custody chain is the record of what was done to a case.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar, Token
from typing import IO, Any

__all__ = ["FORMATS", "LEVELS", "bind_context", "configure_logging", "configured", "current_context", "log_context",
           "unbind_context", "verbosity_level"]

FORMATS = ("text", "json")
LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
#: Loggers whose names start with this are Vestige's own (the core, the web app, the plugins).
OWN_PREFIX = "vestige"

_CONTEXT: ContextVar[Mapping[str, Any]] = ContextVar("vestige_log_context", default={})


def bind_context(**fields: Any) -> Token[Mapping[str, Any]]:
    """Bind ``fields`` (``None`` values are left out) from now on, in this thread or task; returns the token
    that :func:`unbind_context` takes. For a scope that is not one block of code (a web request's hooks);
    otherwise use :func:`log_context`."""
    return _CONTEXT.set({**_CONTEXT.get(), **{k: v for k, v in fields.items() if v is not None}})


def unbind_context(token: Token[Mapping[str, Any]]) -> None:
    """Back to the fields bound before the :func:`bind_context` that gave ``token`` (and any bound since)."""
    _CONTEXT.reset(token)


@contextmanager
def log_context(**fields: Any) -> Iterator[None]:
    """Bind ``fields`` (``None`` values are left out) to every line logged inside, in this thread or task."""
    token = bind_context(**fields)
    try:
        yield
    finally:
        unbind_context(token)


def current_context() -> dict[str, Any]:
    """The fields bound here now."""
    return dict(_CONTEXT.get())


def _timestamp(record: logging.LogRecord) -> str:
    moment = dt.datetime.fromtimestamp(record.created, tz=dt.timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


class _Context(logging.Filter):
    """Adds the bound context to each record, and keeps other libraries' lines below WARNING out."""

    def __init__(self, own_level: int, own: tuple[str, ...]) -> None:
        super().__init__()
        self.own_level = own_level
        self.own = own

    def filter(self, record: logging.LogRecord) -> bool:
        own = record.name.startswith(self.own)
        if record.levelno < (self.own_level if own else max(self.own_level, logging.WARNING)):
            return False
        record.vestige_context = _CONTEXT.get()
        return True


class TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        context = getattr(record, "vestige_context", {})
        where = " [" + " ".join(f"{k}={v}" for k, v in context.items()) + "]" if context else ""
        line = f"{_timestamp(record)} {record.levelname} {record.name}{where} {record.getMessage()}"
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {"time": _timestamp(record), "level": record.levelname, "logger": record.name,
                                 "message": record.getMessage()}
        for key, value in getattr(record, "vestige_context", {}).items():
            entry.setdefault(key, value)
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False, default=str)


class _Handler(logging.StreamHandler):  # type: ignore[type-arg]
    """Marks the handler this module installed, so configuring again replaces it instead of adding another."""


def configured() -> bool:
    """Whether this process has called :func:`configure_logging`."""
    return any(isinstance(h, _Handler) for h in logging.getLogger().handlers)


def configure_logging(level: str = "INFO", fmt: str = "text", *, stream: IO[str] | None = None,
                      also: tuple[str, ...] = ()) -> None:
    """Send log lines to ``stream`` (stderr) in ``fmt``: Vestige's own (and loggers named in ``also``, such
    as ``celery`` in a worker) from ``level`` up, the others from WARNING. Calling it again replaces the
    previous configuration."""
    if fmt not in FORMATS:
        raise ValueError(f"log format {fmt!r} is not one of {', '.join(FORMATS)}")
    numeric = logging.getLevelName(level.upper())
    if not isinstance(numeric, int):
        raise ValueError(f"log level {level!r} is not one of {', '.join(LEVELS)}")
    root = logging.getLogger()
    for handler in [h for h in root.handlers if isinstance(h, _Handler)]:
        root.removeHandler(handler)
    handler = _Handler(stream if stream is not None else sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    handler.addFilter(_Context(numeric, (OWN_PREFIX, *also)))
    root.addHandler(handler)
    root.setLevel(min(numeric, logging.WARNING))
    for name in (OWN_PREFIX, "vestige_web", *also):
        logging.getLogger(name).setLevel(numeric)


def verbosity_level(verbosity: int, configured_level: str) -> str:
    """The level for ``-v`` given ``verbosity`` times: INFO, then DEBUG; none: ``configured_level``."""
    return configured_level if verbosity <= 0 else ("INFO" if verbosity == 1 else "DEBUG")
