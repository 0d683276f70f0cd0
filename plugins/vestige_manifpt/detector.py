"""The ``manifpt`` detector: attribution from the deviation of an image from the real-image manifold.

``fit`` takes the reference manifold from the dataset's real training images
(or from a reference artifact, ``--reference``), keeps those images out of the
attributor's ``real`` examples, projects every other training and validation
image onto it, trains the attributor on the artifacts, and calibrates on
validation. The model artifact holds everything ``analyze`` needs: the
reference pixels, the attributor (fp16), its input scale, the temperature and
the ``unknown`` threshold.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from vestige.plugin import Finding, ImageInput, Picture, VestigeError
from vestige.plugin.domain import DomainScores, decide
from vestige.plugin.training import REAL, ArtifactFile, TrainableDetector, TrainedModel, TrainingSet, TrainOption, pack_artifact
from vestige_manifpt.reference import Reference, ReferenceError

VERSION = "0.1.0"
FORMAT = 1
WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"
#: Working memory of one projection step in ``analyze`` (bytes).
ANALYZE_BUDGET = 64 * 1024**2
#: Artifacts per network call in ``analyze``: always this many (zero-padded), so an image's numbers do not
#: depend on the batch it came in (the CPU kernels choose their algorithm by batch size).
NETWORK_CHUNK = 32
#: Share of correctly attributed validation images kept above the ``unknown`` threshold.
UNKNOWN_KEEP = 0.95


class ManifptError(VestigeError):
    """Training data, options or an artifact ManiFPT cannot use."""

    status = 422


def _quiet(message: str) -> None:
    """Progress nobody asked for."""


class ManifptDetector(TrainableDetector):
    """ManiFPT (Song et al., CVPR 2024): a small network attributes x − proj(x), proj onto real references."""

    name: ClassVar[str] = "manifpt"
    version: ClassVar[str] = VERSION
    kind: ClassVar[str] = "attribution"
    description: ClassVar[str] = "ManiFPT: attributes an image's deviation from its nearest real reference image"
    device: ClassVar[str] = "gpu"
    batch_size: ClassVar[int] = 64
    train_options: ClassVar[tuple[TrainOption, ...]] = (
        TrainOption("space", str, "rgb", "Where the nearest reference is looked for: rgb pixels, freq "
                    "(log-magnitude FFT) or sl (the zoo classifier's features).", ("rgb", "freq", "sl")),
        TrainOption("reference_size", int, 500, "Real training images taken as the reference manifold (the rest "
                    "are the attributor's real examples); ignored with --reference."),
        TrainOption("reference", str, "", "A reference artifact (file, or SHA-256 prefix in the registry) built by "
                    "`vestige manifpt reference`; real training images in it are left out of the real examples."),
        TrainOption("epochs", int, 30, "Training epochs of the attributor (the best validation epoch is kept)."),
        TrainOption("minutes", float, 12.0, "Stop after the epoch that passes this many minutes."),
        TrainOption("batch_size", int, 128, "Attributor training batch size."),
        TrainOption("blocks", int, 3, "Residual blocks per stage of the attributor ResNet (3: the paper's ResNet-20)."),
        TrainOption("augment", float, 0.0, "Share of training images that also get a copy under one random seen "
                    "corruption (the dataset's augmentation), for robustness to re-shared images; 0: none."),
    )

    domain_features = "the attributor's pooled 64-value features of the image's ManiFPT artifact"

    def __init__(self) -> None:
        self._artifact: ArtifactFile | None = None
        self._state: dict[str, Any] | None = None
        self._torch_device = "cpu"

    # -- training ------------------------------------------------------------------------------

    def fit(self, data: TrainingSet, *, seed: int = 0, options: Mapping[str, Any] | None = None,
            progress: Callable[[str], None] | None = None, device: str = "cpu") -> TrainedModel:
        import torch

        from vestige.plugin import calibration
        from vestige_manifpt import attributor
        from vestige_manifpt.spaces import is_picture, stack

        say = progress or _quiet
        opts = resolve_options(self.train_options, options)
        space = opts["space"]
        sources = _trained_sources(data)
        torch.manual_seed(seed)
        rng = np.random.default_rng(seed)
        reference, real_kept, reference_info = self._reference_for(data, opts, rng, say)
        train = [e for e in data.train if e.source != REAL] + real_kept
        say(f"reference: {len(reference)} real images ({reference_info['from']}); "
            f"{len(real_kept)} other real training images are the attributor's real examples")
        device = "cuda" if device in ("cuda", "gpu") and torch.cuda.is_available() else "cpu"
        index = {s: i for i, s in enumerate(sources)}
        say(f"projecting {len(train)} training and {len(data.validation)} validation images in {space} space on {device}")
        pictures = [e.image.image for e in train]
        if opts["augment"] > 0:
            if data.augment is None:
                raise ManifptError("--augment needs a training set with augmentation (the dataset's seen corruptions)")
            chosen = np.flatnonzero(rng.random(len(train)) < opts["augment"])
            say(f"adding {len(chosen)} corrupted copies of training images (seen corruptions)")
            pictures += [data.augment(train[i].image.image, rng) for i in chosen]
            train = train + [train[i] for i in chosen]
        x, nearest_train, _ = project(stack(pictures), reference, space, device=device)
        x_val, _, _ = project(stack([e.image.image for e in data.validation]), reference, space, device=device)
        y = torch.tensor([index[e.source] for e in train], dtype=torch.int64)
        y_val = torch.tensor([index[e.source] for e in data.validation], dtype=torch.int64)
        scale = attributor.artifact_scale(x)
        hyper = attributor.hyperparameters(is_picture(space), int(np.prod(x.shape[1:])), len(sources), opts["blocks"])
        net = attributor.build(hyper)
        counts = torch.bincount(y, minlength=len(sources)).clamp_min(1).double()
        weights = (len(y) / (len(sources) * counts)).float()
        say(f"training a {hyper['network']} attributor on {len(y)} artifacts of {len(sources)} sources")
        history = attributor.train(net, attributor.normalise(x, scale), y, attributor.normalise(x_val, scale), y_val,
                                   epochs=opts["epochs"], minutes=opts["minutes"], batch_size=opts["batch_size"],
                                   seed=seed, device=device, progress=say, class_weights=weights)
        net.cpu()
        val_logits = attributor.logits(net, attributor.normalise(x_val, scale))
        labels = y_val.numpy()
        temperature = calibration.fit_temperature(val_logits, labels, smoothed=True)
        probs = calibration.softmax(val_logits, temperature) if len(labels) else np.zeros((0, len(sources)))
        threshold = calibration.open_set_threshold(probs, labels, keep=UNKNOWN_KEEP)
        predicted = probs.argmax(1) if len(labels) else np.zeros(0, dtype=np.int64)
        metrics: dict[str, Any] = {
            "attribution_accuracy": float(np.mean(predicted == labels)) if len(labels) else None,
            "validation_images": int(len(labels)),
            "accuracy_per_source": {s: (float(np.mean(predicted[labels == i] == i)) if (labels == i).any() else None)
                                    for i, s in enumerate(sources)},
            "ece": calibration.expected_calibration_error(probs, labels),
            "unknown_rate": float(np.mean(probs.max(1) < threshold)) if len(labels) else None,
            "stopped_by": history["stopped_by"], "under_trained": history["under_trained"],
            "real_examples": len(real_kept), "reference_images": len(reference), "train_artifacts": int(len(y)),
            "train_artifacts_mean_abs": float(x.abs().mean()),
            "train_real_artifact_mean_abs": float(x[y == index.get(REAL, -1)].abs().mean()) if REAL in index else None,
        }
        calib = {"method": "temperature", "temperature": temperature, "unknown_threshold": threshold,
                 "keep": UNKNOWN_KEEP}
        say(f"validation accuracy {100 * (metrics['attribution_accuracy'] or 0):.1f} %, temperature {temperature:.3g}, "
            f"unknown below {threshold:.3f}")
        del nearest_train
        info = {
            "kind": "attributor", "format": FORMAT, "space": space, "sources": list(sources), "hyper": hyper,
            "calibration": calib, "reference": reference_info, "seed": seed, "options": opts,
            "dataset": data.name, "dataset_sha256": data.dataset_sha256, "training": history,
            "validation": {k: metrics[k] for k in ("attribution_accuracy", "validation_images", "ece", "unknown_rate")},
        }
        tensors = {**reference.tensors(), "attributor.scale": scale.numpy().astype(np.float32)}
        for key, value in net.state_dict().items():
            if key.endswith("num_batches_tracked"):
                continue
            tensors["attributor." + key] = value.detach().cpu().numpy().astype(np.float16)
        data_bytes = pack_artifact(tensors, detector=self.name, version=self.version, info=info)
        return TrainedModel(data=data_bytes, metrics=metrics, calibration=calib)

    def _reference_for(self, data: TrainingSet, opts: Mapping[str, Any], rng: np.random.Generator,
                       say: Callable[[str], None]) -> tuple[Reference, list[Any], dict[str, Any]]:
        """The reference, the real training examples kept for the attributor, and how the reference was made."""
        from vestige_manifpt.reference import from_images, pixel_digest
        from vestige_manifpt.spaces import prepare

        real = [e for e in data.train if e.source == REAL]
        if opts["reference"]:
            from vestige_manifpt.commands import load_artifact

            artifact = load_artifact(opts["reference"])
            from vestige_manifpt.reference import unpack

            reference = unpack(artifact)
            files, pixels = reference.file_digests(), reference.pixel_digests()
            kept = [e for e in real if e.image.sha256 not in files and pixel_digest(prepare(e.image.image)[0]) not in pixels]
            if len(kept) < len(real):
                say(f"{len(real) - len(kept)} real training images are in the reference: left out of the real examples")
            return reference, kept, {"from": "artifact", "sha256": artifact.sha256, "images": len(reference)}
        if len(real) < 2:
            raise ManifptError(f"{data.name} has {len(real)} real training images; the reference manifold needs real "
                               "images: add some, or give --reference")
        size = opts["reference_size"]
        if size < 1:
            raise ManifptError("--reference-size must be at least 1")
        if size > len(real) - 1 or (REAL in data.sources and size > len(real) * 3 // 4):
            size = max(1, len(real) * 3 // 4) if len(real) > 1 else 1
            say(f"only {len(real)} real training images: {size} go to the reference, the rest stay real examples")
        order = rng.permutation(len(real))
        chosen = set(order[:size].tolist())
        reference = from_images([real[i].image for i in sorted(chosen)])
        kept = [e for i, e in enumerate(real) if i not in chosen]
        return reference, kept, {"from": "dataset", "images": len(reference), "dataset": data.name,
                                 "dataset_sha256": data.dataset_sha256}

    # -- use -----------------------------------------------------------------------------------

    def use_artifact(self, artifact: ArtifactFile) -> None:
        if artifact.detector != self.name:
            raise ManifptError(f"artifact {artifact.sha256[:12]} is a model of {artifact.detector}, not of {self.name}")
        if artifact.info.get("kind") == "reference":
            raise ManifptError(f"artifact {artifact.sha256[:12]} is a ManiFPT reference, not a trained model: train one "
                               f"with `vestige train manifpt --dataset DIR --reference {artifact.sha256[:12]}`")
        if artifact.info.get("format") != FORMAT:
            raise ManifptError(f"artifact {artifact.sha256[:12]} has layout {artifact.info.get('format')!r}; "
                               f"manifpt {self.version} reads layout {FORMAT}: retrain it")
        self._artifact = artifact
        self._state = None

    def shipped_artifact(self) -> ArtifactFile | None:
        from vestige.plugin.training import read_shipped

        return read_shipped(WEIGHTS_DIR)

    @property
    def labels(self) -> tuple[str, ...]:
        return tuple(self._artifact.info["sources"]) if self._artifact is not None else super().labels

    def load(self, device: str = "cpu") -> None:
        import torch

        self._torch_device = "cuda" if device in ("gpu", "cuda") and torch.cuda.is_available() else "cpu"
        self._state = None

    def model(self) -> dict[str, Any]:
        """The artifact's attributor, reference and calibration, rebuilt once."""
        artifact = self.require_artifact()
        if self._state is None:
            import torch

            from vestige_manifpt import attributor

            tensors = artifact.tensors()
            net = attributor.build(artifact.info["hyper"])
            state = {k.removeprefix("attributor."): torch.from_numpy(v.astype(np.float32))
                     for k, v in tensors.items() if k.startswith("attributor.") and k != "attributor.scale"}
            missing, unexpected = net.load_state_dict(state, strict=False)
            if unexpected or any(not k.endswith("num_batches_tracked") for k in missing):
                raise ManifptError(f"artifact {artifact.sha256[:12]} does not fit its attributor's layout; retrain it")
            self._state = {"net": net.eval(), "scale": torch.from_numpy(tensors["attributor.scale"].astype(np.float32)),
                           "reference": Reference.from_tensors(tensors), "space": artifact.info["space"],
                           "sources": tuple(artifact.info["sources"]), "calibration": artifact.info["calibration"],
                           "novelty": artifact.novelty()}
        return self._state

    def _attribute(self, batch: Sequence[ImageInput]) -> dict[str, Any]:
        """Projection, calibrated probabilities and embeddings of ``batch``.

        The network sees chunks of exactly :data:`NETWORK_CHUNK` artifacts
        (the last padded with zeros): the CPU kernels pick their algorithm by
        batch size, so a constant size keeps an image's numbers the same in
        any batch and at any position (tested), at a fraction of the cost of
        one image at a time."""
        import torch

        from vestige.plugin import calibration
        from vestige_manifpt import attributor
        from vestige_manifpt.spaces import prepare

        state = self.model()
        prepared = [prepare(item.image) for item in batch]
        pixels = np.stack([p for p, _ in prepared]) if prepared else np.zeros((0, 32, 32, 3), np.uint8)
        artifacts, index, distance = project(pixels, state["reference"], state["space"], device=self._torch_device)
        temperature = float(state["calibration"]["temperature"])
        logits, embeddings = [], []
        with torch.inference_mode():
            for start in range(0, len(prepared), NETWORK_CHUNK):
                chunk = artifacts[start : start + NETWORK_CHUNK]
                n = len(chunk)
                if n < NETWORK_CHUNK:
                    chunk = torch.cat([chunk, chunk.new_zeros((NETWORK_CHUNK - n, *chunk.shape[1:]))])
                embedded = state["net"].embed(attributor.normalise(chunk, state["scale"]))
                logits.append(state["net"].head(embedded).double().numpy()[:n])
                embeddings.append(embedded.double().numpy()[:n])
        probabilities = calibration.softmax(np.concatenate(logits), temperature) if logits else \
            np.zeros((0, len(state["sources"])))
        return {"pixels": pixels, "notes": [n for _, n in prepared], "artifacts": artifacts, "index": index,
                "distance": distance, "probabilities": probabilities,
                "embeddings": np.concatenate(embeddings) if embeddings else np.zeros((0, 0))}

    def domain_scores(self, images: Sequence[ImageInput]) -> DomainScores:
        attributed = self._attribute(images)
        return DomainScores(attributed["probabilities"], attributed["embeddings"])

    def excluded_from_domain_fit(self, image: ImageInput) -> bool:
        """Reference images project onto themselves (a zero artifact): they say nothing of real images' spread."""
        return image.sha256 in self.model()["reference"].file_digests()

    def augmentation_domain(self) -> Mapping[str, Any]:
        if not float((self.require_artifact().info.get("options") or {}).get("augment") or 0.0) > 0:
            return {}
        from vestige.plugin.augment import SEEN_CORRUPTIONS, jpeg_compression_qualities

        return {"perturbations": list(SEEN_CORRUPTIONS), "jpeg_qualities": [min(qualities := jpeg_compression_qualities()), max(qualities)]}

    def analyze(self, batch: Sequence[ImageInput]) -> list[Finding]:
        from vestige_manifpt.pictures import FINDING_PNG_LEVEL, ZOOM, artifact_pixels

        state = self.model()
        artifact_file = self.require_artifact()
        space, sources, reference = state["space"], state["sources"], state["reference"]
        attributed = self._attribute(batch)
        pixels, artifacts, index, distance = (attributed[k] for k in ("pixels", "artifacts", "index", "distance"))
        temperature = float(state["calibration"]["temperature"])
        threshold = float(state["calibration"]["unknown_threshold"])
        decisions = None
        if state["novelty"] is not None and artifact_file.domain is not None:
            decisions = decide(artifact_file.domain, state["novelty"], DomainScores(attributed["probabilities"], attributed["embeddings"]),
                               sources, threshold)
        findings = []
        for i, note in enumerate(attributed["notes"]):
            probs = attributed["probabilities"][i]
            best = int(np.argmax(probs))
            top = float(probs[best])
            source = sources[best]
            label = "unknown" if top < threshold else ("real" if source == REAL else "synthetic")
            named = None if label == "unknown" or source == REAL else source
            domain_evidence = None
            if decisions is not None:
                label, named, top = decisions[i].label, decisions[i].source, decisions[i].confidence
                domain_evidence = decisions[i].evidence
            ref = int(index[i])
            shown, zoom = artifact_pixels(artifacts[i].numpy(), space)
            findings.append(self.finding(
                label=label,
                source=named,
                scores={s: float(p) for s, p in zip(sources, probs)},
                confidence=min(1.0, top),
                evidence={
                    "space": space, "attributed": source, "unknown_threshold": threshold, "temperature": temperature,
                    "nearest_reference": {"index": ref, "file_sha256": reference.file_sha256(ref),
                                          "squared_distance": float(distance[i]),
                                          "rgb_rmse": float(np.sqrt(np.mean((pixels[i].astype(np.float64)
                                                                             - reference.pixels[ref]) ** 2)))},
                    "artifact_mean_abs": float(artifacts[i].abs().mean()),
                    "reference_images": len(reference), "input": note,
                    **({"domain": domain_evidence} if domain_evidence is not None else {}),
                },
                pictures=[
                    Picture.from_pixels("artifact.png", f"ManiFPT artifact in {space} space: the image minus its "
                                        "nearest real reference (contrast-stretched, mid-grey is zero)",
                                        shown, zoom=zoom, png_compress_level=FINDING_PNG_LEVEL),
                    Picture.from_pixels("nearest-reference.png", f"the nearest real reference image in {space} space "
                                        f"(reference #{ref}, file {reference.file_sha256(ref)[:12]}…)",
                                        np.asarray(reference.pixels[ref], dtype=np.uint8), zoom=ZOOM,
                                        png_compress_level=FINDING_PNG_LEVEL),
                ],
                device=self._torch_device,
            ))
        return findings


