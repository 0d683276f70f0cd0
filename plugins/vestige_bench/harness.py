"""The benchmark harness: train where needed, evaluate every test condition, write tables and pictures.

Detectors are evaluated exactly as the platform runs them: images decoded by
:func:`vestige.analysis.detect.make_input` (through :meth:`Dataset.inputs`) and
findings from :func:`vestige.analysis.detect.run_detector`. A trainable detector is
trained on the dataset's train and val splits unless an artifact is given.

Conditions are (clean, seen perturbations, unseen perturbations, re-shared)
× (seen classes, unseen classes). Per condition: detection accuracy (real vs
synthetic; ``unknown`` counts as wrong, its rate is reported), attribution
accuracy (the predicted source, ``real`` for a real label, against the true
one), NMI (``unknown`` is a cluster of its own), macro-F1 over the sources, a
confusion matrix, and for verifiers AUROC and false-positive rate per
candidate generator. A detector that fails on images has those counted as
wrong and reported; it never stops the run.
"""

from __future__ import annotations

import logging
import datetime as dt
import json
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vestige.analysis.detect import make_input, run_detector
from vestige.analysis.pictures import confusion_png
from vestige.core.errors import InvalidInputError
from vestige.core.plugins import VestigePluginManager, format_exception_line, get_plugin_manager
from vestige.models import domainfit
from vestige.models.attribution_metrics import (
    UNATTRIBUTED, UNKNOWN, accuracy, auroc, confusion_matrix, macro_f1, normalized_mutual_information, predicted_source,
)
from vestige.models.datasets import CLASS_GROUPS, CONDITIONS, Dataset, Record, seeded_rng
from vestige.plugin import Detector, Finding, ImageInput
from vestige.plugin.training import REAL, ArtifactFile, TrainableDetector, TrainedModel, TrainingSet

log = logging.getLogger(__name__)

__all__ = ["RESULTS_FORMAT", "condition_metrics", "markdown_table", "parse_options", "predicted_source",
           "record_results", "run_benchmark"]

RESULTS_FORMAT = "vestige-bench-results/1"

Progress = Callable[[str], None]
#: Called with a freshly trained detector, its model and the file it was saved to; returns a note for the results.
Register = Callable[[Detector, TrainedModel, Path], Any]


def _quiet(_: str) -> None:
    pass


def condition_metrics(records: Sequence[Record], findings: Sequence[Finding], sources: Sequence[str],
                      kind: str) -> dict[str, Any]:
    """Every number of one condition for one detector (``kind`` adds the verifier's numbers)."""
    true = [r.source for r in records]
    predicted = [predicted_source(f) for f in findings]
    true_label = ["real" if s == REAL else "synthetic" for s in true]
    predicted_label = [UNKNOWN if f.error else f.label for f in findings]
    extra = sorted({p for p in predicted if p not in sources and p != UNKNOWN})
    columns = [*sources, *extra, UNKNOWN]
    present = [s for s in sources if s in set(true)]
    out: dict[str, Any] = {
        "n": len(records),
        "errors": sum(1 for f in findings if f.error),
        "unknown_rate": (sum(p == UNKNOWN for p in predicted) / len(predicted)) if predicted else None,
        # real against synthetic means nothing for a dataset of generators only
        "detection_accuracy": accuracy(true_label, predicted_label) if REAL in sources else None,
        "detection_balanced_accuracy": _balanced(true_label, predicted_label) if REAL in sources else None,
        "attribution_accuracy": accuracy(true, predicted),
        "nmi": normalized_mutual_information(true, predicted),
        "macro_f1": macro_f1(true, predicted, present),
        "per_source_accuracy": {s: accuracy([t for t in true if t == s], [p for t, p in zip(true, predicted) if t == s])
                                for s in present},
        "confusion": {"rows": list(sources), "columns": columns,
                      "matrix": confusion_matrix(true, predicted, sources, columns)},
    }
    first_error = next((f.error for f in findings if f.error), None)
    if first_error:
        out["first_error"] = first_error
    if kind == "verification":
        out["verification"] = verification_metrics(true, findings)
    return out


