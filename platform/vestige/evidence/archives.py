"""Finding the files to ingest: paths, folders and zip archives, read safely.

Nothing is ever extracted to disk: zip members are read into memory under
limits. A hostile archive (members escaping the archive root, links,
encryption, more members or bytes than allowed, sizes that lie) is refused as
a whole, before any of its members is ingested.
"""

from __future__ import annotations

import os
import stat
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from vestige.core.errors import InvalidInputError, UnsafeArchiveError

ZIP_MAGIC = (b"PK\x03\x04", b"PK\x05\x06")


@dataclass(frozen=True)
class ArchiveLimits:
    max_members: int = 10_000
    max_member_bytes: int = 100 * 2**20
    max_total_bytes: int = 2 * 2**30


@dataclass(frozen=True)
class Candidate:
    """A file to ingest, or a file already known to be refused (``error`` set)."""

    name: str
    container: str | None = None
    path: Path | None = None
    member: str | None = None
    #: The member's position in the archive's central directory: two members may share a name.
    member_index: int | None = None
    error: str | None = None


def _is_zip(path: Path) -> bool:
    with path.open("rb") as fh:
        return fh.read(4) in ZIP_MAGIC


def _check_member_name(name: str) -> str | None:
    if "\x00" in name:
        return "a member name contains a NUL byte"
    normalised = name.replace("\\", "/")
    if normalised.startswith("/") or (len(normalised) > 1 and normalised[1] == ":"):
        return f"member {name!r} has an absolute path"
    if ".." in PurePosixPath(normalised).parts:
        return f"member {name!r} escapes the archive with '..'"
    return None


def scan_zip(path: Path, display: str, limits: ArchiveLimits) -> list[tuple[int, zipfile.ZipInfo]]:
    """The archive's file members with their positions, after every structural check; raises for a hostile archive.

    Members are named by position, not by name: an archive may hold two
    members of the same name, and ``zipfile`` opens only the last by name.
    """
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as exc:
        raise UnsafeArchiveError(f"{display} is not a readable zip archive: {exc}") from None
    with archive:
        members = [(index, info) for index, info in enumerate(archive.infolist()) if not info.is_dir()]
        if len(members) > limits.max_members:
            raise UnsafeArchiveError(
                f"{display} has {len(members)} members, more than the limit of {limits.max_members} (ingest.archive_max_members)"
            )
        total = 0
        for _, info in members:
            problem = _check_member_name(info.filename)
            if problem is None and stat.S_ISLNK(info.external_attr >> 16):
                problem = f"member {info.filename!r} is a symbolic link"
            if problem is None and info.flag_bits & 0x1:
                problem = f"member {info.filename!r} is encrypted"
            if problem is None and info.file_size > limits.max_member_bytes:
                problem = (
                    f"member {info.filename!r} declares {info.file_size} bytes, more than the limit of "
                    f"{limits.max_member_bytes} (ingest.archive_max_member_bytes)"
                )
            if problem:
                raise UnsafeArchiveError(f"{display} refused: {problem}")
            total += info.file_size
        if total > limits.max_total_bytes:
            raise UnsafeArchiveError(
                f"{display} refused: it expands to {total} bytes, more than the limit of "
                f"{limits.max_total_bytes} (ingest.archive_max_total_bytes)"
            )
        return members


def read_member(path: Path, member: str, index: int, limits: ArchiveLimits) -> bytes:
    """Read the member at ``index`` (named ``member``), never more than the member limit even if its header lies."""
    with zipfile.ZipFile(path) as archive:
        infos = archive.infolist()
        if index >= len(infos) or infos[index].filename != member:
            raise UnsafeArchiveError(f"member {member!r} is no longer at position {index}; the archive changed while it was read")
        with archive.open(infos[index]) as fh:
            data = fh.read(limits.max_member_bytes + 1)
    if len(data) > limits.max_member_bytes:
        raise UnsafeArchiveError(f"member {member!r} expands beyond its declared size; the archive is refused")
    return data


def check_paths(paths: list[Path]) -> None:
    """Fail before anything is written when an argument cannot be read."""
    for path in paths:
        if not os.path.lexists(path):
            raise InvalidInputError(f"{path} does not exist")
        if not path.exists():
            raise InvalidInputError(f"{path} is a broken symbolic link")
        if not os.access(path, os.R_OK):
            raise InvalidInputError(f"{path} cannot be read: permission denied")
        if not (path.is_file() or path.is_dir()):
            raise InvalidInputError(f"{path} is not a regular file or folder")


def expand(paths: list[Path], limits: ArchiveLimits) -> Iterator[Candidate]:
    """Every file to consider, in a stable order: files, folders (recursive, sorted), zip members."""
    for path in paths:
        if path.is_dir():
            for root, dirs, files in os.walk(path, followlinks=False):
                dirs.sort()
                for name in sorted(files):
                    yield from _file_candidates(Path(root) / name, limits)
        else:
            yield from _file_candidates(path, limits)


def _file_candidates(path: Path, limits: ArchiveLimits) -> Iterator[Candidate]:
    display = str(path)
    if path.is_symlink() or not path.is_file():
        yield Candidate(display, path=path, error=f"{display} is not a regular file (links are not followed)")
        return
    try:
        is_zip = _is_zip(path)
    except OSError as exc:
        yield Candidate(display, path=path, error=f"{display} cannot be read: {exc.strerror}")
        return
    if not is_zip:
        yield Candidate(display, path=path)
        return
    try:
        members = scan_zip(path, display, limits)
    except UnsafeArchiveError as exc:
        yield Candidate(display, path=path, error=str(exc))
        return
    for index, info in members:
        yield Candidate(info.filename, container=display, path=path, member=info.filename, member_index=index)
