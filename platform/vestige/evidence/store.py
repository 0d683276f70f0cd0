"""The evidence store: bytes named by their SHA-256, verified on every read.

:class:`BlobStore` holds the rules (naming, verification, write-once); a
backend supplies four primitive operations. The local folder backend is the
embedded default; an S3-compatible backend is one more subclass implementing
the same four methods.
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
from abc import ABC, abstractmethod
from pathlib import Path
from typing import TYPE_CHECKING

from vestige.core.errors import BlobCorruptedError, BlobMissingError, ConfigError, StoreError

if TYPE_CHECKING:
    from vestige.core.config import StoreSection

_SHA256 = re.compile(r"^[0-9a-f]{64}$")


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _check_name(sha256: str) -> str:
    if not _SHA256.match(sha256):
        raise StoreError(f"{sha256!r} is not a SHA-256 digest in lower-case hex")
    return sha256


class BlobStore(ABC):
    """Content-addressed, write-once storage with verified reads."""

    def put(self, data: bytes) -> str:
        """Store ``data`` (once) and return its SHA-256."""
        sha256 = sha256_hex(data)
        if not self._exists(sha256):
            self._write(sha256, data)
        return sha256

    def get(self, sha256: str) -> bytes:
        """The bytes named ``sha256``; a missing or altered blob raises instead of being served."""
        data = self._read(_check_name(sha256))
        actual = sha256_hex(data)
        if actual != sha256:
            raise BlobCorruptedError(
                f"blob {sha256[:12]}… in the evidence store is corrupted (its content now hashes to "
                f"{actual[:12]}…); restore it from a backup"
            )
        return data

    def exists(self, sha256: str) -> bool:
        return self._exists(_check_name(sha256))

    def verify(self, sha256: str) -> None:
        """Raise unless the blob is present and intact."""
        self.get(sha256)

    @abstractmethod
    def _exists(self, sha256: str) -> bool: ...

    @abstractmethod
    def _write(self, sha256: str, data: bytes) -> None:
        """Write atomically: readers see either nothing or all of ``data``."""

    @abstractmethod
    def _read(self, sha256: str) -> bytes:
        """Raise :class:`BlobMissingError` when absent."""

    @abstractmethod
    def describe(self) -> str:
        """Where the blobs live, for messages and reports."""


class LocalBlobStore(BlobStore):
    """Blobs as files ``<root>/ab/cd/<sha256>``, written by temp file, fsync and rename."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self._tmp = self.root / "tmp"

    def describe(self) -> str:
        return f"local folder {self.root}"

    def path_for(self, sha256: str) -> Path:
        return self.root / sha256[:2] / sha256[2:4] / sha256

    def _exists(self, sha256: str) -> bool:
        return self.path_for(sha256).is_file()

    def _write(self, sha256: str, data: bytes) -> None:
        target = self.path_for(sha256)
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            self._tmp.mkdir(parents=True, exist_ok=True)
            fd, tmp_name = tempfile.mkstemp(dir=self._tmp, prefix=sha256[:8] + ".")
        except OSError as exc:
            raise StoreError(f"cannot write to the evidence store at {self.root}: {exc.strerror}") from None
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            os.chmod(tmp_name, 0o444)  # evidence is never modified in place
            os.replace(tmp_name, target)
            _fsync_dir(target.parent)
        except OSError as exc:
            Path(tmp_name).unlink(missing_ok=True)
            raise StoreError(f"cannot write to the evidence store at {self.root}: {exc.strerror}") from None

    def _read(self, sha256: str) -> bytes:
        try:
            return self.path_for(sha256).read_bytes()
        except FileNotFoundError:
            raise BlobMissingError(
                f"blob {sha256[:12]}… is missing from the evidence store ({self.describe()}); restore it from a backup"
            ) from None
        except OSError as exc:
            raise StoreError(f"cannot read blob {sha256[:12]}… from the evidence store: {exc.strerror}") from None


def _fsync_dir(path: Path) -> None:
    # The rename is durable only once the directory entry is on disk.
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def open_store(backend: str, path: Path, settings: StoreSection | None = None) -> BlobStore:
    """The store named by configuration (``store.backend``; ``settings`` is the ``[store]`` section)."""
    if backend == "local":
        return LocalBlobStore(path)
    if backend == "s3" and settings is not None:
        from vestige.evidence.s3store import S3BlobStore  # boto3 loads only where it is used

        return S3BlobStore(settings.bucket, endpoint_url=settings.endpoint_url, region=settings.region, prefix=settings.prefix)
    raise ConfigError(f"configuration key store.backend names unknown backend {backend!r}; known: local, s3")