def _balanced(true: Sequence[str], predicted: Sequence[str]) -> float | None:
    """Mean of the real and the synthetic images' accuracies: one real source against several generators
    makes plain detection accuracy reward calling everything synthetic."""
    shares = [accuracy([t for t in true if t == label], [p for t, p in zip(true, predicted) if t == label])
              for label in ("real", "synthetic") if label in true]
    return sum(shares) / len(shares) if shares else None


def verification_metrics(true: Sequence[str], findings: Sequence[Finding]) -> dict[str, Any]:
    """Per candidate generator: AUROC of its score (its own images against all others) and the rates at the threshold.

    The calibrated threshold is the detector's own: an image counts as
    attributed to a generator when its finding names that generator.
    """
    candidates = sorted({name for f in findings if not f.error for name in f.scores})
    out: dict[str, Any] = {}
    for name in candidates:
        scored = [(f.scores[name], t == name) for t, f in zip(true, findings) if not f.error and name in f.scores]
        positives = sum(t == name for t in true)
        negatives = len(true) - positives
        named = [f.source == name and not f.error for f in findings]
        out[name] = {
            "auroc": auroc([s for s, _ in scored], [p for _, p in scored]) if scored else None,
            "scored": len(scored),
            "fpr": (sum(n for t, n in zip(true, named) if t != name) / negatives) if negatives else None,
            "tpr": (sum(n for t, n in zip(true, named) if t == name) / positives) if positives else None,
        }
    return out


# ---------------------------------------------------------------------------
# options and the run


def parse_options(values: Sequence[str], detectors: Sequence[Detector]) -> dict[str, dict[str, Any]]:
    """``DET.key=value`` strings as typed ``fit`` options per detector; unknown names are refused with the valid ones."""
    by_name = {d.name: d for d in detectors}
    out: dict[str, dict[str, Any]] = {}
    for value in values:
        target, sep, raw = value.partition("=")
        name, dot, key = target.partition(".")
        if not sep or not dot or not name or not key:
            raise InvalidInputError(f"--option takes DETECTOR.KEY=VALUE, not {value!r}")
        detector = by_name.get(name)
        if detector is None:
            raise InvalidInputError(f"--option names detector {name!r}, which is not among {', '.join(by_name)}")
        options = {o.name: o for o in getattr(detector, "train_options", ())} if isinstance(detector, TrainableDetector) else {}
        option = options.get(key) or options.get(key.replace("_", "-")) or options.get(key.replace("-", "_"))
        if option is None:
            valid = ", ".join(options) or "none"
            raise InvalidInputError(f"detector {name} has no training option {key!r}; its options: {valid}")
        out.setdefault(name, {})[option.name] = _typed(option, raw, name)
    return out


def _typed(option: Any, raw: str, detector: str) -> Any:
    try:
        if option.type is bool:
            if raw.lower() not in ("1", "0", "true", "false", "yes", "no"):
                raise ValueError(raw)
            value: Any = raw.lower() in ("1", "true", "yes")
        else:
            value = option.type(raw)
    except ValueError:
        raise InvalidInputError(f"option {detector}.{option.name} takes a {option.type.__name__}, not {raw!r}") from None
    if option.choices and str(value) not in option.choices:
        raise InvalidInputError(f"option {detector}.{option.name} must be one of {', '.join(option.choices)}, not {raw!r}")
    return value


@dataclass
class _Prepared:
    detector: Detector
    info: dict[str, Any] = field(default_factory=dict)
    ready: bool = True


