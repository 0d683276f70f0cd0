"""The model weights registry: every trained detector's artifacts, hashed, stored, verified on load.

An artifact is one file (see :mod:`vestige.plugin.training`: safetensors with a
one-key Vestige header). Its bytes live in the content-addressed evidence
store, named by their SHA-256, and a :class:`~vestige.db.models.ModelArtifact`
row says what it is: detector, version, the dataset manifest it was trained
on, validation metrics, calibration, where it came from (*shipped* inside a
plugin, *trained* here, *imported* from a file) and whether it is the lab's
default for its detector. Every load re-hashes the bytes, so a modified
artifact is refused, never run.

Which artifact a detector runs with, in order: the one a command or an
analysis names (an analysis pins its models when it is requested, so all its
verdicts come from the same weights), else the lab's default, else the
artifact shipped in the plugin. :func:`attach` does that choice.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from vestige.core.errors import ConflictError, InvalidInputError, NotFoundError
from vestige.db.models import ModelArtifact
from vestige.evidence.store import BlobStore
from vestige.plugin import Detector
from vestige.plugin.training import (
    ArtifactFile,
    NoModelError,
    TrainableDetector,
    TrainedModel,
    no_model_message,
    unpack_artifact,
)

#: Largest artifact file ``vestige models import`` accepts.
MAX_ARTIFACT_BYTES = 2 * 1024**3


def artifact_dict(row: ModelArtifact) -> dict[str, Any]:
    return {
        "id": row.id, "detector": row.detector, "version": row.version, "sha256": row.sha256,
        "filename": row.filename, "size": row.size, "origin": row.origin, "default": row.is_default,
        "dataset_sha256": row.dataset_sha256, "metrics": row.metrics, "calibration": row.calibration,
        "info": row.info, "created_at": row.created_at.isoformat(),
    }


class Registry:
    """The registry of one workspace: its database session and its store."""

    def __init__(self, session: Session, store: BlobStore) -> None:
        self.session = session
        self.store = store

    # -- reading -----------------------------------------------------------------

    def list(self, detector: str | None = None) -> list[ModelArtifact]:
        query = sa.select(ModelArtifact).order_by(ModelArtifact.detector, ModelArtifact.id)
        if detector:
            query = query.where(ModelArtifact.detector == detector)
        return list(self.session.scalars(query))

    def get(self, ref: str | int) -> ModelArtifact:
        """An artifact by id, full SHA-256 or a unique SHA-256 prefix of at least 8 characters."""
        text = str(ref).strip().lower()
        row: ModelArtifact | None = None
        if text.isdigit() and len(text) < 8:
            row = self.session.get(ModelArtifact, int(text))
        elif len(text) >= 8 and all(c in "0123456789abcdef" for c in text):
            rows = list(self.session.scalars(sa.select(ModelArtifact).where(ModelArtifact.sha256.startswith(text)).limit(2)))
            if len(rows) > 1:
                raise InvalidInputError(f"model artifact prefix {text} is ambiguous; give more of its SHA-256")
            row = rows[0] if rows else None
        if row is None:
            raise NotFoundError(f"no model artifact {ref} in the registry; `vestige models list` shows them")
        return row

    def default_for(self, detector: str) -> ModelArtifact | None:
        return self.session.scalars(
            sa.select(ModelArtifact).where(ModelArtifact.detector == detector, ModelArtifact.is_default.is_(True))
        ).first()

    def read(self, row: ModelArtifact) -> ArtifactFile:
        """The artifact's bytes, verified against its recorded SHA-256."""
        data = self.store.get(row.sha256)  # the store re-hashes and refuses altered bytes
        if hashlib.sha256(data).hexdigest() != row.sha256:  # pragma: no cover - the store already checked
            raise InvalidInputError(f"model artifact {row.sha256[:12]}… does not match its hash")
        return ArtifactFile.from_bytes(data, origin=row.origin, name=f"model artifact {row.sha256[:12]}")

    # -- writing -----------------------------------------------------------------

    def add(self, data: bytes, *, origin: str, filename: str | None = None, dataset_sha256: str | None = None,
            metrics: Mapping[str, Any] | None = None, calibration: Mapping[str, Any] | None = None,
            info: Mapping[str, Any] | None = None, make_default: bool = False) -> ModelArtifact:
        """Store ``data`` and record it; the same bytes twice give the existing record."""
        header = unpack_artifact(data, name=filename or "artifact")
        sha256 = hashlib.sha256(data).hexdigest()
        existing = self.session.scalars(sa.select(ModelArtifact).where(ModelArtifact.sha256 == sha256)).first()
        if existing is not None:
            if make_default:
                self.set_default(existing)
            return existing
        self.store.put(data)
        row = ModelArtifact(
            detector=header["detector"], version=header["version"], sha256=sha256,
            filename=filename or f"{header['detector']}-{sha256[:8]}.safetensors", size=len(data), origin=origin,
            dataset_sha256=dataset_sha256, metrics=dict(metrics or {}), calibration=dict(calibration or {}),
            info={**dict(header.get("info", {})), **dict(info or {})},
        )
        self.session.add(row)
        self.session.flush()
        if make_default:
            self.set_default(row)
        return row

    def register_trained(self, detector: Detector, model: TrainedModel, *, dataset_sha256: str | None,
                         info: Mapping[str, Any] | None = None, make_default: bool = False) -> ModelArtifact:
        header = unpack_artifact(model.data)
        if header["detector"] != detector.name:
            raise InvalidInputError(f"detector {detector.name} produced an artifact for {header['detector']!r}")
        return self.add(model.data, origin="trained", dataset_sha256=dataset_sha256, metrics=model.metrics,
                        calibration=model.calibration, info=info, make_default=make_default)

    def import_file(self, path: Path, *, make_default: bool = False,
                    known_detectors: Iterable[str] | None = None) -> ModelArtifact:
        """Import an artifact file (as ``vestige models export`` writes it)."""
        try:
            size = path.stat().st_size
            if size > MAX_ARTIFACT_BYTES:
                raise InvalidInputError(f"{path} is larger than the {MAX_ARTIFACT_BYTES} bytes a model artifact may have")
            data = path.read_bytes()
        except OSError as exc:
            raise InvalidInputError(f"cannot read {path}: {exc.strerror}") from None
        header = unpack_artifact(data, name=str(path))
        if known_detectors is not None and header["detector"] not in set(known_detectors):
            raise InvalidInputError(f"{path} is an artifact for detector {header['detector']!r}, which is not installed")
        return self.add(data, origin="imported", filename=path.name, make_default=make_default,
                        info={"imported_from": path.name, "imported_at": dt.datetime.now(dt.UTC).isoformat()})

    def export(self, row: ModelArtifact, path: Path) -> Path:
        """Write the verified artifact to ``path`` (a file, or a folder to put it in); never overwrite."""
        artifact = self.read(row)
        if path.is_dir():
            path = path / row.filename
        if path.exists():
            raise ConflictError(f"{path} exists; choose another name")
        partial = path.with_name(path.name + ".partial")
        partial.write_bytes(artifact.data)
        partial.replace(path)
        return path

    def set_default(self, row: ModelArtifact) -> None:
        self.session.execute(
            sa.update(ModelArtifact).where(ModelArtifact.detector == row.detector, ModelArtifact.id != row.id)
            .values(is_default=False).execution_options(synchronize_session="fetch")
        )
        row.is_default = True
        self.session.flush()

    def clear_default(self, detector: str) -> None:
        self.session.execute(
            sa.update(ModelArtifact).where(ModelArtifact.detector == detector)
            .values(is_default=False).execution_options(synchronize_session="fetch")
        )
        self.session.flush()

    def sync_shipped(self, detectors: Iterable[Detector]) -> list[ModelArtifact]:
        """Record the artifacts the installed plugins ship (so they are listed and can be exported)."""
        rows = []
        for detector in detectors:
            if isinstance(detector, TrainableDetector):
                shipped = detector.shipped_artifact()
                if shipped is not None:
                    rows.append(self.add(shipped.data, origin="shipped"))
        return rows


