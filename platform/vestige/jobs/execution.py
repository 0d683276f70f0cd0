"""Running one analysis task: a detector over a chunk of images. Plain functions, no Celery.

A task is claimed (its attempt counted and committed), run, and written in one
transaction: the verdicts are upserted, the task marked done, the progress
counted once, and the analysis completed if this was its last task. Running
the same task again finds it done and does nothing; a task whose worker was
lost before it wrote anything simply runs again, until ``jobs.max_retries``
is spent, after which its verdicts record that.
"""

from __future__ import annotations

import logging
import datetime as dt
import time
from collections.abc import Callable
from dataclasses import dataclass

import sqlalchemy as sa

from vestige.analysis.analyses import complete_if_finished, mark_started
from vestige.analysis.detect import decode_in_threads, decode_threads_for, make_input, run_detector
from vestige.analysis.verdicts import store_findings
from vestige.core.errors import NotFoundError
from vestige.core.logs import log_context
from vestige.core.plugins import format_exception_line
from vestige.core.workspace import Workspace
from vestige.db.models import Analysis, AnalysisTask, Image
from vestige.evidence.imagefile import ImageLimits
from vestige.plugin import Detector, Finding, ImageInput

log = logging.getLogger(__name__)

#: Returns the named detector, loaded for this process; raises if it cannot.
#: ``detectors(name, model_sha256)``: the loaded detector, running with that artifact when one is named.
DetectorSource = Callable[[str, str | None], Detector]

FINISHED = ("done", "failed")


@dataclass(frozen=True)
class TaskOutcome:
    task_id: int
    status: str  # done, failed, skipped
    images: int = 0
    detector_seconds: float = 0.0
    completed_analysis: bool = False


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def _claim(workspace: Workspace, task_id: int, worker: str) -> AnalysisTask | None:
    """Count an attempt and mark the task running; ``None`` if it is already finished."""
    with workspace.db.session() as session:
        task = session.get(AnalysisTask, task_id)
        if task is None:
            raise NotFoundError(f"analysis task {task_id} does not exist (its analysis was deleted?)")
        # Conditional, so a duplicate delivery arriving just after another
        # worker finished the task cannot set it back to running.
        claimed = session.execute(
            sa.update(AnalysisTask).where(AnalysisTask.id == task_id, AnalysisTask.status.notin_(FINISHED))
            .values(status="running", worker=worker, attempts=AnalysisTask.attempts + 1, started_at=_now())
            .execution_options(synchronize_session=False)
        ).rowcount
        if not claimed:
            return None
        mark_started(session, task.analysis_id)
        session.flush()
        session.refresh(task)
        session.expunge(task)
        return task


def _error_findings(task: AnalysisTask, detector: Detector | None, message: str) -> list[Finding]:
    version = detector.version if detector is not None else "?"
    return [Finding(detector=task.detector, detector_version=version, label="unknown", error=message) for _ in task.image_ids]


def _inputs(workspace: Workspace, task: AnalysisTask) -> tuple[list[ImageInput | None], list[str | None]]:
    """Decoded images of the chunk, in order; an image that cannot be read gets an error instead."""
    cfg = workspace.config.ingest
    limits = ImageLimits.from_config(cfg)
    with workspace.db.session() as session:
        rows = {image.id: image for image in session.execute(
            sa.select(Image).where(Image.id.in_(task.image_ids))).scalars()}

    def decode(image_id: int) -> ImageInput:
        image = rows.get(image_id)
        if image is None:
            raise NotFoundError(f"image {image_id} no longer exists")
        return make_input(workspace.store.get(image.blob_sha256), name=image.original_filename, limits=limits,
                          metadata=image.metadata_summary)

    mean_pixels = sum(row.width * row.height for row in rows.values()) / max(1, len(rows))
    threads = decode_threads_for(mean_pixels, workspace.config.jobs.decode_threads)
    decoded = decode_in_threads(decode, list(task.image_ids), threads)
    return [item for item, _ in decoded], [error for _, error in decoded]


