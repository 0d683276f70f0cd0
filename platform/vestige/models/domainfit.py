"""Fitting an artifact's validated domain (see :mod:`vestige.plugin.domain`) and writing it into the artifact.

:func:`train` is how every trained artifact gets its domain: it calls the
detector's ``fit`` and then :func:`fit_domain` on the same training set.
:func:`refit` gives an existing artifact a domain (or a new one) without
retraining: the network is unchanged, the novelty model and thresholds are
fitted on the dataset's train and validation splits, and a new artifact is
written (its SHA-256 changes, so verdicts name which one spoke).

Held-out generators: for each generator ``g`` of the artifact, the novelty
model is fitted again without ``g``'s training images, its threshold set on
the other sources' validation images, and the classifier restricted to the
other sources; ``g``'s validation images are then decided as a model that
never saw ``g`` would decide them (the network itself did see ``g``, so this
is a lower bound on what a truly unseen generator does: say so when quoting
it). The rates are recorded in the domain under ``held_out_generators``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from vestige.core.errors import InvalidInputError
from vestige.plugin import ImageInput, domain as dom
from vestige.plugin.training import REAL, ArtifactFile, TrainableDetector, TrainedModel, TrainingSet, pack_artifact

Progress = Callable[[str], None]
#: Images per call of ``domain_scores`` while fitting.
CHUNK = 512
#: Smaller scales a domain fit tries (the re-sharing resizes of docs/datasets.md and issue 18).
VALIDATED_SCALES = (0.75, 0.5)
#: Largest share of generated validation images named as another generator at an admitted scale.
SCALE_WRONG_NAMES = 0.02


def scores(detector: TrainableDetector, images: Sequence[ImageInput]) -> dom.DomainScores:
    parts = [detector.domain_scores(images[start : start + CHUNK]) for start in range(0, len(images), CHUNK)]
    if not parts:
        raise InvalidInputError("no images to fit a validated domain on")
    return dom.DomainScores(np.concatenate([p.probabilities for p in parts]), np.concatenate([p.features for p in parts]))


def _rates(decisions: Sequence[dom.Decision], truth: str, sources: Sequence[str]) -> dict[str, float]:
    n = max(1, len(decisions))
    named = [d for d in decisions if d.label == "synthetic" and d.source]
    return {
        "images": len(decisions),
        "correct": sum(1 for d in decisions if (d.label == "real" and truth == REAL)
                       or (d.label == "synthetic" and d.source == truth)) / n,
        "named_other": sum(1 for d in named if d.source != truth) / n,
        "called_real": sum(1 for d in decisions if d.label == "real") / n if truth != REAL else 0.0,
        "called_synthetic": sum(1 for d in decisions if d.label == "synthetic") / n,
        "synthetic_unknown_source": sum(1 for d in decisions if d.label == "synthetic" and not d.source) / n,
        "inconclusive": sum(1 for d in decisions if d.label == "unknown") / n,
    }


def augmentation_union(history: Mapping[str, Sequence[int]], augmentation: Mapping[str, Any]) -> list[int] | None:
    """The JPEG qualities a model saw: the data's own history joined with the recipe's JPEG augmentation."""
    ranges = [tuple(r) for r in history.values()]
    if augmentation.get("jpeg_qualities"):
        ranges.append(tuple(augmentation["jpeg_qualities"]))
    if not ranges:
        return None
    return [int(min(r[0] for r in ranges)), int(max(r[1] for r in ranges))]


def fit_domain(detector: TrainableDetector, data: TrainingSet, *, keep: float = dom.NOVELTY_KEEP,
               accusation_rate: float = dom.ACCUSATION_RATE, progress: Progress | None = None,
               command: str | None = None, scales: Sequence[float] = VALIDATED_SCALES,
               ) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """The domain record and novelty tensors of the artifact ``detector`` runs with, fitted on ``data``."""
    say = progress or (lambda _: None)
    artifact = detector.require_artifact()
    if not 0.5 <= keep < 1.0:
        raise InvalidInputError(f"--keep must lie in [0.5, 1), not {keep}")
    if not 0.0 < accusation_rate < 0.5:
        raise InvalidInputError(f"--accusation-rate must lie in (0, 0.5), not {accusation_rate}")
    sources = list(detector.labels)
    if set(data.sources) - set(sources):
        raise InvalidInputError(f"{data.name} has sources the model does not know: "
                                f"{', '.join(sorted(set(data.sources) - set(sources)))}")
    if not data.validation:
        raise InvalidInputError(f"{data.name} has no validation images to set the domain's thresholds on")
    index = {s: i for i, s in enumerate(sources)}
    threshold = artifact.open_set_threshold
    fitted = [e for e in data.train if not detector.excluded_from_domain_fit(e.image)]
    say(f"domain: scoring {len(fitted)} training and {len(data.validation)} validation images")
    train = scores(detector, [e.image for e in fitted])
    val = scores(detector, [e.image for e in data.validation])
    y_train = np.array([index[e.source] for e in fitted])
    y_val = np.array([index[e.source] for e in data.validation])
    present = sorted(set(y_train.tolist()))

    if present != list(range(len(sources))):
        missing = sorted(set(sources) - {sources[i] for i in present})
        raise InvalidInputError(f"{data.name} has no training images of {', '.join(missing)}, which the model names")
    novelty = dom.Novelty.fit(train.features, y_train, present)
    limits = novelty.thresholds(val.features, y_val, keep)
    top = val.probabilities.argmax(axis=1)
    inside = novelty.distances(val.features)[np.arange(len(top)), top] <= np.asarray(limits)[top]
    accusation = None
    synthetic = dom.p_synthetic(val.probabilities, sources)
    if synthetic is not None:
        real = (y_val == index[REAL]) & inside
        if real.any():
            accuse_at = dom.quantile_threshold(synthetic[real], 1.0 - accusation_rate)
            accuse_at = float(np.nextafter(accuse_at, np.inf))  # strictly above the kept real images
            accusation = {"threshold": accuse_at, "rate": accusation_rate, "real_validation_images": int(real.sum()),
                          "measured_rate": float(np.mean(synthetic[real] >= accuse_at))}
    record = basic_domain(detector, data, command=command)
    record.update(
        input_side=int(artifact.info.get("input_size", record["input_side"])), sources=sources,
        novelty={"method": "mahalanobis-tied", "features": detector.domain_features, "dim": int(train.features.shape[1]),
                 "shrinkage": dom.SHRINKAGE, "keep": keep, "thresholds": limits,
                 "validation_images": int(len(y_val)), "validation_inside": float(inside.mean())},
        accusation=accusation,
    )
    decisions = dom.decide(record, novelty, val, sources, threshold)
    record["validation"] = {s: _rates([d for d, y in zip(decisions, y_val) if y == i], s, sources)
                            for s, i in index.items() if (y_val == i).any()}
    if scales:
        record["scales"] = _validated_scales(detector, data, record, novelty, y_val, decisions, sources, threshold,
                                             scales, say)
        admitted = [float(k) for k, v in record["scales"].items() if v["admitted"]]
        record["scale_range"] = [min([1.0, *admitted]), max(record["scale_range"][1], 1.0)]
    record["held_out_generators"] = _held_out(record, train, y_train, val, y_val, sources, threshold, keep, say)
    return record, novelty.tensors()


def _validated_scales(detector: TrainableDetector, data: TrainingSet, record: Mapping[str, Any], novelty: dom.Novelty,
                      y_val: np.ndarray, clean: Sequence[dom.Decision], sources: Sequence[str], threshold: float,
                      scales: Sequence[float], say: Progress) -> dict[str, Any]:
    """Which smaller scales the model is validated at: the validation images resized (bicubic) by each scale,
    from the largest down, judged with the clean thresholds; a scale is admitted while the evidence standard
    still holds there (real images accused at most the accusation rate, generators named as another at most
    :data:`SCALE_WRONG_NAMES` or the clean rate) and every larger scale was admitted."""
    from vestige.analysis.detect import make_input
    from vestige.models.datasets import encode_png

    rate = (record.get("accusation") or {}).get("rate", 0.0)
    clean_wrong = _wrong_names(clean, y_val, sources)
    out: dict[str, Any] = {}
    admitted = True
    for scale in sorted(scales, reverse=True):
        resized = []
        for example in data.validation:
            image = example.image.image
            size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
            resized.append(make_input(encode_png(image.resize(size, Image.Resampling.BICUBIC)), name="validation"))
        decisions = dom.decide(record, novelty, scores(detector, resized), sources, threshold)
        real = [d for d, y in zip(decisions, y_val) if sources[y] == REAL]
        accused = sum(d.label == "synthetic" for d in real) / len(real) if real else 0.0
        wrong = _wrong_names(decisions, y_val, sources)
        correct = float(np.mean([(d.label == "real" and sources[y] == REAL) or (d.label == "synthetic" and d.source == sources[y])
                                 for d, y in zip(decisions, y_val)]))
        admitted = admitted and accused <= rate and wrong <= max(SCALE_WRONG_NAMES, clean_wrong)
        out[f"{scale:g}"] = {"admitted": admitted, "real_accused": accused, "named_wrong": wrong, "correct": correct}
        say(f"domain: scale {scale:g}: correct {correct:.1%}, real accused {accused:.1%}, generators named wrongly "
            f"{wrong:.1%}: {'admitted' if admitted else 'not admitted'}")
    return out


def _wrong_names(decisions: Sequence[dom.Decision], y_val: np.ndarray, sources: Sequence[str]) -> float:
    generated = [(d, sources[y]) for d, y in zip(decisions, y_val) if sources[y] != REAL]
    return sum(d.source not in (None, truth) for d, truth in generated) / len(generated) if generated else 0.0


def _held_out(record: Mapping[str, Any], train: dom.DomainScores, y_train: np.ndarray, val: dom.DomainScores,
              y_val: np.ndarray, sources: Sequence[str], threshold: float, keep: float, say: Progress) -> dict[str, Any]:
    out: dict[str, Any] = {}
    held = held_out_decisions(record, train, y_train, val, y_val, val, y_val, sources, threshold, keep)
    for name, decisions in held.items():
        out[name] = _rates(decisions, name, sources)
        say(f"domain: held-out {name}: named as another generator {out[name]['named_other']:.1%}, "
            f"called real {out[name]['called_real']:.1%}, inconclusive {out[name]['inconclusive']:.1%}")
    return out


def held_out_decisions(record: Mapping[str, Any], train: dom.DomainScores, y_train: np.ndarray, val: dom.DomainScores,
                       y_val: np.ndarray, evaluate: dom.DomainScores, y_eval: np.ndarray, sources: Sequence[str],
                       threshold: float, keep: float) -> dict[str, list[dom.Decision]]:
    """Per generator ``g``: the decisions on ``evaluate``'s images of ``g`` by the model refitted without ``g``
    (novelty fitted on the other sources' training features, thresholds on their validation features, the
    classifier restricted to them)."""
    out: dict[str, list[dom.Decision]] = {}
    for g, name in enumerate(sources):
        if name == REAL or not (y_eval == g).any() or len(sources) < 3:
            continue
        rest = [i for i in range(len(sources)) if i != g]
        novelty = dom.Novelty.fit(train.features[y_train != g], y_train[y_train != g], rest)
        others = y_val != g
        remap = {c: k for k, c in enumerate(rest)}
        limits = novelty.thresholds(val.features[others], np.array([remap[c] for c in y_val[others]]), keep)
        mine = y_eval == g
        probabilities = evaluate.probabilities[mine][:, rest]
        probabilities = probabilities / np.maximum(probabilities.sum(axis=1, keepdims=True), 1e-12)
        view = {**record, "novelty": {**record["novelty"], "thresholds": limits}}
        out[name] = dom.decide(view, novelty, dom.DomainScores(probabilities, evaluate.features[mine]),
                               [sources[i] for i in rest], threshold)
    return out


def with_domain(artifact: ArtifactFile, record: Mapping[str, Any], tensors: Mapping[str, np.ndarray]) -> bytes:
    """The artifact's bytes with ``record`` as its domain and ``tensors`` as its novelty model (others unchanged)."""
    from safetensors.numpy import load

    arrays = {k: v for k, v in load(artifact.data).items() if not k.startswith(dom.TENSOR_PREFIX)}
    arrays.update(tensors)
    info = {**dict(artifact.info), dom.DOMAIN_KEY: dict(record)}
    return pack_artifact(arrays, detector=artifact.detector, version=artifact.version, info=info)


