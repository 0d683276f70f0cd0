"""What an analysis can run, what it will cost, and how far it has got.

The web form and ``vestige analyze`` choose detectors the same way: a
trainable detector without a model cannot run (:func:`vestige.models.artifacts.runnable`
says so), and a detector that does not run by default (``runs_by_default =
False``, such as inversion) runs only when asked for. The cost of a detector
is estimated from the per-image run time of its latest findings in this
workspace, or, before it has ever run here, from the ``seconds_per_image``
its plugin declares.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from vestige.core.plugins import VestigePluginManager, get_detectors
from vestige.db.models import Analysis, AnalysisTask, Verdict
from vestige.evidence.store import BlobStore
from vestige.models.artifacts import Registry, runnable
from vestige.plugin import Detector
from vestige.plugin.training import TrainableDetector, no_model_message

#: How many of a detector's latest findings its measured cost is taken from.
MEASURED_FINDINGS = 200
#: A detector slower than this per image is marked slow even if it runs by default.
SLOW_SECONDS_PER_IMAGE = 5.0


@dataclass(frozen=True)
class DetectorOption:
    """One installed detector as a choice for an analysis."""

    name: str
    kind: str
    description: str
    #: Why it cannot run now (no trained model), or ``None`` when it can.
    unavailable: str | None
    #: Runs when no detector is named (and is pre-checked on the web form).
    default: bool
    #: Seconds per image, measured here or declared by the plugin; ``None`` when neither is known.
    seconds_per_image: float | None
    #: ``measured`` (from findings in this workspace), ``declared`` (by the plugin) or ``None``.
    basis: str | None

    @property
    def slow(self) -> bool:
        return (self.seconds_per_image or 0.0) >= SLOW_SECONDS_PER_IMAGE

    def estimate_s(self, images: int) -> float | None:
        return None if self.seconds_per_image is None else self.seconds_per_image * images


def measured_seconds_per_image(session: Session, detector: str) -> float | None:
    """Median run time per image of ``detector``'s latest findings without error, in seconds."""
    rows = session.execute(
        sa.select(Verdict.runtime_ms).where(Verdict.detector == detector, Verdict.error.is_(None),
                                            Verdict.runtime_ms.is_not(None))
        .order_by(Verdict.id.desc()).limit(MEASURED_FINDINGS)
    ).scalars().all()
    return statistics.median(rows) / 1000 if rows else None


def _cost(session: Session, detector: Detector) -> tuple[float | None, str | None]:
    measured = measured_seconds_per_image(session, detector.name)
    if measured is not None:
        return measured, "measured"
    declared = detector.seconds_per_image
    return (float(declared), "declared") if declared is not None else (None, None)


def detector_options(session: Session, store: BlobStore, pm: VestigePluginManager) -> list[DetectorOption]:
    """Every installed detector, whether it can run now, whether it runs by default, and its cost per image."""
    registry = Registry(session, store)
    options = []
    for detector in get_detectors(pm).values():
        ready, _ = runnable([detector], registry, named=False)
        unavailable = None if ready else no_model_message(detector) if isinstance(detector, TrainableDetector) else "cannot run"
        seconds, basis = _cost(session, detector)
        options.append(DetectorOption(
            name=detector.name, kind=detector.kind, description=detector.description, unavailable=unavailable,
            default=bool(ready) and detector.runs_by_default, seconds_per_image=seconds, basis=basis,
        ))
    return options


def describe_duration(seconds: float | None) -> str:
    """``about 40 s``, ``about 8 min``, ``about 2.5 h``; ``unknown`` without a number."""
    if seconds is None:
        return "unknown"
    if seconds < 60:
        return f"about {max(1, round(seconds))} s"
    if seconds < 3600:
        return f"about {round(seconds / 60)} min"
    return f"about {seconds / 3600:.1f} h"


def detector_progress(session: Session, analysis: Analysis) -> list[dict[str, Any]]:
    """Per detector of an analysis: findings done of total, status, and the seconds left by its measured pace.

    The pace is the mean run time per image of the findings this analysis has
    already stored for that detector; before the first one, the detector's
    cost from earlier analyses (:func:`measured_seconds_per_image`), if any.
    """
    images = len((analysis.options or {}).get("images", []))
    done = {name: (n, mean_ms) for name, n, mean_ms in session.execute(
        sa.select(Verdict.detector, sa.func.count(), sa.func.avg(Verdict.runtime_ms))
        .where(Verdict.analysis_id == analysis.id).group_by(Verdict.detector)
    ).all()}
    statuses: dict[str, set[str]] = {}
    for name, status in session.execute(
        sa.select(AnalysisTask.detector, AnalysisTask.status).where(AnalysisTask.analysis_id == analysis.id)
    ).all():
        statuses.setdefault(name, set()).add(status)
    rows = []
    for name in analysis.detectors or []:
        n, mean_ms = done.get(name, (0, None))
        states = statuses.get(name, set())
        status = ("failed" if "failed" in states and states <= {"done", "failed"} else "done" if states <= {"done"} and states
                  else "running" if "running" in states or n else "queued")
        per_image = float(mean_ms) / 1000 if mean_ms is not None else (
            None if status == "done" else measured_seconds_per_image(session, name))
        left = None if status in ("done", "failed") or per_image is None else per_image * max(images - n, 0)
        rows.append({"detector": name, "done": n, "total": images, "status": status,
                     "seconds_left": None if left is None else round(left, 1)})
    return rows


def seconds_left(progress: list[dict[str, Any]]) -> float | None:
    """The analysis's time left if its detectors run one after another; ``None`` when a pace is unknown."""
    pending = [row for row in progress if row["status"] not in ("done", "failed")]
    if any(row["seconds_left"] is None for row in pending):
        return None
    return sum(row["seconds_left"] for row in pending)
