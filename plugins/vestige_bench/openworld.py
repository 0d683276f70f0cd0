"""``vestige bench openworld``: does a detector accuse real photographs, or name generators it never saw?

Three measurements, per detector and for the merged verdict (docs/benchmarks.md):

1. **False accusations.** Real photographs labelled ``synthetic``:
   - the photographs scikit-image ships (``PHOTOGRAPHS``, at native
     resolution, saved losslessly), and their re-shared copies: JPEG 95, 75
     and 50, resized to half, the centre half cropped;
   - eight 32×32 crops of each (``crop-32``): pieces of camera photographs at
     the size the models were validated on, so the geometry gate does not
     stop them and the novelty model and the accusation standard must; and
     the same crops saved as JPEG 75 (``crop-32-jpeg75``), the history every
     real training image of zoo32 had, which shows how much of a verdict on
     a lossless crop is the missing JPEG history;
   - CIFAR-10 test photographs as the zip holds them (JPEG quality 75), when
     the zip is there.
2. **Generators never seen.** Zoo32's clean test samples of each generator,
   judged by the model refitted without that generator
   (:func:`vestige.models.domainfit.held_out_decisions`: the network itself saw it,
   so this is a lower bound on the rate for a truly new generator), and the
   samples upscaled ×2 and ×4.
3. **In-domain attribution.** Zoo32's clean test split through the
   platform, against the rule before the domain (the calibrated maximum
   probability above the open-set threshold), measured in the same run.

The merged verdict of an image merges the detectors' findings by
:func:`vestige.analysis.merge.merge_verdicts`.
"""

from __future__ import annotations

import io
import time
import zipfile
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from vestige.analysis.detect import make_input, run_detector
from vestige.analysis.merge import merge_verdicts
from vestige.models import domainfit
from vestige.models.datasets import Dataset
from vestige.models.photographs import PHOTOGRAPHS, package_photographs
from vestige.plugin import Finding, ImageInput
from vestige.plugin.training import REAL, TrainableDetector

CROPS_32 = 8
Progress = Callable[[str], None]


def _encode(image: Image.Image, fmt: str = "PNG", **options: Any) -> bytes:
    buf = io.BytesIO()
    image.save(buf, fmt, **options)
    return buf.getvalue()


def _grid_crops(image: Image.Image, n: int, side: int = 32) -> list[Image.Image]:
    """``n`` side×side crops on a diagonal-ish grid over the picture (deterministic)."""
    w, h = image.size
    out = []
    for k in range(n):
        x = round((w - side) * ((k * 0.37 + 0.1) % 1.0))
        y = round((h - side) * ((k * 0.61 + 0.2) % 1.0))
        out.append(image.crop((x, y, x + side, y + side)))
    return out


