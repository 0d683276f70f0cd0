"""Analyses: requesting one, recording its progress, and completing it with the merged verdicts.

An analysis runs detectors over a case's evidence images (and, with
robustness probes, over their perturbed derivatives). Its work is cut into
:class:`~vestige.db.models.AnalysisTask` rows, one per (detector, chunk of
images); workers run them (:mod:`vestige.jobs.execution`). When the last task
is done, the analysis is completed once: every image's findings are merged
(:func:`vestige.analysis.merge.merge_verdicts`) into ``Analysis.summary``::

    {"version": 1, "images": {"<image id>": merged, ...}, "robustness": {...}}
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from vestige.analysis.merge import merge_verdicts
from vestige.analysis.robustness import create_derivatives, robustness_summary
from vestige.analysis.verdicts import analysis_verdicts, findings_for_merge
from vestige.core.errors import InvalidInputError, NotFoundError
from vestige.core.plugins import VestigePluginManager
from vestige.core.workspace import Workspace
from vestige.db.models import Analysis, AnalysisTask, Case, Image, utcnow
from vestige.evidence.cases import require_open
from vestige.evidence.custody import record_event
from vestige.jobs.recovery import live_queues
from vestige.jobs.settings import queue_for_device
from vestige.models.artifacts import Registry, pinned_models
from vestige.plugin import Detector

SUMMARY_VERSION = 1


def latest_analysis(session: Session, case: Case, *, finished: bool = False) -> Analysis | None:
    """The case's most recent analysis, finished or not (only finished ones with ``finished``); ``None`` if none."""
    query = sa.select(Analysis).where(Analysis.case_id == case.id)
    if finished:
        query = query.where(Analysis.finished_at.is_not(None))
    return session.execute(query.order_by(Analysis.id.desc()).limit(1)).scalar_one_or_none()


def get_analysis(session: Session, analysis_id: int) -> Analysis:
    analysis = session.get(Analysis, analysis_id)
    if analysis is None:
        raise NotFoundError(f"there is no analysis {analysis_id}; `vestige verdicts CASE` shows a case's latest")
    return analysis


def evidence_images(session: Session, case: Case) -> list[Image]:
    return list(session.execute(
        sa.select(Image).where(Image.case_id == case.id, Image.origin == "evidence").order_by(Image.id)
    ).scalars())


def request_analysis(workspace: Workspace, session: Session, case: Case, detectors: Sequence[Detector], *,
                     pm: VestigePluginManager, actor: str, robustness: bool = False) -> Analysis:
    """Create an analysis and its tasks (and the robustness derivatives), in the caller's transaction."""
    require_open(case)
    originals = evidence_images(session, case)
    if not originals:
        raise InvalidInputError(f"case {case.reference} has no evidence images to analyse; ingest some first")
    images = list(originals)
    probes: dict[str, dict[str, int]] = {}
    if robustness:
        for parent_id, by_probe in create_derivatives(workspace, session, case, originals, pm, actor=actor).items():
            images += by_probe.values()
            probes[str(parent_id)] = {name: image.id for name, image in by_probe.items()}
    image_ids = [image.id for image in images]
    analysis = Analysis(
        case_id=case.id, status="queued", detectors=[d.name for d in detectors], requested_by=actor,
        progress_done=0, progress_total=len(image_ids) * len(detectors),
        options={
            "robustness": robustness, "images": image_ids, "probes": probes,
            "kinds": {d.name: d.kind for d in detectors}, "devices": {d.name: d.device for d in detectors},
            # Every verdict of this analysis comes from these weights, even if the default changes meanwhile.
            "models": pinned_models(detectors, Registry(session, workspace.store)),
            # ... and from the same choice of tiles, whatever the configuration of the worker that runs it.
            "max_tiles": workspace.config.tiles.max_tiles,
        },
    )
    session.add(analysis)
    session.flush()
    size = workspace.config.jobs.images_per_task
    served = live_queues(session, workspace.config)
    for detector in detectors:
        for chunk, start in enumerate(range(0, len(image_ids), size)):
            session.add(AnalysisTask(analysis_id=analysis.id, detector=detector.name, chunk=chunk,
                                     image_ids=image_ids[start:start + size], queue=queue_for_device(detector.device, served)))
    record_event(session, case, actor=actor, action="analysis.requested", details={
        "analysis_id": analysis.id, "detectors": analysis.detectors, "images": len(originals),
        "derived_images": len(image_ids) - len(originals), "robustness": robustness,
    })
    session.flush()
    return analysis


def tasks_of(session: Session, analysis: Analysis) -> list[AnalysisTask]:
    return list(session.execute(
        sa.select(AnalysisTask).where(AnalysisTask.analysis_id == analysis.id).order_by(AnalysisTask.id)
    ).scalars())


def build_summary(session: Session, analysis: Analysis) -> dict[str, Any]:
    """The merged verdict of every image, and robustness under the probes (see the module docstring)."""
    findings = findings_for_merge(analysis_verdicts(session, analysis), analysis.options.get("kinds", {}))
    merged = {image_id: merge_verdicts(findings.get(image_id, [])) for image_id in analysis.options.get("images", [])}
    probes = {int(parent): dict(by_probe) for parent, by_probe in analysis.options.get("probes", {}).items()}
    return {
        "version": SUMMARY_VERSION,
        "images": {str(image_id): value for image_id, value in merged.items()},
        "robustness": robustness_summary(probes, findings, merged),
    }


def complete_if_finished(session: Session, analysis_id: int, *, actor: str) -> bool:
    """Complete the analysis if every task is done; exactly one caller wins. Returns whether this one did.

    The claim is a single conditional UPDATE, so two workers finishing the
    last two tasks at once cannot both complete it (on SQLite the write lock
    serialises them; on PostgreSQL the row lock does).
    """
    unfinished = sa.select(sa.func.count()).select_from(AnalysisTask).where(
        AnalysisTask.analysis_id == analysis_id, AnalysisTask.status.notin_(("done", "failed"))
    ).scalar_subquery()
    claimed = session.execute(
        sa.update(Analysis)
        .where(Analysis.id == analysis_id, Analysis.finished_at.is_(None), unfinished == 0)
        .values(finished_at=utcnow())
        .execution_options(synchronize_session=False)
    ).rowcount
    if claimed != 1:
        return False
    analysis = session.get(Analysis, analysis_id, populate_existing=True)
    assert analysis is not None
    failed = session.execute(
        sa.select(sa.func.count()).select_from(AnalysisTask)
        .where(AnalysisTask.analysis_id == analysis_id, AnalysisTask.status == "failed")
    ).scalar_one()
    analysis.summary = build_summary(session, analysis)
    analysis.status = "done"
    analysis.error = f"{failed} task(s) failed; their verdicts record the error" if failed else None
    outcomes: dict[str, int] = {}
    for merged in analysis.summary["images"].values():
        outcomes[merged["outcome"]] = outcomes.get(merged["outcome"], 0) + 1
    case = session.get(Case, analysis.case_id)
    assert case is not None
    record_event(session, case, actor=actor, action="analysis.completed", details={
        "analysis_id": analysis.id, "verdicts": analysis.progress_done, "outcomes": dict(sorted(outcomes.items())),
        "failed_tasks": failed,
    })
    return True


def mark_started(session: Session, analysis_id: int) -> None:
    """Move a queued analysis to running (idempotent)."""
    session.execute(
        sa.update(Analysis).where(Analysis.id == analysis_id, Analysis.status == "queued")
        .values(status="running", started_at=dt.datetime.now(dt.timezone.utc))
        .execution_options(synchronize_session=False)
    )
