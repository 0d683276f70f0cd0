"""A case with evidence and a finished analysis, made through the CLI and the ORM (no worker needed).

Used by the report and bundle tests: three images (one a re-shared copy of
another, so a near-duplicate), two detectors that disagree on one image, a
picture stored as a blob, robustness results, and the merged verdicts.
"""

from __future__ import annotations

import numpy as np

from vestige.analysis.merge import merge_verdicts
from vestige.core.workspace import Workspace
from vestige.db.models import Analysis, Blob, Image, Verdict, utcnow
from vestige.evidence.cases import get_case
from vestige.plugin.pixels import PIXELS_MEDIA_TYPE, pack_pixels

REFERENCE = "LAB-2026-0042"
KINDS = {"metadata": "provenance", "cls-a": "attribution"}


def fingerprint_pixels(seed: int) -> bytes:
    """A deferred picture (raw grey pixels, rendered as PNG where it is shown), as detectors store them."""
    rng = np.random.default_rng(seed)
    return pack_pixels((rng.random((48, 48)) * 255).astype(np.uint8), zoom=2)


def make_evidence(vestige, make_photo, reference: str = REFERENCE) -> None:
    assert vestige("init").exit_code == 0
    assert vestige("case", "new", "--ref", reference, "--title", "Forum post images").exit_code == 0
    files = [make_photo("astronaut.jpg", seed=1, size=96, quality=92), make_photo("coffee.png", seed=2, fmt="PNG", size=80),
             make_photo("astronaut-reshared.jpg", seed=1, size=96, quality=60)]
    result = vestige("ingest", reference, *files, "--source", "forum thread 118", "--by", "A. Examiner")
    assert result.exit_code == 0, result.stderr


def add_finished_analysis(workspace: Workspace, reference: str = REFERENCE) -> dict[str, int]:
    """Store an analysis with verdicts and its summary, as a worker would; returns image ids by file name."""
    with workspace.db.session() as session:
        case = get_case(session, reference)
        images = {i.original_filename.rsplit("/", 1)[-1]: i for i in session.query(Image).filter_by(case_id=case.id)}
        picture = fingerprint_pixels(7)
        picture_sha = workspace.store.put(picture)
        session.add(Blob(sha256=picture_sha, size=len(picture), media_type=PIXELS_MEDIA_TYPE))
        analysis = Analysis(case_id=case.id, status="done", detectors=["cls-a", "metadata"], requested_by="A. Examiner",
                            options={"kinds": KINDS}, progress_done=6, progress_total=6, finished_at=utcnow())
        session.add(analysis)
        session.flush()
        findings = {
            "astronaut.jpg": [("cls-a", "synthetic", "gan-3", {"real": 0.04, "gan-3": 0.91, "gan-7": 0.05}, 0.91),
                              ("metadata", "synthetic", "gan-3", {}, None)],
            "coffee.png": [("cls-a", "real", None, {"real": 0.83, "gan-3": 0.1, "gan-7": 0.07}, 0.83),
                           ("metadata", "synthetic", "gan-7", {}, None)],
            "astronaut-reshared.jpg": [("cls-a", "synthetic", "gan-3", {"real": 0.2, "gan-3": 0.7, "gan-7": 0.1}, 0.7),
                                       ("metadata", "unknown", None, {}, None)],
        }
        merged = {}
        for name, rows in findings.items():
            for detector, label, source, scores, confidence in rows:
                session.add(Verdict(
                    analysis_id=analysis.id, image_id=images[name].id, detector=detector, detector_version="1.0.0",
                    model_sha256=("ab" * 32) if detector == "cls-a" else None, label=label, source=source, scores=scores,
                    confidence=confidence, evidence={"residual_energy": 0.123456789} if detector == "cls-a" else {},
                    pictures=[{"name": "fingerprint", "caption": "Residual fingerprint.", "media_type": PIXELS_MEDIA_TYPE,
                               "sha256": picture_sha}] if detector == "cls-a" else [],
                    runtime_ms=12.5,
                ))
            merged[str(images[name].id)] = merge_verdicts(
                [{"detector": d, "kind": KINDS[d], "label": lab, "source": src, "confidence": c} for d, lab, src, _, c in rows]
            )
        first = str(images["astronaut.jpg"].id)
        robustness = {first: {
            "probes": {"jpeg-75": 990, "resize-0.5": 991},
            "detectors": {"cls-a": {"label": "synthetic", "source": "gan-3", "under": {
                "jpeg-75": {"image_id": 990, "label": "synthetic", "source": "gan-3", "holds": True},
                "resize-0.5": {"image_id": 991, "label": "real", "source": None, "holds": False}}}},
            "merged": {"label": "synthetic", "source": "gan-3", "under": {
                "jpeg-75": {"image_id": 990, "label": "synthetic", "outcome": "agree", "holds": True},
                "resize-0.5": {"image_id": 991, "label": "synthetic", "outcome": "conflict", "holds": True}}},
        }}
        analysis.summary = {"version": 1, "images": merged, "robustness": robustness}
        return {name: image.id for name, image in images.items()}