def _run(workspace: Workspace, task: AnalysisTask, detectors: DetectorSource) -> tuple[list[Finding], float]:
    try:
        with workspace.db.session() as session:
            options = session.scalar(sa.select(Analysis.options).where(Analysis.id == task.analysis_id)) or {}
        detector = detectors(task.detector, options.get("models", {}).get(task.detector))
    except Exception as exc:  # not installed here, or its weights failed to load: recorded, not fatal
        log.warning("detector %s cannot be loaded; the task's findings record the error", task.detector, exc_info=True)
        return _error_findings(task, None, f"detector {task.detector} could not be loaded: {format_exception_line(exc)}"), 0.0
    inputs, errors = _inputs(workspace, task)
    readable = [item for item in inputs if item is not None]
    began = time.perf_counter()
    found = iter(run_detector(detector, readable,
                              max_tiles=int(options.get("max_tiles", workspace.config.tiles.max_tiles))))
    elapsed = time.perf_counter() - began
    findings = []
    for item, error in zip(inputs, errors):
        if item is None:
            findings.append(Finding(detector=detector.name, detector_version=detector.version, label="unknown", error=error))
        else:
            findings.append(next(found))
    return findings, elapsed


def run_analysis_task(workspace: Workspace, task_id: int, *, detectors: DetectorSource, worker: str) -> TaskOutcome:
    """Run analysis task ``task_id`` and write its verdicts; see the module docstring."""
    task = _claim(workspace, task_id, worker)
    if task is None:
        log.info("task %d is finished or taken by another worker; skipped", task_id)
        return TaskOutcome(task_id, "skipped")
    with log_context(task=task_id, analysis=task.analysis_id, detector=task.detector):
        log.info("running on %d image(s), attempt %d", len(task.image_ids), task.attempts)
        outcome = _run_claimed(workspace, task, detectors=detectors, worker=worker)
        log.info("%s in %.2f s; analysis %s", outcome.status, outcome.detector_seconds,
                 "complete" if outcome.completed_analysis else "goes on")
    return outcome


def _run_claimed(workspace: Workspace, task: AnalysisTask, *, detectors: DetectorSource, worker: str) -> TaskOutcome:
    max_attempts = workspace.config.jobs.max_retries + 1
    if task.attempts > max_attempts:
        status, seconds = "failed", 0.0
        findings = _error_findings(task, None, f"gave up after {task.attempts - 1} attempts: each time its worker was "
                                                f"lost or failed (jobs.max_retries = {max_attempts - 1})")
    else:
        status = "done"
        findings, seconds = _run(workspace, task, detectors)
    return TaskOutcome(task.id, status, len(task.image_ids), seconds,
                       _write(workspace, task, findings, status=status, worker=worker))


def fail_analysis_task(workspace: Workspace, task_id: int, message: str, *, worker: str) -> None:
    """Record a task that cannot succeed: its verdicts carry ``message`` and the analysis goes on."""
    with workspace.db.session() as session:
        task = session.get(AnalysisTask, task_id)
        if task is None or task.status in FINISHED:
            return
        session.expunge(task)
    _write(workspace, task, _error_findings(task, None, message), status="failed", worker=worker)


def _write(workspace: Workspace, task: AnalysisTask, findings: list[Finding], *, status: str, worker: str) -> bool:
    with workspace.db.session() as session:
        # Lock the analysis first, so that two workers finishing its last two
        # tasks at once take turns and the second sees the first's task done.
        session.execute(sa.select(Analysis.id).where(Analysis.id == task.analysis_id).with_for_update()).all()
        store_findings(session, workspace.store, task.analysis_id, zip(task.image_ids, findings))
        error = next((f.error for f in findings if f.error), None) if status == "failed" else None
        changed = session.execute(
            sa.update(AnalysisTask).where(AnalysisTask.id == task.id, AnalysisTask.status.notin_(FINISHED))
            .values(status=status, finished_at=_now(), error=error)
            .execution_options(synchronize_session=False)
        ).rowcount
        if changed:  # count progress once, whoever writes the task first
            session.execute(
                sa.update(Analysis).where(Analysis.id == task.analysis_id)
                .values(progress_done=Analysis.progress_done + len(task.image_ids))
                .execution_options(synchronize_session=False)
            )
        return complete_if_finished(session, task.analysis_id, actor=worker)
