"""Verdict storage: a detector's findings written once per (analysis, image, detector).

Writing is an upsert on that unique key, so a task that runs twice (a worker
lost after writing, a duplicate delivery) leaves exactly one verdict. Pictures
go to the evidence store as blobs; the verdict keeps their name, caption,
media type and SHA-256. Embeddings are kept as little-endian float32 bytes.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from vestige.db.models import Analysis, Blob, Image, Verdict
from vestige.evidence.store import BlobStore
from vestige.plugin import Finding

#: dtype of stored embeddings.
EMBEDDING_DTYPE = "<f4"

_UPDATED = ("detector_version", "model_sha256", "label", "source", "scores", "confidence", "evidence", "pictures",
            "embedding", "device", "precision", "runtime_ms", "error")


def _insert(session: Session, table: sa.Table):  # type: ignore[no-untyped-def]
    dialect = session.get_bind().dialect.name
    return (postgresql.insert(table) if dialect == "postgresql" else sqlite.insert(table))


def _store_pictures(session: Session, store: BlobStore, finding: Finding) -> list[dict[str, Any]]:
    rows = []
    for picture in finding.pictures:
        sha256 = store.put(picture.data)
        session.execute(
            _insert(session, Blob.__table__)
            .values(sha256=sha256, size=len(picture.data), media_type=picture.media_type)
            .on_conflict_do_nothing(index_elements=["sha256"])
        )
        rows.append({"name": picture.name, "caption": picture.caption, "media_type": picture.media_type, "sha256": sha256})
    return rows


def encode_embedding(vector: Sequence[float] | None) -> bytes | None:
    return None if vector is None else np.asarray(vector, dtype=EMBEDDING_DTYPE).tobytes()


def decode_embedding(data: bytes | None) -> np.ndarray | None:
    return None if data is None else np.frombuffer(data, dtype=EMBEDDING_DTYPE)


def store_findings(session: Session, store: BlobStore, analysis_id: int, pairs: Iterable[tuple[int, Finding]]) -> int:
    """Upsert one verdict per (image id, finding) of ``analysis_id``; returns how many were written."""
    count = 0
    for image_id, finding in pairs:
        canonical = finding.to_dict()
        values = {
            "analysis_id": analysis_id, "image_id": image_id, "detector": finding.detector,
            "detector_version": finding.detector_version, "model_sha256": finding.model_sha256,
            "label": finding.label, "source": finding.source, "scores": canonical["scores"],
            "confidence": canonical["confidence"], "evidence": canonical["evidence"],
            "pictures": _store_pictures(session, store, finding), "embedding": encode_embedding(finding.embedding),
            "device": finding.device, "precision": finding.precision,
            "runtime_ms": finding.runtime_ms, "error": finding.error,
        }
        statement = _insert(session, Verdict.__table__).values(**values)
        session.execute(statement.on_conflict_do_update(
            index_elements=["analysis_id", "image_id", "detector"],
            set_={key: statement.excluded[key] for key in _UPDATED},
        ))
        count += 1
    return count


def stated_confidence(finding: Mapping[str, Any]) -> float | None:
    """The calibrated confidence a finding has in the outcome it states, on one scale for every detector.

    For ``real``, ``synthetic`` with a source and ``synthetic-unknown-source``
    it is the detector's calibrated probability of that statement. An
    inconclusive finding states nothing, so it has none: the number a
    detector may still carry is its top candidate's probability, which the
    finding did not accept (its reason says why), and showing it next to a
    conclusive one would compare unlike things.
    """
    if finding.get("error") or finding.get("label") not in ("real", "synthetic"):
        return None
    value = finding.get("confidence")
    return None if value is None else float(value)


def analysis_verdicts(session: Session, analysis: Analysis) -> list[Verdict]:
    """The verdicts of ``analysis``, by image then detector."""
    return list(session.execute(
        sa.select(Verdict).where(Verdict.analysis_id == analysis.id).order_by(Verdict.image_id, Verdict.detector)
    ).scalars())


def findings_for_merge(verdicts: Iterable[Verdict], kinds: Mapping[str, str]) -> dict[int, list[dict[str, Any]]]:
    """Per image id, the mappings :func:`vestige.analysis.merge.merge_verdicts` takes."""
    by_image: dict[int, list[dict[str, Any]]] = {}
    for v in verdicts:
        by_image.setdefault(v.image_id, []).append({
            "detector": v.detector, "kind": kinds.get(v.detector, "attribution"), "label": v.label,
            "source": v.source, "confidence": v.confidence, "error": v.error,
            "domain": (v.evidence or {}).get("domain") if isinstance(v.evidence, dict) else None,
        })
    return by_image


def image_names(session: Session, image_ids: Iterable[int]) -> dict[int, str]:
    ids = list(image_ids)
    rows = session.execute(sa.select(Image.id, Image.original_filename).where(Image.id.in_(ids))) if ids else []
    return {row[0]: row[1] for row in rows}
