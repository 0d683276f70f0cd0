"""SQLAlchemy 2.0 models of Vestige's whole domain (see docs/design.md).

Some tables are filled by later features (analyses, verdicts, reports, users,
tokens); they are declared here from the start so that those features build on
the schema instead of around it. Every change goes through an Alembic
migration; ``tests/test_migrations.py`` fails when models and migrations drift.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship
from sqlalchemy.types import TypeDecorator

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

ROLES = ("admin", "examiner", "viewer")
CASE_ROLES = ("lead", "examiner", "viewer")
CASE_STATUSES = ("open", "closed")
PERTURBATION_BASES = ("applied", "observed", "estimated")
ANALYSIS_STATUSES = ("queued", "running", "done", "failed", "cancelled")
TASK_STATUSES = ("queued", "running", "done", "failed")
LABELS = ("real", "synthetic", "unknown")
REPORT_FORMATS = ("json", "html", "pdf", "bundle")
ARTIFACT_ORIGINS = ("shipped", "trained", "imported")


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


class UTCDateTime(TypeDecorator[dt.datetime]):
    """A timestamp that is always timezone-aware UTC, on SQLite as on PostgreSQL."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect: Any) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.astimezone(dt.timezone.utc)

    def process_result_value(self, value: dt.datetime | None, dialect: Any) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:  # SQLite drops the zone; we only ever store UTC
            return value.replace(tzinfo=dt.timezone.utc)
        return value.astimezone(dt.timezone.utc)


def _choice(name: str, values: tuple[str, ...]) -> sa.Enum:
    # Strings with a CHECK constraint: portable, readable in raw SQL, and new
    # values need only a migration that rewrites the constraint.
    return sa.Enum(*values, name=name, native_enum=False, create_constraint=True, length=16)


class Base(DeclarativeBase):
    metadata = sa.MetaData(naming_convention=NAMING)
    type_annotation_map = {dt.datetime: UTCDateTime(), dict[str, Any]: sa.JSON(), list[Any]: sa.JSON()}


class User(Base):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(sa.String(64), unique=True)
    #: A salted hash; ``None`` for an account that cannot log in.
    password_hash: Mapped[str | None] = mapped_column(sa.String(255))
    role: Mapped[str] = mapped_column(_choice("user_role", ROLES))
    is_active: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)

    memberships: Mapped[list[CaseMember]] = relationship(back_populates="user", cascade="all, delete-orphan")


class WebSession(Base):
    """A logged-in browser session; the cookie holds a random id whose SHA-256 is kept here, so it can be revoked."""

    __tablename__ = "web_sessions"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(sa.ForeignKey("users.id", ondelete="CASCADE"), index=True)
    sid_hash: Mapped[str] = mapped_column(sa.String(64), unique=True)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[dt.datetime]
    #: Set by logout, a password change or the user's removal; a revoked session never works again.
    revoked_at: Mapped[dt.datetime | None]


class WorkerHeartbeat(Base):
    """A running worker, refreshed every few seconds: a stale row is a lost worker whose tasks are re-queued."""

    __tablename__ = "worker_heartbeats"

    nodename: Mapped[str] = mapped_column(sa.String(255), primary_key=True)
    pid: Mapped[int]
    queues: Mapped[list[Any]] = mapped_column(default=list)
    beat_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class ApiToken(Base):
    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(sa.ForeignKey("users.id", ondelete="CASCADE"), index=True)
    #: SHA-256 of the token; the token itself is shown once and never stored.
    token_hash: Mapped[str] = mapped_column(sa.String(64), unique=True)
    name: Mapped[str] = mapped_column(sa.String(200), default="")
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    last_used_at: Mapped[dt.datetime | None]
    revoked_at: Mapped[dt.datetime | None]


class Case(Base):
    __tablename__ = "cases"

    id: Mapped[int] = mapped_column(primary_key=True)
    reference: Mapped[str] = mapped_column(sa.String(64), unique=True)
    title: Mapped[str] = mapped_column(sa.String(500))
    status: Mapped[str] = mapped_column(_choice("case_status", CASE_STATUSES), default="open")
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    created_by: Mapped[str] = mapped_column(sa.String(200))
    #: Hash and length of the custody chain's last event. Deleting events from
    #: the end of the chain leaves it self-consistent; these catch that.
    custody_head: Mapped[str | None] = mapped_column(sa.String(64))
    custody_count: Mapped[int] = mapped_column(default=0)

    members: Mapped[list[CaseMember]] = relationship(back_populates="case", cascade="all, delete-orphan")
    images: Mapped[list[Image]] = relationship(back_populates="case", order_by="Image.id")