def real_sets(cifar_zip: Path | None, per_class: int) -> dict[str, list[ImageInput]]:
    """The real-image sets by name: package photographs with their re-shared copies, their 32×32 crops, CIFAR."""
    photographs, crops, crops_jpeg = [], [], []
    for name, image in package_photographs().items():
        half = image.resize((max(1, image.width // 2), max(1, image.height // 2)), Image.Resampling.LANCZOS)
        w, h = image.size
        centre = image.crop((w // 4, h // 4, w // 4 + w // 2, h // 4 + h // 2))
        for variant, data in (("original", _encode(image)), ("jpeg-95", _encode(image, "JPEG", quality=95)),
                              ("jpeg-75", _encode(image, "JPEG", quality=75)),
                              ("jpeg-50", _encode(image, "JPEG", quality=50)),
                              ("resize-0.5", _encode(half)), ("crop-0.5", _encode(centre))):
            photographs.append(make_input(data, name=f"{name}-{variant}"))
        pieces = _grid_crops(image, CROPS_32)
        crops += [make_input(_encode(c), name=f"{name}-crop32-{k}") for k, c in enumerate(pieces)]
        crops_jpeg += [make_input(_encode(c, "JPEG", quality=75), name=f"{name}-crop32-{k}-q75")
                       for k, c in enumerate(pieces)]
    sets = {"photographs": photographs, "crop-32": crops, "crop-32-jpeg75": crops_jpeg}
    if cifar_zip is not None and cifar_zip.is_file():
        with zipfile.ZipFile(cifar_zip) as zf:
            names = sorted(n for n in zf.namelist() if n.startswith("test/") and n.endswith(".jpg"))
            by_class: dict[str, list[str]] = {}
            for n in names:
                by_class.setdefault(n.split("/")[1], []).append(n)
            chosen = [n for members in by_class.values() for n in members[:per_class]]
            sets["cifar-test"] = [make_input(zf.read(n), name=n) for n in chosen]
    return sets


def _rates(findings: Sequence[Mapping[str, Any]], truth: str | None = None) -> dict[str, Any]:
    n = max(1, len(findings))
    named = [f for f in findings if f["label"] == "synthetic" and f.get("source")]
    out = {
        "images": len(findings),
        "synthetic": sum(f["label"] == "synthetic" for f in findings) / n,
        "named": len(named) / n,
        "real": sum(f["label"] == "real" for f in findings) / n,
        "inconclusive": sum(f["label"] == "unknown" for f in findings) / n,
    }
    if truth is not None:
        out["correct"] = sum((f["label"] == "real" and truth == REAL) or (f["label"] == "synthetic" and f.get("source") == truth)
                             for f in findings) / n
        out["named_other"] = sum(f.get("source") not in (None, truth) for f in named) / n
    return out


def _row(finding: Finding | Any) -> dict[str, Any]:
    if isinstance(finding, Finding):
        return {"detector": finding.detector, "kind": "attribution", "label": finding.label, "source": finding.source,
                "confidence": finding.confidence, "error": finding.error, "domain": finding.evidence.get("domain")}
    return {"label": finding.label, "source": finding.source, "confidence": finding.confidence, "error": None,
            "domain": finding.evidence}


def _merged(per_detector: Mapping[str, Sequence[Mapping[str, Any]]]) -> list[dict[str, Any]]:
    names = sorted(per_detector)
    count = len(per_detector[names[0]]) if names else 0
    return [merge_verdicts([{**per_detector[d][i], "detector": d, "kind": "attribution"} for d in names])
            for i in range(count)]


def _mean(values: Sequence[bool]) -> float | None:
    """The share of true values, ``None`` for none (a dataset without unseen classes or without real images)."""
    return float(np.mean(values)) if len(values) else None


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.1%}"


def _before(finding: Finding, threshold: float, truth: str) -> bool:
    """The rule before the validated domain: the top calibrated probability, if at least the open-set threshold."""
    if not finding.scores:
        return False
    top = max(finding.scores, key=lambda s: finding.scores[s])
    return finding.scores[top] >= threshold and top == truth


def run_openworld(dataset: Dataset, detectors: Sequence[TrainableDetector], *, cifar_zip: Path | None,
                  per_class: int = 100, upscaled_per_source: int = 50, progress: Progress | None = None) -> dict[str, Any]:
    say = progress or (lambda _: None)
    began = time.monotonic()
    for detector in detectors:
        detector.load("cpu")
    result: dict[str, Any] = {"dataset": dataset.sha256, "detectors": {d.name: d.model_sha256 for d in detectors},
                              "real": {}, "unseen": {}, "in_domain": {}}

    say("real photographs: package photographs, re-shared copies, 32×32 crops, CIFAR-10 test")
    for set_name, inputs in real_sets(cifar_zip, per_class).items():
        rows = {d.name: [_row(f) for f in run_detector(d, inputs)] for d in detectors}
        result["real"][set_name] = {name: _rates(r) for name, r in rows.items()}
        result["real"][set_name]["merged"] = _rates(_merged(rows))
        say(f"  {set_name}: {len(inputs)} images, " + ", ".join(
            f"{k} {v['synthetic']:.1%} accused" for k, v in result["real"][set_name].items()))

    test = dataset.records(split="test", condition="clean")
    generated = [r for r in test if r.source != REAL]
    say(f"in-domain: zoo32 clean test split, {len(test)} images")
    inputs = dataset.inputs(test)
    truth = [r.source for r in test]
    rows = {}
    for d in detectors:
        findings = run_detector(d, inputs)
        rows[d.name] = [_row(f) for f in findings]
        threshold = d.require_artifact().open_set_threshold
        correct = [(f["label"] == "real" and t == REAL) or (f["label"] == "synthetic" and f["source"] == t)
                   for f, t in zip(rows[d.name], truth)]
        groups = [dataset.class_group(r) for r in test]
        result["in_domain"][d.name] = {
            "accuracy": float(np.mean(correct)),
            "accuracy_seen": _mean([c for c, g in zip(correct, groups) if g == "seen"]),
            "accuracy_unseen": _mean([c for c, g in zip(correct, groups) if g == "unseen"]),
            "before": float(np.mean([_before(f, threshold, t) for f, t in zip(findings, truth)])),
            "inconclusive": float(np.mean([f["label"] == "unknown" for f in rows[d.name]])),
            "real_accused": _mean([f["label"] == "synthetic" for f, t in zip(rows[d.name], truth) if t == REAL]),
        }
    merged = _merged(rows)
    result["in_domain"]["merged"] = {
        "accuracy": float(np.mean([(m["label"] == "real" and t == REAL) or (m["label"] == "synthetic" and m["source"] == t)
                                   for m, t in zip(merged, truth)])),
        "inconclusive": float(np.mean([m["label"] == "unknown" for m in merged])),
        "real_accused": _mean([m["label"] == "synthetic" for m, t in zip(merged, truth) if t == REAL]),
    }
    for name, value in result["in_domain"].items():
        say(f"  {name}: {value['accuracy']:.1%} attributed correctly")

    say("unseen generators: each left out in turn (refitted without it), on the clean test split")
    data = dataset.training_set(augment=False)
    held: dict[str, dict[str, list[dict[str, Any]]]] = {}
    for d in detectors:
        artifact = d.require_artifact()
        record = artifact.domain
        sources = list(d.labels)
        index = {s: i for i, s in enumerate(sources)}
        fitted = [e for e in data.train if not d.excluded_from_domain_fit(e.image)]
        train = domainfit.scores(d, [e.image for e in fitted])
        val = domainfit.scores(d, [e.image for e in data.validation])
        evaluate = domainfit.scores(d, inputs)
        threshold = artifact.open_set_threshold
        decisions = domainfit.held_out_decisions(
            record, train, np.array([index[e.source] for e in fitted]), val,
            np.array([index[e.source] for e in data.validation]), evaluate, np.array([index[t] for t in truth]),
            sources, threshold, float(record["novelty"]["keep"]))
        held[d.name] = {g: [_row(x) for x in ds] for g, ds in decisions.items()}
        result["unseen"].setdefault("held_out", {})[d.name] = {g: _rates(r, g) for g, r in held[d.name].items()}
    generators = sorted(set.intersection(*(set(h) for h in held.values()))) if held else []
    result["unseen"].setdefault("held_out", {})["merged"] = {
        g: _rates(_merged({d: held[d][g] for d in held}), g) for g in generators}
    for name, by_g in result["unseen"]["held_out"].items():
        rates = [v["named_other"] for v in by_g.values()]
        say(f"  {name}: named as another generator {np.mean(rates):.1%} on average, at most {max(rates, default=0):.1%}")

    per_source: dict[str, list[Any]] = {}
    for r in generated:
        per_source.setdefault(r.source, []).append(r)
    picked = [r for rs in per_source.values() for r in rs[:upscaled_per_source]]
    for factor in (2, 4):
        scaled = []
        for r, item in zip(picked, dataset.inputs(picked)):
            big = item.image.resize((item.image.width * factor, item.image.height * factor), Image.Resampling.BICUBIC)
            scaled.append(make_input(_encode(big), name=f"{r.path}-x{factor}"))
        rows = {d.name: [_row(f) for f in run_detector(d, scaled)] for d in detectors}
        result["unseen"][f"upscaled-x{factor}"] = {name: _rates(r) for name, r in rows.items()}
        result["unseen"][f"upscaled-x{factor}"]["merged"] = _rates(_merged(rows))
    result["seconds"] = round(time.monotonic() - began, 1)
    return result


def markdown(result: Mapping[str, Any]) -> str:
    """The tables docs/benchmarks.md shows."""
    names = [*result["detectors"], "merged"]
    lines = ["Real photographs labelled synthetic (share of images; named = a generator named):", "",
             "| set | images | " + " | ".join(names) + " |", "|---|---|" + "---|" * len(names)]
    for set_name, rates in result["real"].items():
        n = next(iter(rates.values()))["images"]
        lines.append(f"| {set_name} | {n} | " + " | ".join(
            f"{rates[k]['synthetic']:.1%} (named {rates[k]['named']:.1%}, real {rates[k]['real']:.1%})" for k in names) + " |")
    lines += ["", "Samples of a generator the model never saw, named as another generator:", "",
              "| generator | " + " | ".join(names) + " |", "|---|" + "---|" * len(names)]
    held = result["unseen"]["held_out"]
    generators = sorted(held[names[-1]]) if held.get(names[-1]) else sorted(next(iter(held.values())))
    for g in generators:
        lines.append(f"| {g} (held out) | " + " | ".join(
            f"{held[k][g]['named_other']:.1%}" if g in held.get(k, {}) else "-" for k in names) + " |")
    lines.append("| mean | " + " | ".join(
        f"{np.mean([v['named_other'] for v in held[k].values()]):.1%}" if held.get(k) else "-" for k in names) + " |")
    for key in ("upscaled-x2", "upscaled-x4"):
        rates = result["unseen"][key]
        lines.append(f"| zoo samples {key} (named at all) | " + " | ".join(f"{rates[k]['named']:.1%}" for k in names) + " |")
    lines += ["", "Zoo32 clean test split, attributed correctly (before: the open-set rule without the domain):", "",
              "| detector | before | now | seen classes | unseen classes | inconclusive | real accused |",
              "|---|---|---|---|---|---|---|"]
    for name, v in result["in_domain"].items():
        lines.append(f"| {name} | {_pct(v.get('before'))} | {_pct(v['accuracy'])} | {_pct(v.get('accuracy_seen'))} | "
                     f"{_pct(v.get('accuracy_unseen'))} | {_pct(v['inconclusive'])} | {_pct(v['real_accused'])} |")
    return "\n".join(lines) + "\n"