def project(pixels: np.ndarray, reference: Reference, space: str, *, device: str = "cpu",
            budget_bytes: int = ANALYZE_BUDGET) -> tuple[Any, np.ndarray, np.ndarray]:
    """The artifacts (float32 tensor), nearest reference indices and squared distances of N×32×32×3 ``pixels``."""
    import torch

    from vestige_manifpt.projection import nearest
    from vestige_manifpt.spaces import artifact, representation

    if len(pixels) == 0:
        return torch.zeros((0, 3, 32, 32)), np.zeros(0, np.int64), np.zeros(0)
    ref_rep, ref_norms = reference.space(space, device="cpu")
    query = representation(pixels, space, device=device)
    index, distance = nearest(query, ref_rep, budget_bytes=budget_bytes, device=device, reference_norms=ref_norms)
    return artifact(query, ref_rep[torch.from_numpy(index)], space), index, distance


def resolve_options(declared: Sequence[TrainOption], given: Mapping[str, Any] | None) -> dict[str, Any]:
    """Every declared option's value (given, converted, else its default); unknown names refused."""
    given = dict(given or {})
    unknown = sorted(set(given) - {o.name for o in declared})
    if unknown:
        raise ManifptError(f"unknown option(s) {', '.join(unknown)}; manifpt takes {', '.join(o.name for o in declared)}")
    values: dict[str, Any] = {}
    for option in declared:
        value = given.get(option.name)
        value = option.default if value is None else option.type(value)
        if option.choices and value not in option.choices:
            raise ManifptError(f"option {option.name} must be one of {', '.join(option.choices)}, not {value!r}")
        values[option.name] = value
    return values


def _trained_sources(data: TrainingSet) -> tuple[str, ...]:
    present = {e.source for e in data.train}
    missing = [s for s in data.sources if s not in present]
    if missing:
        raise ManifptError(f"{data.name} has no training images of {', '.join(missing)}; every source needs some")
    if len(data.sources) < 2:
        raise ManifptError(f"{data.name} has one source; attribution needs at least two")
    return tuple(data.sources)


__all__ = ["ManifptDetector", "ManifptError", "ReferenceError", "project"]