class CaseMember(Base):
    __tablename__ = "case_members"

    case_id: Mapped[int] = mapped_column(sa.ForeignKey("cases.id", ondelete="CASCADE"), primary_key=True)
    user_id: Mapped[int] = mapped_column(sa.ForeignKey("users.id", ondelete="CASCADE"), primary_key=True)
    role: Mapped[str] = mapped_column(_choice("case_role", CASE_ROLES))
    added_at: Mapped[dt.datetime] = mapped_column(default=utcnow)

    case: Mapped[Case] = relationship(back_populates="members")
    user: Mapped[User] = relationship(back_populates="memberships")


class Blob(Base):
    """Bytes in the evidence store, named by their SHA-256."""

    __tablename__ = "blobs"

    sha256: Mapped[str] = mapped_column(sa.String(64), primary_key=True)
    size: Mapped[int] = mapped_column(sa.BigInteger)
    media_type: Mapped[str] = mapped_column(sa.String(100))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class Image(Base):
    """An evidence item: one blob in one case, with what was learnt from it."""

    __tablename__ = "images"
    __table_args__ = (sa.UniqueConstraint("case_id", "blob_sha256", name="uq_images_case_blob"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    case_id: Mapped[int] = mapped_column(sa.ForeignKey("cases.id", ondelete="RESTRICT"), index=True)
    blob_sha256: Mapped[str] = mapped_column(sa.ForeignKey("blobs.sha256", ondelete="RESTRICT"), index=True)
    #: ``evidence`` for acquired files, ``derived`` for images the lab made
    #: (robustness probes, ``vestige perturb``); see :class:`Perturbation`.
    origin: Mapped[str] = mapped_column(_choice("image_origin", ("evidence", "derived")), default="evidence")
    original_filename: Mapped[str] = mapped_column(sa.String(1024))
    source: Mapped[str] = mapped_column(sa.String(1000), default="")
    acquired_by: Mapped[str] = mapped_column(sa.String(200))
    acquired_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    media_type: Mapped[str] = mapped_column(sa.String(100))
    format: Mapped[str] = mapped_column(sa.String(16))
    mode: Mapped[str] = mapped_column(sa.String(16))
    width: Mapped[int]
    height: Mapped[int]
    size: Mapped[int] = mapped_column(sa.BigInteger)
    frames: Mapped[int] = mapped_column(default=1)
    #: EXIF / XMP / text-chunk summary, JSON-safe.
    metadata_summary: Mapped[dict[str, Any]] = mapped_column("metadata", default=dict)
    # Perceptual hashes as the signed view of their 64-bit patterns.
    phash: Mapped[int] = mapped_column(sa.BigInteger, index=True)
    dhash: Mapped[int] = mapped_column(sa.BigInteger)
    whash: Mapped[int] = mapped_column(sa.BigInteger)
    colorhash: Mapped[int] = mapped_column(sa.BigInteger)

    case: Mapped[Case] = relationship(back_populates="images")
    blob: Mapped[Blob] = relationship()
    occurrences: Mapped[list[ImageOccurrence]] = relationship(
        back_populates="image", order_by="ImageOccurrence.id", cascade="all, delete-orphan"
    )


class ImageOccurrence(Base):
    """One time a file with this content was acquired for the case.

    An exact duplicate is not stored again: it becomes one more occurrence of
    the existing image, so its name, source and acquirer are kept.
    """

    __tablename__ = "image_occurrences"

    id: Mapped[int] = mapped_column(primary_key=True)
    image_id: Mapped[int] = mapped_column(sa.ForeignKey("images.id", ondelete="CASCADE"), index=True)
    original_filename: Mapped[str] = mapped_column(sa.String(1024))
    #: The archive the file came out of, if any.
    container: Mapped[str | None] = mapped_column(sa.String(1024))
    #: The member's position in the archive's central directory (names may repeat within one archive).
    member_index: Mapped[int | None] = mapped_column()
    #: The name's own bytes, when ``original_filename`` had to escape control or bidi characters in it.
    original_filename_bytes: Mapped[bytes | None] = mapped_column(sa.LargeBinary)
    #: The same for the archive's name.
    container_bytes: Mapped[bytes | None] = mapped_column(sa.LargeBinary)
    source: Mapped[str] = mapped_column(sa.String(1000), default="")
    acquired_by: Mapped[str] = mapped_column(sa.String(200))
    acquired_at: Mapped[dt.datetime] = mapped_column(default=utcnow)

    image: Mapped[Image] = relationship(back_populates="occurrences")


class Perturbation(Base):
    """One step of an image's perturbation history.

    ``operations`` is the ordered chain, e.g. ``[{"op": "jpeg", "params":
    {"quality": 70}}, {"op": "resize", "params": {"scale": 0.5}}]``, and
    ``basis`` says how it is known: *applied* (the lab made ``image`` from
    ``parent``), *observed* (``image`` is a near-duplicate of ``parent`` at
    Hamming ``distance``) or *estimated* (read from the file itself, e.g. a
    JPEG quality from its quantisation tables; no parent).
    """

    __tablename__ = "perturbations"

    id: Mapped[int] = mapped_column(primary_key=True)
    image_id: Mapped[int] = mapped_column(sa.ForeignKey("images.id", ondelete="CASCADE"), index=True)
    parent_id: Mapped[int | None] = mapped_column(sa.ForeignKey("images.id", ondelete="SET NULL"), index=True)
    basis: Mapped[str] = mapped_column(_choice("perturbation_basis", PERTURBATION_BASES))
    operations: Mapped[list[Any]] = mapped_column(default=list)
    distance: Mapped[int | None]
    hash_kind: Mapped[str | None] = mapped_column(sa.String(16))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class CustodyEvent(Base):
    """An append-only, hash-chained record of something done to a case."""

    __tablename__ = "custody_events"
    __table_args__ = (sa.UniqueConstraint("case_id", "seq", name="uq_custody_events_case_seq"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    case_id: Mapped[int] = mapped_column(sa.ForeignKey("cases.id", ondelete="RESTRICT"), index=True)
    seq: Mapped[int]
    #: ISO 8601 UTC with microseconds, kept as text so the hashed bytes are the stored bytes.
    at: Mapped[str] = mapped_column(sa.String(32))
    actor: Mapped[str] = mapped_column(sa.String(200))
    action: Mapped[str] = mapped_column(sa.String(64))
    #: Canonical JSON (sorted keys, no spaces), hashed as stored.
    details: Mapped[str] = mapped_column(sa.Text)
    prev_hash: Mapped[str] = mapped_column(sa.String(64))
    hash: Mapped[str] = mapped_column(sa.String(64))


class ModelArtifact(Base):
    """A detector's trained weights and what is known about them."""

    __tablename__ = "model_artifacts"

    id: Mapped[int] = mapped_column(primary_key=True)
    detector: Mapped[str] = mapped_column(sa.String(64), index=True)
    version: Mapped[str] = mapped_column(sa.String(32))
    sha256: Mapped[str] = mapped_column(sa.String(64), unique=True)
    filename: Mapped[str] = mapped_column(sa.String(255))
    size: Mapped[int] = mapped_column(sa.BigInteger)
    origin: Mapped[str] = mapped_column(_choice("artifact_origin", ARTIFACT_ORIGINS))
    #: SHA-256 of the manifest of the dataset it was trained on.
    dataset_sha256: Mapped[str | None] = mapped_column(sa.String(64))
    metrics: Mapped[dict[str, Any]] = mapped_column(default=dict)
    calibration: Mapped[dict[str, Any]] = mapped_column(default=dict)
    info: Mapped[dict[str, Any]] = mapped_column(default=dict)
    is_default: Mapped[bool] = mapped_column(default=False)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class Analysis(Base):
    """A request to run detectors on the images of a case."""

    __tablename__ = "analyses"

    id: Mapped[int] = mapped_column(primary_key=True)
    case_id: Mapped[int] = mapped_column(sa.ForeignKey("cases.id", ondelete="RESTRICT"), index=True)
    status: Mapped[str] = mapped_column(_choice("analysis_status", ANALYSIS_STATUSES), default="queued")
    detectors: Mapped[list[Any]] = mapped_column(default=list)
    options: Mapped[dict[str, Any]] = mapped_column(default=dict)
    progress_done: Mapped[int] = mapped_column(default=0)
    progress_total: Mapped[int] = mapped_column(default=0)
    requested_by: Mapped[str] = mapped_column(sa.String(200))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    started_at: Mapped[dt.datetime | None]
    finished_at: Mapped[dt.datetime | None]
    error: Mapped[str | None] = mapped_column(sa.Text)
    #: The merged per-image verdicts, written when the analysis completes.
    summary: Mapped[dict[str, Any]] = mapped_column(default=dict)


class AnalysisTask(Base):
    """One unit of work: a detector over a chunk of an analysis's images."""

    __tablename__ = "analysis_tasks"
    __table_args__ = (sa.UniqueConstraint("analysis_id", "detector", "chunk", name="uq_analysis_tasks_unit"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    analysis_id: Mapped[int] = mapped_column(sa.ForeignKey("analyses.id", ondelete="CASCADE"), index=True)
    detector: Mapped[str] = mapped_column(sa.String(64))
    chunk: Mapped[int]
    image_ids: Mapped[list[Any]] = mapped_column(default=list)
    queue: Mapped[str] = mapped_column(sa.String(32))
    status: Mapped[str] = mapped_column(_choice("task_status", TASK_STATUSES), default="queued")
    worker: Mapped[str | None] = mapped_column(sa.String(255))
    attempts: Mapped[int] = mapped_column(default=0)
    started_at: Mapped[dt.datetime | None]
    finished_at: Mapped[dt.datetime | None]
    error: Mapped[str | None] = mapped_column(sa.Text)


class Verdict(Base):
    """One detector's finding on one image within one analysis."""

    __tablename__ = "verdicts"
    __table_args__ = (sa.UniqueConstraint("analysis_id", "image_id", "detector", name="uq_verdicts_unit"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    analysis_id: Mapped[int] = mapped_column(sa.ForeignKey("analyses.id", ondelete="CASCADE"), index=True)
    image_id: Mapped[int] = mapped_column(sa.ForeignKey("images.id", ondelete="RESTRICT"), index=True)
    detector: Mapped[str] = mapped_column(sa.String(64))
    detector_version: Mapped[str] = mapped_column(sa.String(32))
    model_sha256: Mapped[str | None] = mapped_column(sa.String(64))
    label: Mapped[str] = mapped_column(_choice("verdict_label", LABELS))
    source: Mapped[str | None] = mapped_column(sa.String(128))
    scores: Mapped[dict[str, Any]] = mapped_column(default=dict)
    confidence: Mapped[float | None]
    evidence: Mapped[dict[str, Any]] = mapped_column(default=dict)
    #: ``[{"name", "caption", "media_type", "sha256"}]``; the bytes are blobs.
    pictures: Mapped[list[Any]] = mapped_column(default=list)
    embedding: Mapped[bytes | None] = mapped_column(sa.LargeBinary)
    device: Mapped[str] = mapped_column(sa.String(32), default="cpu")
    precision: Mapped[str] = mapped_column(sa.String(16), default="fp32")
    runtime_ms: Mapped[float | None]
    error: Mapped[str | None] = mapped_column(sa.Text)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class Report(Base):
    """A rendered export of a case, stored as a blob and hashed."""

    __tablename__ = "reports"

    id: Mapped[int] = mapped_column(primary_key=True)
    case_id: Mapped[int] = mapped_column(sa.ForeignKey("cases.id", ondelete="RESTRICT"), index=True)
    analysis_id: Mapped[int | None] = mapped_column(sa.ForeignKey("analyses.id", ondelete="SET NULL"))
    format: Mapped[str] = mapped_column(_choice("report_format", REPORT_FORMATS))
    blob_sha256: Mapped[str] = mapped_column(sa.ForeignKey("blobs.sha256", ondelete="RESTRICT"))
    size: Mapped[int] = mapped_column(sa.BigInteger)
    signature: Mapped[str | None] = mapped_column(sa.Text)
    created_by: Mapped[str] = mapped_column(sa.String(200))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