def refit(detector: TrainableDetector, artifact: ArtifactFile, data: TrainingSet, *, keep: float = dom.NOVELTY_KEEP,
          accusation_rate: float = dom.ACCUSATION_RATE, progress: Progress | None = None,
          command: str | None = None) -> ArtifactFile:
    """``artifact`` with a domain fitted on ``data`` (the network is not retrained)."""
    detector.use_artifact(artifact)
    detector.load("cpu")
    record, tensors = fit_domain(detector, data, keep=keep, accusation_rate=accusation_rate, progress=progress,
                                 command=command)
    record = {**record, "refit_of": artifact.sha256}
    return ArtifactFile.from_bytes(with_domain(artifact, record, tensors), origin="trained",
                                   name=f"{detector.name}'s refitted model")


def train(detector: TrainableDetector, data: TrainingSet, *, seed: int = 0, options: Mapping[str, Any] | None = None,
          progress: Progress | None = None, device: str = "cpu", command: str | None = None) -> TrainedModel:
    """``detector.fit`` and then the artifact's validated domain, fitted on the same data.

    A detector that computes no novelty features (``domain_scores`` not
    implemented) gets the geometry and JPEG gates alone, recorded as such.
    """
    model = detector.fit(data, seed=seed, options=options, progress=progress, device=device)
    artifact = ArtifactFile.from_bytes(model.data, origin="trained", name=f"{detector.name}'s trained model")
    detector.use_artifact(artifact)
    detector.load(device)
    if type(detector).domain_scores is not TrainableDetector.domain_scores:
        record, tensors = fit_domain(detector, data, progress=progress, command=command)
    else:
        record, tensors = basic_domain(detector, data, command=command), {}
    return TrainedModel(data=with_domain(artifact, record, tensors), metrics=model.metrics,
                        calibration={**dict(model.calibration), "domain": {
                            "novelty_thresholds": (record.get("novelty") or {}).get("thresholds"),
                            "accusation_threshold": (record.get("accusation") or {}).get("threshold")}})


