"""Closed-set attribution accuracy, the paper's metric: the most probable source, never ``unknown``.

``vestige bench run`` counts an ``unknown`` finding as wrong, as a lab's
decision would. The ManiFPT paper reports closed-set accuracy instead: the
source with the highest score, whatever its probability. This module gives
that number for any attribution detector whose ``scores`` are per-source
probabilities, so ManiFPT and the fingerprint classifier are compared on the
same images the same way.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

CONDITION = "clean"


def closed_set_source(scores: Mapping[str, float], sources: Sequence[str]) -> str | None:
    """The dataset source with the highest score (first in source order on ties); ``None`` without scores."""
    known = [(scores[s], -i, s) for i, s in enumerate(sources) if s in scores]
    return max(known)[2] if known else None


def evaluate(detectors: Mapping[str, Any], dataset: Any, *, limit: int | None = None, condition: str = CONDITION,
             progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Closed-set and open-set accuracy per detector, per class group (seen / unseen / all) of ``condition`` test images.

    ``limit`` keeps at most that many images per source, half from the seen classes and half from the unseen ones.
    """
    from vestige.plugin.services import run_detector

    say = progress or (lambda _: None)
    records = []
    for source in dataset.sources:
        for group in ("seen", "unseen"):  # a limit takes half from each class group, not the first files
            mine = [r for r in dataset.records(split="test", condition=condition, class_group=group) if r.source == source]
            records += mine[: (limit + 1) // 2] if limit else mine
    say(f"{len(records)} {condition} test images")
    inputs = dataset.inputs(records)
    groups = {"seen": [dataset.class_group(r) == "seen" for r in records],
              "unseen": [dataset.class_group(r) == "unseen" for r in records], "all": [True] * len(records)}
    out: dict[str, Any] = {"dataset_sha256": dataset.sha256, "condition": condition, "images": len(records),
                           "detectors": {}}
    for name, detector in detectors.items():
        say(f"{name}: analysing")
        findings = run_detector(detector, inputs)
        closed = np.array([closed_set_source(f.scores, dataset.sources) == r.source for f, r in zip(findings, records)])
        opened = np.array([(f.label != "unknown" and (f.source or "real") == r.source) for f, r in zip(findings, records)])
        row: dict[str, Any] = {"model_sha256": detector.model_sha256,
                               "errors": sum(f.error is not None for f in findings)}
        for group, mask in groups.items():
            mask = np.asarray(mask)
            row[group] = {"images": int(mask.sum()),
                          "closed_set_accuracy": float(closed[mask].mean()) if mask.any() else None,
                          "open_set_accuracy": float(opened[mask].mean()) if mask.any() else None}
        row["per_source_closed_set"] = {s: float(closed[[r.source == s for r in records]].mean())
                                        for s in dataset.sources if any(r.source == s for r in records)}
        out["detectors"][name] = row
    return out


def markdown(result: Mapping[str, Any]) -> str:
    lines = ["| detector | classes | images | closed-set accuracy | with `unknown` (counted wrong) |",
             "| --- | --- | ---: | ---: | ---: |"]
    for name, row in result["detectors"].items():
        for group in ("seen", "unseen", "all"):
            g = row[group]
            if g["images"]:
                lines.append(f"| {name} | {group} | {g['images']} | {100 * g['closed_set_accuracy']:.1f} % | "
                             f"{100 * g['open_set_accuracy']:.1f} % |")
    return "\n".join(lines)
