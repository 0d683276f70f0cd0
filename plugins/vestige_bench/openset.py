"""Open-set evaluation: does a detector refuse to attribute images of a generator it was never shown?

``vestige bench openset --dataset DIR --detector NAME --holdout GENERATOR``
trains the detector on the dataset with one generator removed from the train
and val splits, then runs it on the clean test images of every source. The
held-out generator's images are the *unknown* positives, the known sources'
images the negatives:

- ``auroc``: AUROC of the unknown score ``1 − confidence`` (the calibrated
  maximum probability; without a confidence, the largest score), held-out
  images against known ones. Threshold-free: how well the score separates.
- ``heldout_attributed_rate``: the share of held-out images the detector
  attributes to a known class (``real`` included) instead of ``unknown``, at
  its own threshold, and where they went.
- ``heldout_attributed_when_keeping_known``: the same share at the thresholds
  that keep 99 % and 95 % of the known test images attributed: a comparison
  of unknown scores across detectors that does not depend on their own rules.
- ``known_accuracy`` (``unknown`` counts as wrong, as in ``vestige bench run``),
  ``known_closed_set_accuracy`` (the top-scoring class, ignoring ``unknown``)
  and ``known_unknown_rate``: what the threshold costs on known sources.

Images are decoded and run exactly as the platform runs them
(:meth:`Dataset.inputs` and :func:`vestige.analysis.detect.run_detector`).
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from vestige.analysis.detect import run_detector
from vestige.core.errors import InvalidInputError
from vestige.models import domainfit
from vestige.models.attribution_metrics import auroc
from vestige.models.datasets import Dataset
from vestige.plugin import Finding
from vestige.plugin.training import REAL, ArtifactFile, TrainableDetector, TrainingSet
from vestige_bench.harness import UNKNOWN, predicted_source

__all__ = ["holdout_training_set", "markdown_report", "openset_metrics", "run_openset"]

FORMAT = "vestige-openset-results/1"

Progress = Callable[[str], None]


def holdout_training_set(dataset: Dataset, holdout: str, *, augment: bool = True) -> TrainingSet:
    """The dataset's train and val splits without ``holdout``'s images, and without it among the sources."""
    if holdout not in dataset.sources:
        raise InvalidInputError(f"--holdout {holdout!r} is not a source of {dataset.path}; its sources: "
                                f"{', '.join(dataset.sources)}")
    if holdout == REAL:
        raise InvalidInputError("--holdout names a generator; real images cannot be held out of attribution")
    full = dataset.training_set(augment=augment)
    sources = tuple(s for s in full.sources if s != holdout)
    if len(sources) < 2:
        raise InvalidInputError(f"{dataset.path} has too few sources to hold one out")
    return TrainingSet(train=[e for e in full.train if e.source != holdout],
                       validation=[e for e in full.validation if e.source != holdout], sources=sources,
                       dataset_sha256=full.dataset_sha256, name=f"{full.name} without {holdout}", augment=full.augment)


def _unknown_score(finding: Finding) -> float | None:
    if finding.error:
        return None
    if finding.confidence is not None:
        return 1.0 - finding.confidence
    return 1.0 - max(finding.scores.values()) if finding.scores else None


def _top_scored(finding: Finding) -> str | None:
    return max(finding.scores, key=finding.scores.__getitem__) if finding.scores and not finding.error else None


def openset_metrics(true: Sequence[str], findings: Sequence[Finding], holdout: str) -> dict[str, Any]:
    """Every number of the open-set evaluation from the true sources and the findings (see the module)."""
    known = [(t, f) for t, f in zip(true, findings) if t != holdout]
    held = [f for t, f in zip(true, findings) if t == holdout]
    scores = [(s, t == holdout) for t, f in zip(true, findings) if (s := _unknown_score(f)) is not None]
    held_predicted = [predicted_source(f) for f in held]
    attributed = [p for p in held_predicted if p != UNKNOWN]
    known_predicted = [predicted_source(f) for _, f in known]

    def share(count: int, total: int) -> float | None:
        return count / total if total else None

    known_scores = sorted(s for s, held_out in scores if not held_out)
    held_scores = [s for s, held_out in scores if held_out]

    def attributed_when_keeping(keep: float) -> float | None:
        # the threshold that keeps a share `keep` of the known images attributed, whatever the detector's own rule
        if not known_scores or not held_scores:
            return None
        cut = known_scores[min(len(known_scores) - 1, max(0, int(round(keep * len(known_scores))) - 1))]
        return sum(s <= cut for s in held_scores) / len(held_scores)

    return {
        "holdout": holdout,
        "n_known": len(known),
        "n_heldout": len(held),
        "errors": sum(1 for f in findings if f.error),
        "auroc": auroc([s for s, _ in scores], [p for _, p in scores]),
        "heldout_attributed_rate": share(len(attributed), len(held)),
        "heldout_unknown_rate": share(len(held) - len(attributed), len(held)),
        "heldout_attributed_to": dict(Counter(attributed).most_common()),
        "heldout_attributed_when_keeping_known": {"0.99": attributed_when_keeping(0.99),
                                                  "0.95": attributed_when_keeping(0.95)},
        "heldout_mean_confidence": share(sum(f.confidence or 0.0 for f in held), len(held)),
        "known_accuracy": share(sum(t == p for (t, _), p in zip(known, known_predicted)), len(known)),
        "known_closed_set_accuracy": share(sum(t == _top_scored(f) for t, f in known), len(known)),
        "known_unknown_rate": share(sum(p == UNKNOWN for p in known_predicted), len(known)),
        "per_source_unknown_rate": {
            s: share(sum(predicted_source(f) == UNKNOWN for t, f in zip(true, findings) if t == s),
                     sum(t == s for t in true))
            for s in dict.fromkeys(true)
        },
    }


def run_openset(dataset: Dataset, detector: TrainableDetector, holdout: str, *, seed: int = 0,
                options: Mapping[str, Any] | None = None, device: str = "cpu", limit: int | None = None,
                out: Path | None = None, command: str = "", progress: Progress | None = None,
                artifact: ArtifactFile | None = None) -> dict[str, Any]:
    """Train without ``holdout`` (or use ``artifact``, trained so), evaluate on every source's clean test images.

    JSON and Markdown go to ``out``, with the trained model.
    """
    say = progress or (lambda _: None)
    if not isinstance(detector, TrainableDetector):
        raise InvalidInputError(f"detector {detector.name} does not train, so no source can be held out of it")
    validation: dict[str, Any] = {}
    calibration: dict[str, Any] = {}
    if artifact is None:
        data = holdout_training_set(dataset, holdout)
        say(f"training {detector.name} on {len(data.train)} images of {len(data.sources)} sources (without {holdout})")
        model = domainfit.train(detector, data, seed=seed, options=dict(options or {}), progress=say, device=device)
        artifact = ArtifactFile.from_bytes(model.data, origin="trained", name=f"{detector.name} without {holdout}")
        known_sources = list(data.sources)
        validation, calibration = dict(model.metrics), dict(model.calibration)
    else:
        known_sources = list(artifact.info.get("sources") or [])
        if holdout in known_sources:
            raise InvalidInputError(f"model artifact {artifact.sha256[:12]}… was trained with {holdout}; "
                                    "give one trained without it")
    detector.use_artifact(artifact)
    detector.load(device)
    records = dataset.records(split="test", condition="clean")
    if limit is not None:
        taken: Counter[str] = Counter()
        chosen = []
        for record in records:
            taken[record.source] += 1
            if taken[record.source] <= limit:
                chosen.append(record)
        records = chosen
    say(f"running {detector.name} on {len(records)} clean test images")
    findings = run_detector(detector, dataset.inputs(records))
    result = {
        "format": FORMAT,
        "command": command,
        "dataset": str(dataset.path),
        "dataset_sha256": dataset.sha256,
        "detector": detector.name,
        "detector_version": detector.version,
        "model_sha256": artifact.sha256,
        "seed": seed,
        "options": dict(options or {}),
        "known_sources": known_sources,
        "validation": validation,
        "calibration": calibration,
        "test": {"split": "test", "condition": "clean", "limit": limit},
        "metrics": openset_metrics([r.source for r in records], findings, holdout),
    }
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        (out / "openset.json").write_text(json.dumps(result, indent=2, sort_keys=True, default=str) + "\n")
        (out / "openset.md").write_text(markdown_report(result))
        (out / f"{detector.name}-without-{holdout}-{artifact.sha256[:8]}.safetensors").write_bytes(artifact.data)
    return result


def _percent(value: float | None) -> str:
    return "–" if value is None else f"{100 * value:.1f} %"


def markdown_report(result: Mapping[str, Any]) -> str:
    """The result as a Markdown table, with the command that produced it."""
    m = result["metrics"]
    where = ", ".join(f"{k} {v}" for k, v in m["heldout_attributed_to"].items()) or "none"
    lines = [
        f"Open set: {result['detector']} trained without `{m['holdout']}` on {result['dataset']} "
        f"(`{result['dataset_sha256'][:12]}`), seed {result['seed']}",
        "",
        f"`{result.get('command') or 'run_openset'}`",
        "",
        "| detector | held out | AUROC (unknown vs known) | held-out attributed to a known class | "
        "known accuracy (unknown = wrong) | known closed-set accuracy | known → unknown |",
        "| --- | --- | --- | --- | --- | --- | --- |",
        f"| {result['detector']} | `{m['holdout']}` ({m['n_heldout']} images) | "
        f"{'–' if m['auroc'] is None else format(m['auroc'], '.3f')} | {_percent(m['heldout_attributed_rate'])} | "
        f"{_percent(m['known_accuracy'])} | {_percent(m['known_closed_set_accuracy'])} | {_percent(m['known_unknown_rate'])} |",
        "",
        f"Held-out images attributed to: {where}. At the thresholds keeping 99 % / 95 % of the known test images "
        f"attributed, {_percent(m['heldout_attributed_when_keeping_known']['0.99'])} / "
        f"{_percent(m['heldout_attributed_when_keeping_known']['0.95'])} of the held-out images would be attributed.",
        "",
    ]
    return "\n".join(lines)
