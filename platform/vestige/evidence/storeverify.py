"""Re-hashing what the evidence store holds: ``vestige store verify [CASE]``, and the check reports make.

Every read of the store is verified already; this reads everything on
purpose, so a flipped byte is found by a scheduled check instead of by the
next person who opens the image. Each item is named by what it is to the lab
(image 7 ``IMG_0042.jpg`` of LAB-…, report 3, a finding's picture, a model
artifact), not only by its hash, and each case checked gets a
``store.verified`` custody event with the result.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

import sqlalchemy as sa
from sqlalchemy.orm import Session

from vestige.core.errors import StoreError
from vestige.core.workspace import Workspace
from vestige.db.models import Case, Image, ModelArtifact, Report, Verdict
from vestige.evidence.cases import get_case
from vestige.evidence.custody import record_event
from vestige.evidence.store import BlobStore


@dataclass(frozen=True)
class StoredItem:
    """One thing the database says the store holds."""

    sha256: str
    what: str  # "image 7 'a.jpg' of LAB-1", "report 3 (pdf) of LAB-1", ...
    case_id: int | None


@dataclass
class StoreCheck:
    checked: int = 0
    problems: list[tuple[StoredItem, str]] = field(default_factory=list)

    @property
    def intact(self) -> bool:
        return not self.problems

    def lines(self) -> list[str]:
        return [f"BAD {item.what}: {problem}" for item, problem in self.problems]

    def sentence(self) -> str:
        if self.intact:
            return f"store intact: {self.checked} stored files re-hashed, all match"
        return f"store DAMAGED: {len(self.problems)} of {self.checked} stored files are missing or corrupted"

    def to_dict(self) -> dict:
        return {"intact": self.intact, "checked": self.checked,
                "problems": [{"what": i.what, "sha256": i.sha256, "problem": p} for i, p in self.problems]}


def case_items(session: Session, case: Case) -> list[StoredItem]:
    """Every blob a case refers to: its images (evidence and derived), its reports, its findings' pictures."""
    items = [StoredItem(image.blob_sha256, f"{'derived image' if image.origin == 'derived' else 'image'} {image.id} "
                                           f"{image.original_filename!r} of {case.reference}", case.id)
             for image in session.scalars(sa.select(Image).where(Image.case_id == case.id).order_by(Image.id))]
    items += [StoredItem(report.blob_sha256, f"report {report.id} ({report.format}) of {case.reference}", case.id)
              for report in session.scalars(sa.select(Report).where(Report.case_id == case.id).order_by(Report.id))]
    verdicts = session.execute(
        sa.select(Verdict.id, Verdict.image_id, Verdict.detector, Verdict.pictures)
        .join(Image, Image.id == Verdict.image_id).where(Image.case_id == case.id).order_by(Verdict.id)
    )
    for verdict_id, image_id, detector, pictures in verdicts:
        for picture in pictures or []:
            items.append(StoredItem(picture["sha256"], f"picture {picture.get('name', '')!r} of {detector}'s finding "
                                                       f"{verdict_id} on image {image_id} of {case.reference}", case.id))
    return items


def artifact_items(session: Session) -> list[StoredItem]:
    return [StoredItem(a.sha256, f"model artifact {a.detector} {a.version} ({a.filename})", None)
            for a in session.scalars(sa.select(ModelArtifact).order_by(ModelArtifact.id))]


def check_items(store: BlobStore, items: Iterable[StoredItem]) -> StoreCheck:
    """Re-hash each distinct blob once; every item that refers to a bad blob is named."""
    check = StoreCheck()
    results: dict[str, str | None] = {}
    for item in items:
        if item.sha256 not in results:
            try:
                store.verify(item.sha256)
                results[item.sha256] = None
            except StoreError as exc:
                results[item.sha256] = str(exc)
        check.checked += 1
        if results[item.sha256] is not None:
            check.problems.append((item, results[item.sha256]))
    return check


def verify_store(workspace: Workspace, reference: str | None, *, actor: str) -> StoreCheck:
    """Check one case's blobs, or every case's and every model artifact's; record the result in each case's custody."""
    with workspace.db.session() as session:
        cases = [get_case(session, reference)] if reference else list(session.scalars(sa.select(Case).order_by(Case.id)))
        total = StoreCheck()
        for case in cases:
            check = check_items(workspace.store, case_items(session, case))
            record_event(session, case, actor=actor, action="store.verified", details={
                "checked": check.checked, "intact": check.intact,
                "bad": [{"what": item.what, "sha256": item.sha256} for item, _ in check.problems],
            })
            total.checked += check.checked
            total.problems += check.problems
        if reference is None:
            check = check_items(workspace.store, artifact_items(session))
            total.checked += check.checked
            total.problems += check.problems
    return total