def _select(records: list[Record], limit: int | None, seed: int, condition: str, sources: Sequence[str]) -> list[Record]:
    """At most ``limit`` records, the same share of each source, drawn with ``seed``; manifest order kept."""
    if limit is None or len(records) <= limit:
        return records
    per_source = max(1, limit // len(sources))
    keep: set[str] = set()
    for source in sources:
        mine = [r.path for r in records if r.source == source]
        order = seeded_rng(seed, "limit", condition, source).permutation(len(mine))
        keep.update(mine[int(i)] for i in order[:per_source])
    return [r for r in records if r.path in keep]


def _prepare(detector: Detector, out: Path, *, seed: int, device: str, artifact: ArtifactFile | None,
             options: Mapping[str, Any], training: Callable[[], TrainingSet], register: Register | None,
             progress: Progress) -> _Prepared:
    prepared = _Prepared(detector, {"name": detector.name, "version": detector.version, "kind": detector.kind})
    if isinstance(detector, TrainableDetector):
        if artifact is None:
            data = training()
            progress(f"{detector.name}: training on {len(data.train)} images ({len(data.validation)} for validation)")
            began = time.perf_counter()
            try:
                model = domainfit.train(detector, data, seed=seed, options=dict(options), device=device,
                                        progress=lambda line: progress(f"{detector.name}: {line}"))
                artifact = ArtifactFile.from_bytes(model.data, origin="trained", name=f"{detector.name}'s trained model")
            except Exception as exc:  # a detector that cannot train is reported, the others still run
                log.warning("%s: training failed", detector.name, exc_info=True)
                prepared.info["error"] = f"training failed: {format_exception_line(exc)}"
                prepared.ready = False
                progress(f"{detector.name}: {prepared.info['error']}")
                return prepared
            prepared.info["fit_seconds"] = round(time.perf_counter() - began, 3)
            path = out / "models" / f"{detector.name}-{model.sha256[:8]}.safetensors"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(model.data)
            prepared.info.update(trained=True, artifact_path=str(path.relative_to(out)),
                                 validation_metrics=dict(model.metrics), calibration=dict(model.calibration),
                                 under_trained=bool(model.metrics.get("under_trained")))
            if prepared.info["under_trained"]:
                progress(f"{detector.name}: its time budget stopped training before early stopping: "
                         "its results are marked under-trained")
            if register is not None:
                prepared.info["registered"] = register(detector, model, path)
        else:
            prepared.info["trained"] = False
        detector.use_artifact(artifact)
        prepared.info["artifact_sha256"] = artifact.sha256
    elif options:
        raise InvalidInputError(f"detector {detector.name} is not trainable; it takes no --option")
    try:
        detector.load(device)
    except Exception as exc:
        log.warning("%s: loading failed", detector.name, exc_info=True)
        prepared.info["error"] = f"load failed: {format_exception_line(exc)}"
        prepared.ready = False
    return prepared


#: One re-sharing step at a time, as the papers report them (issue 18), applied to the clean test images with
#: the perturbation plugin's operations; the last step's file is what the detector gets (a JPEG stays a JPEG).
SINGLE_CONDITIONS: dict[str, tuple[dict[str, Any], ...]] = {
    "jpeg-90": ({"op": "jpeg", "params": {"quality": 90}},),
    "jpeg-75": ({"op": "jpeg", "params": {"quality": 75}},),
    "jpeg-50": ({"op": "jpeg", "params": {"quality": 50}},),
    "resize-0.75": ({"op": "resize", "params": {"scale": 0.75}},),
    "resize-0.5": ({"op": "resize", "params": {"scale": 0.5}},),
    "blur-1": ({"op": "blur", "params": {"radius": 1.0}},),
    "crop-0.9": ({"op": "crop", "params": {"fraction": 0.9}},),
    "resize-0.75+jpeg-75": ({"op": "resize", "params": {"scale": 0.75}}, {"op": "jpeg", "params": {"quality": 75}}),
}


def run_benchmark(dataset: Dataset, detectors: Sequence[Detector], out: Path, *, seed: int = 0,
                  artifacts: Mapping[str, ArtifactFile] | None = None, options: Mapping[str, Mapping[str, Any]] | None = None,
                  limit: int | None = None, device: str = "cpu", command: str = "", register: Register | None = None,
                  progress: Progress = _quiet, pm: VestigePluginManager | None = None,
                  single_conditions: bool = True) -> dict[str, Any]:
    """Train (where needed) and evaluate ``detectors`` on ``dataset``; write results.json, results.md and pictures to ``out``.

    ``pm`` provides the perturbation operations for training augmentation and the single conditions (the
    configured plugins; default: all installed). ``single_conditions``: also every condition of
    :data:`SINGLE_CONDITIONS`, applied to the clean test images as they are evaluated.
    """
    artifacts, options = dict(artifacts or {}), dict(options or {})
    out.mkdir(parents=True, exist_ok=True)
    began = time.perf_counter()
    cache: list[TrainingSet] = []

    def training() -> TrainingSet:
        if not cache:
            progress(f"decoding the training set of {dataset.name}")
            cache.append(dataset.training_set(pm=pm))
        return cache[0]

    prepared = [_prepare(d, out, seed=seed, device=device, artifact=artifacts.get(d.name), options=options.get(d.name, {}),
                         training=training, register=register, progress=progress) for d in detectors]
    results: dict[str, dict[str, Any]] = {p.detector.name: {} for p in prepared}
    timings: dict[str, dict[str, float]] = {p.detector.name: {} for p in prepared}
    conditions: list[str] = []
    by_path = {r.path: r for r in dataset.records()}

    def evaluate(condition: str, records: Sequence[Record], inputs: Sequence[ImageInput]) -> None:
        groups = {g: [i for i, r in enumerate(records) if dataset.class_group(r) == g] for g in CLASS_GROUPS}
        for p in (p for p in prepared if p.ready):
            started = time.perf_counter()
            findings = run_detector(p.detector, inputs)
            timings[p.detector.name][condition] = round(time.perf_counter() - started, 3)
            for group, indices in groups.items():
                if not indices:
                    continue
                key = f"{condition}/{group}"
                metrics = condition_metrics([records[i] for i in indices], [findings[i] for i in indices],
                                            dataset.sources, p.detector.kind)
                picture = f"confusion-{p.detector.name}-{condition}-{group}.png"
                (out / picture).write_bytes(confusion_png(
                    metrics["confusion"]["matrix"], metrics["confusion"]["rows"], metrics["confusion"]["columns"],
                    f"{p.detector.name}: {condition}, {group} classes ({metrics['n']} images)"))
                metrics["picture"] = picture
                from vestige.models.tilemetrics import image_level_metrics

                image_level = image_level_metrics([records[i] for i in indices], [findings[i] for i in indices],
                                                  dataset.sources, by_path)
                if image_level is not None:
                    metrics["image_level"] = image_level
                results[p.detector.name][key] = metrics
                if key not in conditions:
                    conditions.append(key)
            progress(f"{p.detector.name}: {condition} ({len(records)} images) in {timings[p.detector.name][condition]:.1f} s")

    for condition in CONDITIONS:
        records = _select(dataset.records(split="test", condition=condition), limit, seed, condition, dataset.sources)
        if records:
            evaluate(condition, records, dataset.inputs(records))
    if single_conditions:
        from vestige.evidence.derivatives import apply_chain, get_perturbations

        available = get_perturbations(pm or get_plugin_manager())
        clean = _select(dataset.records(split="test", condition="clean"), limit, seed, "clean", dataset.sources)
        originals = dataset.inputs(clean)
        for condition, operations in SINGLE_CONDITIONS.items():
            inputs = [make_input(apply_chain(item.image.copy(), operations, available,
                                             seed=f"{seed}:{condition}:{record.path}".encode()), name=record.path)
                      for record, item in zip(clean, originals)]
            evaluate(condition, clean, inputs)
    summary = {
        "format": RESULTS_FORMAT,
        "command": command,
        "dataset": {"name": dataset.name, "path": str(dataset.path), "sha256": dataset.sha256, "sources": list(dataset.sources)},
        "seed": seed,
        "limit": limit,
        "device": device,
        "detectors": [p.info for p in prepared],
        "conditions": conditions,
        "results": results,
        "timings": {"total_seconds": round(time.perf_counter() - began, 3), "evaluate_seconds": timings},
        "finished_at": dt.datetime.now(dt.UTC).replace(microsecond=0).isoformat(),
    }
    (out / "results.json").write_text(json.dumps(summary, indent=2, ensure_ascii=False) + "\n")
    (out / "results.md").write_text(markdown_report(summary))
    return summary


# ---------------------------------------------------------------------------
# tables and the record in docs/benchmarks.md


def _number(value: float | None) -> str:
    return "–" if value is None else f"{value:.3f}"


def markdown_table(summary: Mapping[str, Any]) -> str:
    """One row per detector and condition: detection (plain, balanced), attribution, NMI, macro-F1, unknown rate, errors."""
    rows = [m for by_condition in summary["results"].values() for m in by_condition.values()]
    detection = any(m.get("detection_accuracy") is not None for m in rows)  # none without a real source
    head = ["detector", "condition", "classes", "images", *(["detection", "detection (balanced)"] if detection else []),
            "attribution", "NMI", "macro-F1", "unknown", "errors"]
    lines = ["| " + " | ".join(head) + " |", "|" + " --- |" * len(head)]
    for info in summary["detectors"]:
        name = info["name"]
        if info.get("error"):
            lines.append(f"| `{name}` | {info['error']} |" + " |" * (len(head) - 2))
            continue
        label = f"`{name}`"
        if info.get("under_trained"):  # a budget-cut model is never presented as an ordinary result
            label = f"`{name}` (under-trained: stopped by its time budget)"
        for key, m in summary["results"].get(name, {}).items():
            condition, group = key.split("/")
            cells = [label, condition, group, str(m["n"])]
            if detection:
                cells += [_number(m["detection_accuracy"]), _number(m["detection_balanced_accuracy"])]
            cells += [_number(m["attribution_accuracy"]), _number(m["nmi"]), _number(m["macro_f1"]),
                      _number(m["unknown_rate"]), str(m["errors"])]
            lines.append("| " + " | ".join(cells) + " |")
    verifier_rows = []
    for name, by_condition in summary["results"].items():
        for key, m in by_condition.items():
            for generator, v in m.get("verification", {}).items():
                condition, group = key.split("/")
                verifier_rows.append(f"| `{name}` | {condition} | {group} | `{generator}` | {_number(v['auroc'])} | "
                                     f"{_number(v['fpr'])} | {_number(v['tpr'])} |")
    if verifier_rows:
        lines += ["", "| verifier | condition | classes | generator | AUROC | FPR at threshold | TPR at threshold |",
                  "| --- | --- | --- | --- | --- | --- | --- |", *verifier_rows]
    return "\n".join(lines) + "\n"


def markdown_report(summary: Mapping[str, Any]) -> str:
    dataset = summary["dataset"]
    head = [f"# Benchmark on {dataset['name']}", "",
            f"Dataset manifest SHA-256 `{dataset['sha256']}`; seed {summary['seed']}"
            + (f"; at most {summary['limit']} images per condition" if summary["limit"] else "") + ".", ""]
    if summary.get("command"):
        head += ["```", summary["command"], "```", ""]
    for info in summary["detectors"]:
        how = ("trained here" + (f" in {info['fit_seconds']:.1f} s" if "fit_seconds" in info else "")
               if info.get("trained") else "given artifact" if "artifact_sha256" in info else "no artifact")
        artifact = f", artifact `{info['artifact_sha256'][:16]}`" if info.get("artifact_sha256") else ""
        head.append(f"- `{info['name']}` ({info['kind']}): {info.get('error') or how}{artifact}")
    return "\n".join(head) + "\n\n" + markdown_table(summary)


def git_commit(folder: Path) -> str:
    """``git rev-parse --short HEAD`` of the checkout holding ``folder``, ``+dirty`` when it has changes."""
    try:
        head = subprocess.run(["git", "-C", str(folder), "rev-parse", "--short", "HEAD"], capture_output=True,
                              text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(folder), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown (not a git checkout)"
    return head + ("+dirty" if dirty else "")


def record_results(summary: Mapping[str, Any], docs: Path) -> str:
    """Append a section with the command, the commit, the dataset hash and the table to ``docs``; returns the section."""
    if not docs.is_file():
        raise InvalidInputError(f"{docs} does not exist; run --record from the repository root")
    commit = git_commit(docs.parent)
    names = ", ".join(d["name"] for d in summary["detectors"])
    dataset = summary["dataset"]
    section = "\n".join([
        "", f"## Harness: {names} on {dataset['name']} ({summary['finished_at'][:10]})", "",
        "```", summary.get("command") or "vestige bench run", "```", "",
        f"Commit `{commit}`, dataset `{dataset['name']}` (manifest SHA-256 `{dataset['sha256']}`), seed {summary['seed']}"
        + (f", at most {summary['limit']} images per condition" if summary["limit"] else "") + ".", "",
        markdown_table(summary),
    ])
    text = docs.read_text()
    docs.write_text(text.rstrip("\n") + "\n" + section)
    return section