def choose(detector: TrainableDetector, registry: Registry | None, sha256: str | None = None) -> ArtifactFile | None:
    """The artifact ``detector`` should run with: named, else the lab's default, else shipped."""
    if sha256 is not None:
        if registry is None:
            shipped = detector.shipped_artifact()
            if shipped is not None and shipped.sha256 == sha256:
                return shipped
            raise NotFoundError(f"model artifact {sha256[:12]}… is not available without a workspace")
        artifact = registry.read(registry.get(sha256))
    elif registry is not None and (row := registry.default_for(detector.name)) is not None:
        artifact = registry.read(row)
    else:
        artifact = detector.shipped_artifact()
    if artifact is not None and artifact.detector != detector.name:
        raise InvalidInputError(f"model artifact {artifact.sha256[:12]}… is for detector {artifact.detector}, "
                                f"not {detector.name}")
    return artifact


def attach(detector: Detector, registry: Registry | None, sha256: str | None = None) -> str | None:
    """Give a trainable ``detector`` its artifact (see :func:`choose`); returns the SHA-256 in use.

    Does nothing when the detector already runs with that artifact. A detector
    without any artifact is left without one: its findings then say how to
    train or import one.
    """
    if not isinstance(detector, TrainableDetector):
        return None
    artifact = choose(detector, registry, sha256)
    if artifact is not None and detector.model_sha256 != artifact.sha256:
        detector.use_artifact(artifact)
    return detector.model_sha256


def pinned_models(detectors: Iterable[Detector], registry: Registry) -> dict[str, str]:
    """``{detector: sha256}`` for the trainable detectors that have an artifact now (an analysis records it)."""
    out: dict[str, str] = {}
    for detector in detectors:
        if isinstance(detector, TrainableDetector):
            artifact = choose(detector, registry)
            if artifact is not None:
                if artifact.origin == "shipped":
                    registry.add(artifact.data, origin="shipped")
                out[detector.name] = artifact.sha256
    return out


def runnable(detectors: Iterable[Detector], registry: Registry | None, *, named: bool) -> tuple[list[Detector], list[str]]:
    """The detectors that can run now, and the names of trainable ones left out for want of a model.

    ``named``: the user named these detectors, so a trainable one without any
    artifact is an error (one line saying how to get a model) rather than
    silently skipped, as it is when "all detectors" were asked for.
    """
    ready: list[Detector] = []
    skipped: list[str] = []
    for detector in detectors:
        if isinstance(detector, TrainableDetector) and choose(detector, registry) is None:
            if named:
                raise NoModelError(no_model_message(detector))
            skipped.append(detector.name)
        else:
            ready.append(detector)
    return ready, skipped
