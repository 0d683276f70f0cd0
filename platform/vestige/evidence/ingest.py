"""Taking evidence into a case.

For each file: read it under the size limit, identify it by content, decode it
fully under the pixel limit, hash it (SHA-256 and perceptual hashes), then
store the bytes once, record the image, its occurrence, what the file itself
says about its history (an *estimated* JPEG quality) and the near-duplicates
it has among all cases (*observed* links), and append a custody event.

A file that fails any check is refused with its reason and leaves no trace.
Files are written to the database in transactions of ``ingest.batch_size``;
blobs are written before their transaction commits, so a crash can leave an
unreferenced blob in the store (harmless: content-addressed and re-used), but
never a record without its blob.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.orm import Session

from vestige.core.errors import InvalidInputError, VestigeError
from vestige.core.logs import log_context
from vestige.core.names import original_bytes, safe_text
from vestige.core.workspace import Workspace
from vestige.db.models import Case, Image, ImageOccurrence, Perturbation
from vestige.db.rows import lock_case, record_blob
from vestige.evidence.archives import ArchiveLimits, Candidate, check_paths, expand, read_member
from vestige.evidence.cases import require_open
from vestige.evidence.custody import record_event
from vestige.evidence.imagefile import ImageFacts, ImageLimits, inspect_image
from vestige.evidence.neardup import NearDuplicateIndex

log = logging.getLogger(__name__)

#: At most this many observed near-duplicate links are recorded per image.
MAX_NEAR_DUPLICATE_LINKS = 20

Progress = Callable[[int, int, str], None]


@dataclass
class IngestSummary:
    ingested: list[dict] = field(default_factory=list)
    duplicates: list[dict] = field(default_factory=list)
    rejected: list[dict] = field(default_factory=list)
    near_duplicate_links: int = 0

    def to_dict(self) -> dict:
        return {
            "ingested": self.ingested,
            "duplicates": self.duplicates,
            "rejected": self.rejected,
            "near_duplicate_links": self.near_duplicate_links,
        }

    def sentence(self) -> str:
        return (
            f"ingested {len(self.ingested)}, duplicates {len(self.duplicates)}, rejected {len(self.rejected)}, "
            f"near-duplicate links {self.near_duplicate_links}"
        )


@dataclass(frozen=True)
class Acquisition:
    """Who acquired the files, from where, and when."""

    source: str
    actor: str
    at: dt.datetime = field(default_factory=lambda: dt.datetime.now(dt.timezone.utc))


def load_index(session: Session) -> NearDuplicateIndex:
    """The near-duplicate index over every image's pHash, in all cases."""
    rows = session.execute(sa.select(Image.id, Image.phash).execution_options(yield_per=100_000))
    return NearDuplicateIndex.from_rows(rows)


