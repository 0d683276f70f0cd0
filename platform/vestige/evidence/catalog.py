"""Reading the evidence of a case back: image listings and whole records."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session, aliased

from vestige.analysis import serialise
from vestige.analysis.serialise import image_row
from vestige.core.errors import NotFoundError
from vestige.db.engine import core_connection
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


# Built once: SQLAlchemy memoises a statement's cache key, and an aliased entity made per call cost about a
# millisecond of its work on every image page (measured with `vestige bench web`). Core statements on the
# tables, run on the session's connection: an image's record needs these columns, not ORM objects, and loading
# the two histories and the occurrences as objects cost ~0.25 ms more of CPU per image page.
_PERTURBATIONS = Perturbation.__table__
_RELATED = Image.__table__.alias("related")
_CASES = Case.__table__


def _linked(related: str, own: str) -> sa.Select:
    """Perturbation links whose ``own`` end is the bound ``image_id``, with the image at the ``related`` end."""
    p = _PERTURBATIONS.c
    return (
        sa.select(p.basis, p.operations, p.distance, p.hash_kind, p.created_at, _RELATED.c.id.label("related_id"),
                  _RELATED.c.blob_sha256, _RELATED.c.original_filename, _CASES.c.reference)
        .select_from(_PERTURBATIONS.outerjoin(_RELATED, _RELATED.c.id == p[related])
                     .outerjoin(_CASES, _CASES.c.id == _RELATED.c.case_id))
        .where(p[own] == sa.bindparam("image_id"))
        .order_by(p.id)
    )


_OWN_HISTORY = _linked("parent_id", "image_id")
_DERIVATIVES = _linked("image_id", "parent_id")
_OCCURRENCES = (
    sa.select(ImageOccurrence.__table__).where(ImageOccurrence.__table__.c.image_id == sa.bindparam("image_id"))
    .order_by(ImageOccurrence.__table__.c.id)
)


def perturbation_history(session: Session, image: Image) -> dict[str, list[dict[str, Any]]]:
    """What is known of how this image relates to others: its own history and its derivatives."""
    connection = core_connection(session)
    own = connection.execute(_OWN_HISTORY, {"image_id": image.id}).all()
    derived = connection.execute(_DERIVATIVES, {"image_id": image.id}).all()

    def row(link: sa.Row[Any], key: str) -> dict[str, Any]:
        return {
            "basis": link.basis,
            "operations": link.operations,
            "distance": link.distance,
            "hash_kind": link.hash_kind,
            key: None if link.related_id is None else {"id": link.related_id, "case": link.reference,
                                                       "sha256": link.blob_sha256,
                                                       "filename": link.original_filename},
            "recorded_at": link.created_at.isoformat(),
        }

    return {
        "history": [row(link, "parent") for link in own],
        "derivatives": [row(link, "image") for link in derived],
    }


def image_record(session: Session, image: Image) -> dict[str, Any]:
    """The whole record of one image (its form: :func:`vestige.analysis.serialise.image_record`)."""
    hashes = {"phash": _hex(image.phash), "dhash": _hex(image.dhash), "whash": _hex(image.whash),
              "colorhash": _hex(image.colorhash)}
    history = perturbation_history(session, image)
    occurrences = core_connection(session).execute(_OCCURRENCES, {"image_id": image.id}).all()
    return serialise.image_record(image, hashes, history, occurrences)
