"""Reading the evidence of a case back: image listings and whole records."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session, aliased

from vestige.analysis import serialise
from vestige.analysis.serialise import image_row
from vestige.core.errors import NotFoundError
from vestige.db.models import Case, Image, ImageOccurrence, Perturbation
from vestige.evidence.neardup import to_unsigned64


def list_images(session: Session, case: Case) -> list[dict[str, Any]]:
    """One row per image: identity, format, and counts of duplicates and near-duplicates.

    A lab-made copy (``origin`` ``derived``, such as a robustness probe) also
    has ``parent_id`` and ``operations``, the original it was made from and
    how. Near-duplicates count links to evidence only: a copy the lab made
    resembles its original by design and is not a near-duplicate found in
    the evidence.
    """
    occurrences = (
        sa.select(sa.func.count(ImageOccurrence.id)).where(ImageOccurrence.image_id == Image.id).scalar_subquery()
    )
    other = aliased(Image)
    near_as_child = (
        sa.select(sa.func.count(Perturbation.id)).join(other, other.id == Perturbation.parent_id)
        .where(Perturbation.basis == "observed", Perturbation.image_id == Image.id, other.origin == "evidence")
        .scalar_subquery()
    )
    near_as_parent = (
        sa.select(sa.func.count(Perturbation.id)).join(other, other.id == Perturbation.image_id)
        .where(Perturbation.basis == "observed", Perturbation.parent_id == Image.id, other.origin == "evidence")
        .scalar_subquery()
    )
    rows = session.execute(
        sa.select(Image, occurrences, near_as_child + near_as_parent).where(Image.case_id == case.id).order_by(Image.id)
    ).all()
    made = {image_id: (parent_id, operations) for image_id, parent_id, operations in session.execute(
        sa.select(Perturbation.image_id, Perturbation.parent_id, Perturbation.operations)
        .join(Image, Image.id == Perturbation.image_id)
        .where(Image.case_id == case.id, Image.origin == "derived", Perturbation.basis == "applied")
    )}
    return [image_row(image, n_occ, n_near, made.get(image.id)) for image, n_occ, n_near in rows]


def group_copies(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The evidence rows of :func:`list_images`, each with ``copies``: the lab-made copies of it."""
    evidence = [dict(row, copies=[]) for row in rows if row["origin"] == "evidence"]
    by_id = {row["id"]: row for row in evidence}
    for row in rows:
        if row["origin"] != "evidence" and row.get("parent_id") in by_id:
            by_id[row["parent_id"]]["copies"].append(row)
    return evidence


def get_image(session: Session, image_id: int) -> Image:
    image = session.get(Image, image_id)
    if image is None:
        raise NotFoundError(f"no image with id {image_id}; `vestige images CASE` lists a case's images")
    return image


def _hex(value: int) -> str:
    return f"{to_unsigned64(value):016x}"


# Built once: SQLAlchemy memoises a statement's cache key, and an aliased entity made per call costs
# about a millisecond of its work on every image page (measured with `vestige bench web`).
_RELATED = aliased(Image, name="related")


def _linked(related: sa.ColumnElement[int], own: sa.ColumnElement[int]) -> sa.Select:
    """Perturbation links whose ``own`` end is the bound ``image_id``, with the image at the ``related`` end."""
    return (
        sa.select(Perturbation, _RELATED, Case.reference)
        .outerjoin(_RELATED, _RELATED.id == related)
        .outerjoin(Case, Case.id == _RELATED.case_id)
        .where(own == sa.bindparam("image_id"))
        .order_by(Perturbation.id)
    )


_OWN_HISTORY = _linked(Perturbation.parent_id, Perturbation.image_id)
_DERIVATIVES = _linked(Perturbation.image_id, Perturbation.parent_id)


def perturbation_history(session: Session, image: Image) -> dict[str, list[dict[str, Any]]]:
    """What is known of how this image relates to others: its own history and its derivatives."""
    own = session.execute(_OWN_HISTORY, {"image_id": image.id}).all()
    derived = session.execute(_DERIVATIVES, {"image_id": image.id}).all()

    def row(p: Perturbation, related: Image | None, reference: str | None, key: str) -> dict[str, Any]:
        return {
            "basis": p.basis,
            "operations": p.operations,
            "distance": p.distance,
            "hash_kind": p.hash_kind,
            key: None if related is None else {"id": related.id, "case": reference, "sha256": related.blob_sha256,
                                               "filename": related.original_filename},
            "recorded_at": p.created_at.isoformat(),
        }

    return {
        "history": [row(p, o, ref, "parent") for p, o, ref in own],
        "derivatives": [row(p, o, ref, "image") for p, o, ref in derived],
    }


def image_record(session: Session, image: Image) -> dict[str, Any]:
    """The whole record of one image (its form: :func:`vestige.analysis.serialise.image_record`)."""
    hashes = {"phash": _hex(image.phash), "dhash": _hex(image.dhash), "whash": _hex(image.whash),
              "colorhash": _hex(image.colorhash)}
    return serialise.image_record(image, hashes, perturbation_history(session, image))