class Ingester:
    """Ingests files into one case; use one instance per batch of arguments."""

    def __init__(self, workspace: Workspace, session: Session, case: Case, acquisition: Acquisition) -> None:
        require_open(case)
        cfg = workspace.config.ingest
        self.workspace = workspace
        self.session = session
        self.case = case
        # Who and from where may come from a form: stored with control and bidi characters escaped.
        self.acquisition = dataclasses.replace(acquisition, source=safe_text(acquisition.source),
                                               actor=safe_text(acquisition.actor, 200))
        self.image_limits = ImageLimits.from_config(cfg)
        self.archive_limits = ArchiveLimits(
            max_members=cfg.archive_max_members,
            max_member_bytes=min(cfg.archive_max_member_bytes, cfg.max_file_bytes),
            max_total_bytes=cfg.archive_max_total_bytes,
        )
        self.radius = cfg.near_duplicate_radius
        self.batch_size = cfg.batch_size
        self.index = load_index(session)
        self.summary = IngestSummary()

    def ingest_paths(self, paths: Sequence[Path], progress: Progress | None = None) -> IngestSummary:
        """Ingest files, folders (recursively) and zip archives."""
        paths = [Path(p) for p in paths]
        check_paths(paths)
        return self.ingest_candidates(list(expand(paths, self.archive_limits)), progress)

    def ingest_candidates(self, candidates: Sequence[Candidate], progress: Progress | None = None) -> IngestSummary:
        """Ingest what :func:`vestige.evidence.archives.expand` found (a caller may rename candidates first, as the web
        upload does with uploaded names), committing every ``ingest.batch_size`` files."""
        with log_context(case=self.case.reference):
            log.info("ingesting %d file(s) by %s", len(candidates), self.acquisition.actor)
            for done, candidate in enumerate(candidates, start=1):
                self._ingest_candidate(candidate)
                if done % self.batch_size == 0:
                    self.session.commit()
                if progress:
                    progress(done, len(candidates), candidate.name)
            self.session.commit()
            log.info("ingested %d, %d duplicate(s), %d refused, %d near-duplicate link(s)", len(self.summary.ingested),
                     len(self.summary.duplicates), len(self.summary.rejected), self.summary.near_duplicate_links)
        return self.summary

    def _ingest_candidate(self, candidate: Candidate) -> None:
        label = safe_text(f"{candidate.container}:{candidate.name}" if candidate.container else candidate.name)
        if candidate.error:
            log.info("refused %s: %s", label, candidate.error)
            self.summary.rejected.append({"file": label, "reason": candidate.error})
            return
        try:
            data = self._read(candidate, label)
            facts = inspect_image(data, name=label, limits=self.image_limits)
            self.add_image(data, facts, filename=candidate.name, container=candidate.container,
                           member_index=candidate.member_index)
        except VestigeError as exc:
            log.info("refused %s: %s", label, exc)
            self.summary.rejected.append({"file": label, "reason": str(exc)})

    def _read(self, candidate: Candidate, label: str) -> bytes:
        assert candidate.path is not None
        if candidate.member is not None:
            assert candidate.member_index is not None
            return read_member(candidate.path, candidate.member, candidate.member_index, self.archive_limits)
        try:
            size = candidate.path.stat().st_size
            if size > self.image_limits.max_bytes:
                raise InvalidInputError(
                    f"{label} is {size} bytes, more than the limit of {self.image_limits.max_bytes} (ingest.max_file_bytes)"
                )
            return candidate.path.read_bytes()
        except OSError as exc:
            raise InvalidInputError(f"{label} cannot be read: {exc.strerror}") from None

    def add_image(
        self,
        data: bytes,
        facts: ImageFacts,
        *,
        filename: str,
        container: str | None = None,
        member_index: int | None = None,
        origin: str = "evidence",
    ) -> Image:
        """Record one validated image (or one more occurrence of an existing one) in the case."""
        session, acq = self.session, self.acquisition
        # Names are stored and shown with control and bidi characters escaped; their own bytes are kept beside them.
        raw_name, raw_container = original_bytes(filename), original_bytes(container) if container else None
        filename, container = safe_text(filename), safe_text(container) if container is not None else None
        originals = {k: v.hex() for k, v in (("file_bytes_hex", raw_name), ("container_bytes_hex", raw_container)) if v}
        lock_case(session, self.case)  # a concurrent ingest of the same file waits here, then sees this one's image
        existing = session.execute(
            sa.select(Image).where(Image.case_id == self.case.id, Image.blob_sha256 == facts.sha256)
        ).scalar_one_or_none()
        occurrence = ImageOccurrence(
            original_filename=filename, container=container, member_index=member_index, source=acq.source,
            acquired_by=acq.actor, acquired_at=acq.at, original_filename_bytes=raw_name, container_bytes=raw_container,
        )
        if existing is not None:
            existing.occurrences.append(occurrence)
            session.flush()
            record_event(
                session, self.case, actor=acq.actor, action="image.duplicate",
                details={"image_id": existing.id, "sha256": facts.sha256, "file": filename, "container": container,
                         **_member(member_index), **originals},
            )
            self.summary.duplicates.append({"file": filename, "image_id": existing.id, "sha256": facts.sha256})
            return existing

        self.workspace.store.put(data)
        record_blob(session, facts.sha256, facts.size, facts.media_type)
        image = Image(
            case_id=self.case.id, blob_sha256=facts.sha256, origin=origin, original_filename=filename,
            source=acq.source, acquired_by=acq.actor, acquired_at=acq.at, media_type=facts.media_type,
            format=facts.format, mode=facts.mode, width=facts.width, height=facts.height, size=facts.size,
            frames=facts.frames, metadata_summary=facts.metadata, phash=facts.phash, dhash=facts.dhash,
            whash=facts.whash, colorhash=facts.colorhash,
        )
        image.occurrences.append(occurrence)
        session.add(image)
        session.flush()

        if facts.jpeg_quality is not None:
            q = facts.jpeg_quality
            session.add(Perturbation(
                image_id=image.id, basis="estimated",
                operations=[{"op": "jpeg", "params": {"quality": q.quality}, "exact_tables": q.exact, "table_error": round(q.error, 4)}],
            ))
        matches = self.index.query(facts.phash, self.radius)[:MAX_NEAR_DUPLICATE_LINKS]
        for other_id, distance in matches:
            session.add(Perturbation(
                image_id=image.id, parent_id=other_id, basis="observed", operations=[], distance=distance, hash_kind="phash",
            ))
        self.summary.near_duplicate_links += len(matches)
        self.index.add(image.id, facts.phash)
        record_event(
            session, self.case, actor=acq.actor, action="image.ingested",
            details={"image_id": image.id, "sha256": facts.sha256, "file": filename, "container": container,
                     **_member(member_index), **originals, "source": acq.source, "size": facts.size, "origin": origin},
        )
        self.summary.ingested.append({"file": filename, "image_id": image.id, "sha256": facts.sha256})
        return image


def _member(index: int | None) -> dict:
    # Only archive members carry a position, so events of plain files keep their old shape.
    return {} if index is None else {"member_index": index}
