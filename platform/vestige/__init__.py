"""Vestige: image provenance forensics.

The public names of the core are re-exported here; everything else is internal.
Plugins import from :mod:`vestige.plugin`.
"""

from vestige.core.errors import (
    BlobCorruptedError,
    BlobMissingError,
    ConfigError,
    ConflictError,
    DatabaseStateError,
    InvalidImageError,
    InvalidInputError,
    NotFoundError,
    PluginError,
    StoreError,
    UnsafeArchiveError,
    VestigeError,
)

__version__ = "0.1.0"

__all__ = [
    "BlobCorruptedError",
    "BlobMissingError",
    "ConfigError",
    "ConflictError",
    "DatabaseStateError",
    "InvalidImageError",
    "InvalidInputError",
    "NotFoundError",
    "PluginError",
    "StoreError",
    "UnsafeArchiveError",
    "VestigeError",
    "__version__",
]
