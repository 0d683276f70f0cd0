"""The JSON form of each domain object, one serialiser each, shared by the CLI's ``--json``, the JSON API and its
OpenAPI document.

Each serialiser comes with a :class:`Shape`: the OpenAPI schema of every key it
writes. The OpenAPI document builds its component schemas from these shapes, so
a key added to a serialiser must be added to its shape, next to it, and then
appears in the document with no second edit (``tests/test_serialise.py`` checks
that a real object's keys are exactly its shape's properties).
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from vestige.db.models import ANALYSIS_STATUSES, CASE_STATUSES, LABELS, REPORT_FORMATS
from vestige.plugin import outcome_of, reason_of

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from vestige.core.config import Config
    from vestige.db.models import Analysis, Case, CustodyEvent, Image, Report, Verdict

OBJECT: dict[str, Any] = {"type": "object", "additionalProperties": True}
STRING: dict[str, Any] = {"type": "string"}
STRING_OR_NULL: dict[str, Any] = {"type": "string", "nullable": True}
INTEGER: dict[str, Any] = {"type": "integer"}
DATE_TIME: dict[str, Any] = {"type": "string", "format": "date-time"}
OUTCOMES = ("real", "synthetic", "synthetic-unknown-source", "inconclusive")


@dataclass(frozen=True)
class Shape:
    """What a serialiser writes: ``properties`` (key -> OpenAPI 3.0 schema, in the serialiser's order) and the
    keys it always writes (``required``; the others appear only in some cases, said in their description)."""

    properties: dict[str, dict[str, Any]]
    required: tuple[str, ...]
    optional: tuple[str, ...] = field(default=())

    def __post_init__(self) -> None:
        assert set(self.required) | set(self.optional) == set(self.properties), "every key is required or optional"

    def schema(self, *, extra: dict[str, dict[str, Any]] | None = None, required: tuple[str, ...] = ()) -> dict[str, Any]:
        """The OpenAPI object schema; ``extra`` adds the keys a caller writes on top of the serialiser's."""
        return copy.deepcopy({"type": "object", "required": [*self.required, *required],
                              "properties": {**self.properties, **(extra or {})}})


# --- cases -------------------------------------------------------------------------------------------------------

CASE = Shape(
    properties={
        "reference": STRING, "title": STRING, "status": {"type": "string", "enum": list(CASE_STATUSES)},
        "created_at": DATE_TIME, "created_by": STRING, "custody_events": INTEGER,
        "images": {"type": "integer", "description": "Its evidence images (not the lab's own copies), when counted."},
    },
    required=("reference", "title", "status", "created_at", "created_by", "custody_events"),
    optional=("images",),
)


def case_dict(case: Case, images: int | None = None) -> dict[str, Any]:
    """A case as ``--json`` output and the JSON API show it; ``images``: its evidence count, when known."""
    out: dict[str, Any] = {
        "reference": case.reference,
        "title": case.title,
        "status": case.status,
        "created_at": case.created_at.isoformat(),
        "created_by": case.created_by,
        "custody_events": case.custody_count,
    }
    if images is not None:
        out["images"] = images
    return out


# --- analyses ----------------------------------------------------------------------------------------------------

_DETECTOR_PROGRESS: dict[str, Any] = {
    "type": "object", "required": ["detector", "done", "total", "status"],
    "properties": {"detector": STRING, "done": INTEGER, "total": INTEGER, "status": STRING,
                   "seconds_left": {"type": "number", "nullable": True}, "eta": STRING},
}

ANALYSIS = Shape(
    properties={
        "id": INTEGER, "status": {"type": "string", "enum": list(ANALYSIS_STATUSES)},
        "detectors": {"type": "array", "items": STRING},
        "robustness": {"type": "boolean", "description": "Whether the robustness copies are analysed too."},
        "progress_done": INTEGER, "progress_total": INTEGER, "requested_by": STRING,
        "created_at": DATE_TIME, "finished_at": {**DATE_TIME, "nullable": True}, "error": STRING_OR_NULL,
        "by_detector": {"type": "array", "description": "Unfinished analyses: each detector's progress.",
                        "items": _DETECTOR_PROGRESS},
        "seconds_left": {"type": "number", "nullable": True,
                         "description": "Unfinished analyses: estimated seconds left, by measured pace."},
        "eta": {"type": "string", "description": "Unfinished analyses: the seconds left in words."},
        "waiting": {**STRING_OR_NULL, "description": "Unfinished analyses: why nothing can run it "
                                                     "(no live worker), with how to start one."},
    },
    required=("id", "status", "detectors", "robustness", "progress_done", "progress_total", "requested_by",
              "created_at", "finished_at", "error"),
    optional=("by_detector", "seconds_left", "eta", "waiting"),
)


def analysis_dict(a: Analysis, session: Session | None = None, config: Config | None = None) -> dict[str, Any]:
    """An analysis; an unfinished one, given ``session`` and ``config``, also has each detector's progress
    (``by_detector``), the time left (``seconds_left``, ``eta``) and, when nothing can run it, why (``waiting``)."""
    out: dict[str, Any] = {
        "id": a.id,
        "status": a.status,
        "detectors": a.detectors,
        "robustness": bool((a.options or {}).get("robustness", False)),
        "progress_done": a.progress_done,
        "progress_total": a.progress_total,
        "requested_by": a.requested_by,
        "created_at": a.created_at.isoformat(),
        "finished_at": a.finished_at.isoformat() if a.finished_at else None,
        "error": a.error,
    }
    if a.finished_at is None and session is not None and config is not None:
        from vestige.analysis.analysisplan import describe_duration, detector_progress, seconds_left
        from vestige.jobs.recovery import waiting_reason

        progress = detector_progress(session, a)
        left = seconds_left(progress)
        out.update(by_detector=[{**row, "eta": None if row["seconds_left"] is None else describe_duration(row["seconds_left"])}
                                for row in progress],
                   seconds_left=left, eta=describe_duration(left), waiting=waiting_reason(session, config, a))
    return out


# --- verdicts ----------------------------------------------------------------------------------------------------

VERDICT = Shape(
    properties={
        "image_id": INTEGER, "detector": STRING, "detector_version": STRING, "model_sha256": STRING_OR_NULL,
        "label": {"type": "string", "enum": list(LABELS)}, "source": STRING_OR_NULL, "scores": OBJECT,
        "confidence": {"type": "number", "nullable": True}, "evidence": OBJECT,
        "pictures": {"type": "array", "items": OBJECT}, "device": STRING, "precision": STRING,
        "runtime_ms": {"type": "number", "nullable": True}, "error": STRING_OR_NULL,
        "outcome": {"type": "string", "enum": list(OUTCOMES)},
        "reason": {**STRING_OR_NULL, "description": "Why it is not a plain attribution, e.g. outside "
                                                    "the model's validated domain (docs/verdicts.md)."},
    },
    required=("image_id", "detector", "detector_version", "model_sha256", "label", "source", "scores", "confidence",
              "evidence", "pictures", "device", "precision", "runtime_ms", "error", "outcome", "reason"),
)


def verdict_as_dict(verdict: Verdict) -> dict[str, Any]:
    """A verdict's JSON form (embedding left out: it is a vector, not a finding)."""
    return {
        "image_id": verdict.image_id, "detector": verdict.detector, "detector_version": verdict.detector_version,
        "model_sha256": verdict.model_sha256, "label": verdict.label, "source": verdict.source,
        "scores": verdict.scores, "confidence": verdict.confidence, "evidence": verdict.evidence,
        "pictures": verdict.pictures, "device": verdict.device, "precision": verdict.precision,
        "runtime_ms": None if verdict.runtime_ms is None else round(verdict.runtime_ms, 3), "error": verdict.error,
        "outcome": "inconclusive" if verdict.error else outcome_of(verdict.label, verdict.source),
        "reason": reason_of(verdict.evidence),
    }


FINDING = Shape(
    properties={"analysis_id": INTEGER, **VERDICT.properties,
                "kind": {"type": "string", "description": "The detector's kind, which the merge rules weigh."}},
    required=("analysis_id", *VERDICT.required, "kind"),
)


def finding_dict(verdict: Verdict, kinds: Mapping[str, str]) -> dict[str, Any]:
    """A verdict as a finding among an image's others: the analysis it belongs to and its detector's kind
    (``kinds``: each installed detector's; ``attribution`` for one not installed here)."""
    return {"analysis_id": verdict.analysis_id, **verdict_as_dict(verdict), "kind": kinds.get(verdict.detector, "attribution")}


# --- reports -----------------------------------------------------------------------------------------------------

REPORT = Shape(
    properties={"id": INTEGER, "format": {"type": "string", "enum": list(REPORT_FORMATS)}, "size": INTEGER,
                "sha256": STRING, "analysis_id": {"type": "integer", "nullable": True}, "signed": {"type": "boolean"},
                "created_by": STRING, "created_at": DATE_TIME},
    required=("id", "format", "size", "sha256", "analysis_id", "signed", "created_by", "created_at"),
)


def report_dict(r: Report) -> dict[str, Any]:
    """A kept report: what it is, not its bytes."""
    return {"id": r.id, "format": r.format, "size": r.size, "sha256": r.blob_sha256, "analysis_id": r.analysis_id,
            "signed": r.signature is not None, "created_by": r.created_by, "created_at": r.created_at.isoformat()}


# --- custody -----------------------------------------------------------------------------------------------------

CUSTODY_EVENT = Shape(
    properties={"seq": INTEGER, "at": {"type": "string", "description": "UTC time, as stored (and hashed)."},
                "actor": STRING, "action": STRING, "details": OBJECT, "hash": STRING},
    required=("seq", "at", "actor", "action", "details", "hash"),
)


def custody_event_dict(e: CustodyEvent) -> dict[str, Any]:
    """One event of a case's custody log, its details decoded."""
    return {"seq": e.seq, "at": e.at, "actor": e.actor, "action": e.action, "details": json.loads(e.details),
            "hash": e.hash}


# --- images ------------------------------------------------------------------------------------------------------

_ORIGIN: dict[str, Any] = {"type": "string", "enum": ["evidence", "derived"],
                           "description": "'derived': a copy the lab made (a robustness probe), not evidence."}

IMAGE_ROW = Shape(
    properties={
        "id": INTEGER, "sha256": STRING, "size": INTEGER, "format": STRING, "width": INTEGER, "height": INTEGER,
        "origin": _ORIGIN, "filename": STRING, "duplicates": INTEGER,
        "near_duplicates": {"type": "integer", "description": "Links to near-duplicate evidence images."},
        "parent_id": {"type": "integer", "description": "Lab-made copies: the image it was made from."},
        "operations": {"type": "array", "items": OBJECT, "description": "Lab-made copies: how it was made."},
    },
    required=("id", "sha256", "size", "format", "width", "height", "origin", "filename", "duplicates",
              "near_duplicates"),
    optional=("parent_id", "operations"),
)


def image_row(image: Image, occurrences: int, near_duplicates: int,
              made: tuple[int, list[dict[str, Any]]] | None = None) -> dict[str, Any]:
    """An image in a listing: identity, format, duplicate counts; ``made`` (parent id, operations) for a copy."""
    row: dict[str, Any] = {
        "id": image.id,
        "sha256": image.blob_sha256,
        "size": image.size,
        "format": image.format,
        "width": image.width,
        "height": image.height,
        "origin": image.origin,
        "filename": image.original_filename,
        "duplicates": occurrences - 1,
        "near_duplicates": near_duplicates,
    }
    if made is not None:
        row["parent_id"], row["operations"] = made
    return row


IMAGE_RECORD = Shape(
    properties={
        "id": INTEGER, "case": STRING, "origin": _ORIGIN, "sha256": STRING, "size": INTEGER, "media_type": STRING,
        "format": STRING, "mode": STRING, "width": INTEGER, "height": INTEGER, "frames": INTEGER,
        "original_filename": STRING, "source": STRING, "acquired_by": STRING, "acquired_at": DATE_TIME,
        "hashes": {"type": "object", "required": ["phash", "dhash", "whash", "colorhash"],
                   "properties": {k: STRING for k in ("phash", "dhash", "whash", "colorhash")}},
        "occurrences": {"type": "array", "description": "Every acquisition of these bytes into the case.",
                        "items": {"type": "object",
                                  "required": ["filename", "container", "member_index", "source", "acquired_by",
                                               "acquired_at"],
                                  "properties": {"filename": STRING, "container": STRING_OR_NULL,
                                                 "member_index": {"type": "integer", "nullable": True},
                                                 "source": STRING, "acquired_by": STRING, "acquired_at": DATE_TIME,
                                                 "filename_bytes_hex": STRING, "container_bytes_hex": STRING}}},
        "metadata": OBJECT,
        "perturbations": {"type": "object", "required": ["history", "derivatives"],
                          "properties": {"history": {"type": "array", "items": OBJECT},
                                         "derivatives": {"type": "array", "items": OBJECT}}},
    },
    required=("id", "case", "origin", "sha256", "size", "media_type", "format", "mode", "width", "height", "frames",
              "original_filename", "source", "acquired_by", "acquired_at", "hashes", "occurrences", "metadata",
              "perturbations"),
)


def image_record(image: Image, hashes: dict[str, str], perturbations: dict[str, list[dict[str, Any]]],
                 occurrences: Iterable[Any] | None = None) -> dict[str, Any]:
    """The whole record of one image; ``hashes`` as hex, ``perturbations`` its history and derivatives;
    ``occurrences`` (rows with :class:`ImageOccurrence`'s columns, in id order) instead of ``image.occurrences``."""
    return {
        "id": image.id,
        "case": image.case.reference,
        "origin": image.origin,
        "sha256": image.blob_sha256,
        "size": image.size,
        "media_type": image.media_type,
        "format": image.format,
        "mode": image.mode,
        "width": image.width,
        "height": image.height,
        "frames": image.frames,
        "original_filename": image.original_filename,
        "source": image.source,
        "acquired_by": image.acquired_by,
        "acquired_at": image.acquired_at.isoformat(),
        "hashes": hashes,
        "occurrences": [
            {"filename": o.original_filename, "container": o.container, "member_index": o.member_index, "source": o.source,
             "acquired_by": o.acquired_by, "acquired_at": o.acquired_at.isoformat(),
             **({"filename_bytes_hex": o.original_filename_bytes.hex()} if o.original_filename_bytes else {}),
             **({"container_bytes_hex": o.container_bytes.hex()} if o.container_bytes else {})}
            for o in (image.occurrences if occurrences is None else occurrences)
        ],
        "metadata": image.metadata_summary,
        "perturbations": perturbations,
    }
