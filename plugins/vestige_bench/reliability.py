"""How well a detector's confidences match its accuracy on a dataset's test images.

``vestige bench calibration --dataset DIR --detector NAME [--model REF]`` runs
an attribution detector on the test images of one condition (clean by
default) and reports, per class group and overall:

- ``ece``: expected calibration error over 15 equal-width confidence bins
  (lo, hi]: the size-weighted mean of |accuracy − confidence|, where the
  confidence is the finding's ``confidence`` (else its largest score) and an
  image counts as right when its top-scoring class is its true source
  (closed-set, whatever the ``unknown`` threshold decided);
- ``nll``: mean −log of the score of the true source (scores clipped at 1e-12);
- ``closed_set_accuracy``, ``attribution_accuracy`` (``unknown`` wrong, as
  ``vestige bench run`` counts it), ``unknown_rate``, ``mean_confidence``;
- ``bins``: the reliability diagram as numbers (count, accuracy, confidence).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

from vestige.analysis.detect import run_detector
from vestige.models.datasets import Dataset, Record
from vestige.plugin import Detector, Finding
from vestige.plugin.calibration import ECE_BINS, calibration_bins
from vestige_bench.harness import UNKNOWN, predicted_source

__all__ = ["calibration_metrics", "markdown_table", "run_calibration"]

FORMAT = "vestige-calibration-results/1"

def _confidence(finding: Finding) -> float | None:
    if finding.error or not finding.scores:
        return None
    return finding.confidence if finding.confidence is not None else max(finding.scores.values())


def calibration_metrics(true: Sequence[str], findings: Sequence[Finding]) -> dict[str, Any]:
    """The numbers of the module docstring for one group of images."""
    scored = [(t, f, c) for t, f in zip(true, findings) if (c := _confidence(f)) is not None]
    correct = [max(f.scores, key=f.scores.__getitem__) == t for t, f, _ in scored]
    ece, bins = calibration_bins([c for _, _, c in scored], correct)
    predicted = [predicted_source(f) for f in findings]
    n = len(findings)
    return {
        "n": n,
        "scored": len(scored),
        "ece": ece,
        "nll": (sum(-math.log(max(f.scores.get(t, 0.0), 1e-12)) for t, f, _ in scored) / len(scored)) if scored else None,
        "closed_set_accuracy": (sum(correct) / len(scored)) if scored else None,
        "attribution_accuracy": (sum(t == p for t, p in zip(true, predicted)) / n) if n else None,
        "unknown_rate": (sum(p == UNKNOWN for p in predicted) / n) if n else None,
        "mean_confidence": (sum(c for _, _, c in scored) / len(scored)) if scored else None,
        "bins": bins,
    }


def run_calibration(dataset: Dataset, detector: Detector, *, condition: str = "clean", limit: int | None = None,
                    command: str = "", progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Run ``detector`` (artifact attached and loaded by the caller) on one test condition; metrics per class group."""
    say = progress or (lambda _: None)
    groups: dict[str, list[Record]] = {}
    for group in ("seen", "unseen"):
        records = dataset.records(split="test", condition=condition, class_group=group)
        if limit is not None:
            taken: dict[str, int] = {}
            kept = []
            for record in records:
                taken[record.source] = taken.get(record.source, 0) + 1
                if taken[record.source] <= limit:
                    kept.append(record)
            records = kept
        if records:
            groups[group] = records
    result: dict[str, Any] = {
        "format": FORMAT, "command": command, "dataset": str(dataset.path), "dataset_sha256": dataset.sha256,
        "detector": detector.name, "detector_version": detector.version, "model_sha256": detector.model_sha256,
        "condition": condition, "bins": ECE_BINS, "groups": {},
    }
    everything: tuple[list[str], list[Finding]] = ([], [])
    for group, records in groups.items():
        say(f"{detector.name}: {len(records)} {condition} test images of {group} classes")
        findings = run_detector(detector, dataset.inputs(records))
        true = [r.source for r in records]
        result["groups"][group] = calibration_metrics(true, findings)
        everything[0].extend(true)
        everything[1].extend(findings)
    result["groups"]["all"] = calibration_metrics(*everything)
    return result


def markdown_table(result: dict[str, Any]) -> str:
    """One row per class group."""
    def cell(value: float | None, digits: int = 3) -> str:
        return "–" if value is None else f"{value:.{digits}f}"

    lines = [f"`{result['command']}`", "",
             "| detector | condition | classes | images | ECE (15 bins) | NLL | closed-set accuracy | "
             "attribution (unknown = wrong) | unknown | mean confidence |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for group, m in result["groups"].items():
        lines.append(f"| {result['detector']} | {result['condition']} | {group} | {m['n']} | {cell(m['ece'])} | "
                     f"{cell(m['nll'])} | {cell(m['closed_set_accuracy'])} | {cell(m['attribution_accuracy'])} | "
                     f"{cell(m['unknown_rate'])} | {cell(m['mean_confidence'])} |")
    return "\n".join(lines) + "\n"
