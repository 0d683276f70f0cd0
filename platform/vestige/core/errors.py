"""Errors a user can cause.

Every error here carries one sentence that says what went wrong and, where it
helps, what to do about it. The CLI prints that sentence and exits non-zero;
the web app renders it as a page or as ``{"ok": false, "error": ...}``.
Anything that is not a :class:`VestigeError` is a bug and keeps its traceback.
"""

from __future__ import annotations


class VestigeError(Exception):
    """Base class of every error a user can cause and fix."""

    #: HTTP status the web app answers with.
    status = 400

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class ConfigError(VestigeError):
    """The configuration file or an environment override is wrong."""


class NotFoundError(VestigeError):
    """A case, image, analysis or artifact that was named does not exist."""

    status = 404


class ConflictError(VestigeError):
    """The action would duplicate or contradict something that exists."""

    status = 409


class InvalidInputError(VestigeError):
    """A file, archive or argument cannot be accepted."""

    status = 422


class InvalidImageError(InvalidInputError):
    """A file is not an image Vestige accepts (wrong type, corrupt, too large)."""


class UnsafeArchiveError(InvalidInputError):
    """An archive is hostile or exceeds the configured limits."""


class StoreError(VestigeError):
    """The evidence store cannot serve a blob as it was written."""

    status = 500


class BlobMissingError(StoreError):
    """A blob the database refers to is absent from the store."""


class BlobCorruptedError(StoreError):
    """A blob's bytes no longer hash to its name."""


class DatabaseStateError(VestigeError):
    """The database is missing, not initialised or at the wrong revision."""

    status = 503


class PluginError(VestigeError):
    """A plugin failed to load or a named detector does not exist."""
