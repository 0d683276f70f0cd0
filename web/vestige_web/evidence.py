"""Reading a case's evidence for the pages and the API: images, findings, merged verdicts, analyses, reports.

Everything here is filtered for the user asking: near-duplicate links to
cases they may not see are dropped before anything is shown or counted.
"""

from __future__ import annotations

import logging
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session, aliased
from sqlalchemy.sql import operators

from vestige.analysis.analysisplan import describe_duration, detector_options
from vestige.analysis.merge import merge_verdicts
from vestige.analysis.robustness import PROBES
from vestige.analysis.serialise import analysis_dict, finding_dict
from vestige.core.config import Config
from vestige.core.plugins import VestigePluginManager, get_detectors
from vestige.db.engine import core_connection
from vestige.db.models import Analysis, Case, Image, Perturbation, Report, User, Verdict
from vestige.evidence.catalog import group_copies, image_record, list_images
from vestige.evidence.derivatives import chain_name
from vestige.evidence.store import BlobStore
from vestige_web.access import filter_related, visible_case_ids

log = logging.getLogger(__name__)


def detector_kinds(pm: VestigePluginManager) -> dict[str, str]:
    """Each installed detector's kind, which the merge rules need."""
    try:
        return {name: d.kind for name, d in get_detectors(pm).items()}
    except Exception:  # a broken plugin must not take the evidence pages down
        log.exception("cannot list the installed detectors' kinds; merged verdicts use the default rules")
        return {}


def detector_list(pm: VestigePluginManager) -> list[dict[str, str]]:
    """The installed detectors to choose from when launching an analysis."""
    try:
        return [{"name": d.name, "kind": d.kind, "description": d.description} for d in get_detectors(pm).values()]
    except Exception:  # a broken plugin must not take the case page down; `vestige plugins` names it
        log.exception("cannot list the installed detectors")
        return []


def detector_choices(session: Session, store: BlobStore, pm: VestigePluginManager, images: int) -> list[dict[str, Any]]:
    """The analysis form's detectors: which can run, which are pre-checked, and each one's estimated time for
    ``images`` evidence images (and with the robustness copies)."""
    try:
        options = detector_options(session, store, pm)
    except Exception:  # a broken plugin must not take the case page down; `vestige plugins` names it
        log.exception("cannot list the detectors for the analysis form")
        return []
    copies = images * (1 + len(PROBES))
    return [{"name": o.name, "kind": o.kind, "description": o.description, "unavailable": o.unavailable,
             "checked": o.default and not o.slow, "slow": o.slow, "basis": o.basis,
             "estimate": describe_duration(o.estimate_s(images)),
             "estimate_robustness": describe_duration(o.estimate_s(copies))} for o in options]


_NEWEST = (
    sa.select(Verdict.image_id, sa.func.max(Verdict.analysis_id).label("analysis_id"))
    .where(Verdict.image_id.in_(sa.bindparam("ids", expanding=True))).group_by(Verdict.image_id).subquery()
)
# Built once so that SQLAlchemy's cache key is memoised (see vestige.evidence.catalog). Core rows (every column a finding
# shows, the embedding left out), not ORM objects: the findings are turned into dicts at once.
_VERDICTS = Verdict.__table__
_LATEST_VERDICTS = (
    sa.select(*[c for c in _VERDICTS.c if c.name != "embedding"])
    .join(_NEWEST, sa.and_(_VERDICTS.c.image_id == _NEWEST.c.image_id, _VERDICTS.c.analysis_id == _NEWEST.c.analysis_id))
    .order_by(_VERDICTS.c.image_id, _VERDICTS.c.detector)
)


def latest_findings(session: Session, image_ids: list[int], kinds: dict[str, str]) -> dict[int, list[dict[str, Any]]]:
    """Per image, every detector's finding from the most recent analysis that judged it."""
    if not image_ids:
        return {}
    rows = core_connection(session).execute(_LATEST_VERDICTS, {"ids": list(image_ids)})
    out: dict[int, list[dict[str, Any]]] = {}
    for verdict in rows:
        out.setdefault(verdict.image_id, []).append(finding_dict(verdict, kinds))
    return out


def merged_verdicts(findings: dict[int, list[dict[str, Any]]]) -> dict[int, dict[str, Any]]:
    return {image_id: merge_verdicts(rows) for image_id, rows in findings.items()}