def basic_domain(detector: TrainableDetector, data: TrainingSet, *, command: str | None = None) -> dict[str, Any]:
    """Geometry and JPEG gates only, for a detector without novelty features."""
    augmentation = detector.augmentation_domain()
    sizes = sorted({(e.image.image.width, e.image.image.height) for e in (*data.train, *data.validation)})
    record: dict[str, Any] = {
        "format": dom.DOMAIN_FORMAT, "input_side": min(min(s) for s in sizes), "sizes": [list(s) for s in sizes],
        "scale_range": list(augmentation.get("scale_range", (1.0, 1.0))),
        "perturbations": list(augmentation.get("perturbations", [])), "sources": list(data.sources),
        "dataset_sha256": data.dataset_sha256, "novelty": None, "accusation": None, "command": command,
    }
    if data.jpeg_history is not None:
        record["jpeg_qualities"] = augmentation_union(data.jpeg_history, augmentation)
        record["jpeg_history"] = {k: list(v) for k, v in data.jpeg_history.items()}
    return record


def summary(record: Mapping[str, Any]) -> str:
    """A few lines an examiner reads: what the domain admits and what was measured."""
    lines = [f"  sizes: {dom.describe_sizes(record.get('sizes', []))}, JPEG qualities: "
             f"{record.get('jpeg_qualities', 'not recorded')}, perturbations seen: {len(record.get('perturbations', []))}"]
    novelty = record.get("novelty")
    if novelty:
        lines.append(f"  novelty: {novelty['method']} on {novelty['dim']} features, a threshold per source keeping "
                     f"{novelty['keep']:.0%} of its validation images ({novelty['validation_inside']:.1%} of all inside)")
    accusation = record.get("accusation")
    if accusation:
        lines.append(f"  accusation: P(synthetic) ≥ {accusation['threshold']:.4f} "
                     f"({accusation['measured_rate']:.1%} of {accusation['real_validation_images']} real validation images)")
    for scale, rates in (record.get("scales") or {}).items():
        lines.append(f"  scale {scale}: correct {rates['correct']:.1%}, real accused {rates['real_accused']:.1%}, "
                     f"named wrongly {rates['named_wrong']:.1%}: {'admitted' if rates['admitted'] else 'not admitted'}")
    for name, rates in sorted((record.get("held_out_generators") or {}).items()):
        lines.append(f"  held out {name}: named as another generator {rates['named_other']:.1%}, "
                     f"called real {rates['called_real']:.1%}, inconclusive {rates['inconclusive']:.1%}")
    return "\n".join(lines)


def ship_refit(detector: TrainableDetector, old_sha256: str, data: bytes, command: str) -> Path:
    """Replace the plugin's shipped artifact ``old_sha256`` by ``data`` in its ``weights/`` folder and manifest."""
    import sys

    from vestige.plugin.weightfiles import ShippedManifest

    manifest = ShippedManifest.read(Path(sys.modules[type(detector).__module__].__file__).resolve().parent / "weights")
    entry = manifest.with_sha256(old_sha256)
    if entry is None:
        raise InvalidInputError(f"{manifest.path} has no shipped artifact {old_sha256[:12]}; --ship replaces shipped files only")
    metadata = {**entry.metadata, "domain_refit_of": old_sha256, "domain_command": command}
    metadata.setdefault("trained_sha256", entry.metadata.get("domain_refit_of", old_sha256))  # the network's own training
    new = manifest.add(entry.name, data, metadata)
    manifest.write()
    return new.path