def visible_near_duplicates(session: Session, user: User, image_ids: list[int]) -> dict[int, int]:
    """Per image, how many near-duplicate links it has to evidence images the user may see."""
    if not image_ids:
        return {}
    allowed = visible_case_ids(session, user)
    counts: dict[int, int] = dict.fromkeys(image_ids, 0)
    other = aliased(Image)
    for mine, theirs in (("image_id", "parent_id"), ("parent_id", "image_id")):
        query = (
            sa.select(getattr(Perturbation, mine), sa.func.count())
            .join(other, other.id == getattr(Perturbation, theirs))
            .where(Perturbation.basis == "observed", getattr(Perturbation, mine).in_(image_ids),
                   other.origin == "evidence")  # the lab's own copies resemble their originals by design
            .group_by(getattr(Perturbation, mine))
        )
        if allowed is not None:
            query = query.where(other.case_id.in_(allowed))
        for image_id, n in session.execute(query):
            counts[image_id] += n
    return counts


def case_analyses(session: Session, case: Case, config: Config | None = None) -> list[dict[str, Any]]:
    """The case's analyses, newest first (see :func:`analysis_dict` for what ``config`` adds)."""
    rows = session.execute(sa.select(Analysis).where(Analysis.case_id == case.id).order_by(Analysis.id.desc()))
    return [analysis_dict(a, session, config) for a in rows.scalars()]


def case_reports(session: Session, case: Case) -> list[Report]:
    return list(session.execute(sa.select(Report).where(Report.case_id == case.id).order_by(Report.id.desc())).scalars())


def case_images(session: Session, user: User, case: Case, pm: VestigePluginManager) -> list[dict[str, Any]]:
    """The case's evidence images for a listing: identity, visible near-duplicates and merged verdict, and under
    each its lab-made copies (``copies``: id, format, size and the operations that made it; no verdict of their own)."""
    rows = group_copies(list_images(session, case))
    ids = [row["id"] for row in rows]
    near = visible_near_duplicates(session, user, ids)
    merged = merged_verdicts(latest_findings(session, ids, detector_kinds(pm)))
    for row in rows:
        row["near_duplicates"] = near.get(row["id"], 0)
        verdict = merged.get(row["id"])
        row["verdict"] = None if verdict is None else {k: verdict[k] for k in ("label", "source", "outcome", "rule",
                                                                               "confidence")}
        row["copies"] = [{**{k: copy[k] for k in ("id", "sha256", "format", "width", "height", "size", "operations")},
                          "name": chain_name(copy["operations"] or [])} for copy in row["copies"]]
    return rows


def image_details(session: Session, user: User, image: Image, pm: VestigePluginManager) -> dict[str, Any]:
    """One image's whole record for its page: metadata, hashes, findings, merged verdict, robustness."""
    record = image_record(session, image)
    record["perturbations"] = filter_related(session, user, record["perturbations"])
    kinds = detector_kinds(pm)
    findings = latest_findings(session, [image.id], kinds).get(image.id, [])
    record["findings"] = findings
    record["verdict"] = merge_verdicts(findings) if findings else None
    record["robustness"] = image_robustness(session, image)
    return record


# Only this image's entry leaves the database (a JSON path: json_extract on SQLite, #> on PostgreSQL): a summary
# holds every image of the case, megabytes for a large one, and an image page needs one entry. Built once with
# the path bound per call, like the other hot statements (see vestige.evidence.catalog): building it per call, as
# ``Analysis.summary[("robustness", id)]`` does, cost ~0.2 ms of SQLAlchemy's work on every image page.
_SUMMARY = Analysis.__table__.c.summary
_ROBUSTNESS_ENTRIES = (
    sa.select(_SUMMARY.comparator.operate(operators.json_path_getitem_op,
                                          sa.bindparam("path", type_=sa.JSON.JSONPathType), result_type=_SUMMARY.type))
    .where(Analysis.case_id == sa.bindparam("case_id"), Analysis.finished_at.is_not(None))
    .order_by(Analysis.id.desc()).limit(sa.bindparam("look_back"))
)


def image_robustness(session: Session, image: Image, *, look_back: int = 10) -> dict[str, Any] | None:
    """How the verdicts on ``image`` held under the robustness probes of the latest analysis that ran them.

    The analysis's summary holds it (:func:`vestige.analysis.robustness.robustness_summary`): ``probes``, then
    ``merged`` and each detector's ``label`` with ``under`` = probe -> {label, holds}.
    """
    entries = core_connection(session).execute(_ROBUSTNESS_ENTRIES, {"path": ("robustness", str(image.id)),
                                                                      "case_id": image.case_id,
                                                                      "look_back": look_back}).scalars()
    for entry in entries:
        if entry:
            return entry
    return None


def picture_of(session: Session, image: Image, sha256: str) -> dict[str, Any] | None:
    """The picture ``sha256`` if one of this image's findings made it."""
    verdicts = session.execute(sa.select(Verdict.pictures).where(Verdict.image_id == image.id)).scalars()
    for pictures in verdicts:
        for picture in pictures or []:
            if picture.get("sha256") == sha256:
                return picture
    return None
