"""The ``fingerprint`` detector: closed-set attribution with calibrated probabilities and an ``unknown`` outcome.

Torch is imported only when a model is trained or loaded, so loading the
plugin (every ``vestige`` command does) stays cheap.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from vestige.plugin import Finding, ImageInput, InvalidInputError, Picture, calibration
from vestige.plugin.domain import Decision, DomainScores, decide
from vestige.plugin.training import REAL, ArtifactFile, TrainableDetector, TrainedModel, TrainingSet, TrainOption
from vestige_fingerprint import recipe
from vestige_fingerprint.pictures import display_zoom, fingerprint_png, stretch
from vestige_fingerprint.preprocess import stack
from vestige_fingerprint.weights import WEIGHTS_DIR, shipped

if TYPE_CHECKING:
    from vestige_fingerprint.runtime import Runtime

VERSION = "1.0.0"


class FingerprintDetector(TrainableDetector):
    """Yu, Davis and Fritz (ICCV 2019): a CNN image classifier, or the auto-encoder fingerprint variant."""

    name = "fingerprint"
    version = VERSION
    kind = "attribution"
    description = ("Learned GAN fingerprints (Yu et al. 2019): attributes an image to real or a known generator, "
                   "calibrated, with an unknown outcome")
    device = "gpu"
    batch_size = 256
    train_options = (
        TrainOption("variant", str, "image", "image: CNN classifier (the training default); autoencoder: image and "
                    "model fingerprints (the shipped default model is an immunised auto-encoder)",
                    choices=("image", "autoencoder")),
        TrainOption("immunize", bool, False, "After clean training, fine-tune on perturbed images (noise, blur, "
                    "JPEG, crop-resize, each with p = 0.5)"),
        TrainOption("augment", float, recipe.DEFAULT_AUGMENT, "Share of training images re-shared afresh every epoch from the first "
                    "(crop 0.8–1, resize 0.5–1, blur σ 0.3–1.5, JPEG 40–95, each with p = 0.5); early stopping and "
                    "calibration then also see a re-shared copy of the validation split. 0: none"),
        TrainOption("epochs", int, 30, "Most epochs of clean training (early stopping on validation loss); "
                    "0 with --start-from to only immunise"),
        TrainOption("immunize_epochs", int, 10, "Most epochs of immunisation"),
        TrainOption("minutes", float, None, "Wall-clock budget per phase, checked after each epoch"),
        TrainOption("batch_size", int, 32, "Images per optimisation step"),
        TrainOption("size", int, None, "Input side (4·2^k); default: the training images' common side"),
        TrainOption("start_from", str, None, "A fingerprint artifact file to start from instead of random weights "
                    "(same sources and variant), e.g. to immunise a clean model"),
        TrainOption("schedule", str, recipe.DEFAULT_SCHEDULE, "Learning rate: constant, or cosine (from 1e-3 to 0 over --epochs; "
                    "every planned epoch runs, the best validation epoch is kept)", ("constant", "cosine")),
        TrainOption("head", str, recipe.DEFAULT_HEAD, "Image variant: dense (the paper's dense layer over the 4×4 map) or pool "
                    "(the map averaged over positions first)", ("dense", "pool")),
        TrainOption("tta", str, recipe.DEFAULT_TTA, "Image variant: none, or flip (features averaged over the image and its mirror "
                    "at validation and in use)", ("none", "flip")),
        TrainOption("norm", str, "batch", "Image variant: batch normalisation after each 3×3 convolution, or none "
                    "(the paper's network; learns much more slowly)", choices=("batch", "none")),
        TrainOption("keep", float, 0.99, "Share of correctly classified validation images the unknown "
                    "threshold keeps attributed"),
    )
    #: Where the shipped artifacts and their manifest are (a test points it elsewhere).
    weights_dir: Path = WEIGHTS_DIR
    #: Precisions ``load`` honours (``precision`` is read there); bf16 is for GPUs and is not bit-exact.
    precisions = ("fp32", "bf16")
    precision = "fp32"
    domain_features = ("image variant: the dense layer before the classifier head; auto-encoder variant: the "
                       "logits with the per-channel mean and spread of the code and of the fingerprint's magnitude")

    def __init__(self) -> None:
        self._runtime: Runtime | None = None
        self._device = "cpu"
        self._model_pictures: dict[int, bytes] = {}
        self._kernels: np.ndarray | None = None
        self._novelty: Any = None

    # -- the training API --------------------------------------------------------

    def fit(self, data: TrainingSet, *, seed: int = 0, options: Mapping[str, Any] | None = None,
            progress: Callable[[str], None] | None = None, device: str = "cpu") -> TrainedModel:
        from vestige_fingerprint.fitting import fit_fingerprint

        return fit_fingerprint(data, seed=seed, options=options, progress=progress, device=device,
                               detector=self.name, version=self.version)

    def use_artifact(self, artifact: ArtifactFile) -> None:
        if artifact.detector != self.name:
            raise InvalidInputError(f"model artifact {artifact.sha256[:12]}… is for detector {artifact.detector}, not {self.name}")
        for key in ("variant", "sources", "input_size", "architecture", "temperature", "threshold"):
            if key not in artifact.info:
                raise InvalidInputError(f"model artifact {artifact.sha256[:12]}… lacks {key!r} in its info; "
                                        "it was not written by this detector")
        self._artifact = artifact
        self._runtime = None
        self._model_pictures = {}
        self._kernels = None
        self._novelty = artifact.novelty()

    def shipped_artifact(self) -> ArtifactFile | None:
        return shipped(folder=self.weights_dir)

    @property
    def labels(self) -> tuple[str, ...]:
        return tuple(self._artifact.info["sources"]) if self._artifact is not None else (REAL,)

    # -- running -----------------------------------------------------------------

    def load(self, device: str = "cpu") -> None:
        from vestige_fingerprint.runtime import Runtime

        artifact = self.require_artifact()
        self._device = "cuda" if device in ("cuda", "gpu") else "cpu"
        tensors = artifact.tensors()
        self._runtime = Runtime(artifact.info["architecture"], tensors, device=self._device, precision=self.precision)
        self._model_pictures = {}
        kernels = tensors.get("model_fingerprints")
        self._kernels = None if kernels is None else kernels.astype(np.float32)

    @property
    def runtime(self) -> Runtime:
        if self._runtime is None:
            self.load(self._device)
        assert self._runtime is not None
        return self._runtime

    def augmentation_domain(self) -> Mapping[str, Any]:
        from vestige.plugin.augment import RESHARING
        from vestige_fingerprint.immunisation import RECIPE

        info = self.require_artifact().info
        perturbations: list[str] = []
        qualities: list[int] = []
        if info.get("immunized"):
            perturbations += ["crop-resize-back", "gaussian-blur", "gaussian-noise", "jpeg"]
            qualities += list(RECIPE["jpeg"]["quality"])
        if info.get("augment"):
            perturbations += ["crop-resize-back", "resize-down-up", "gaussian-blur", "jpeg"]
            qualities += list(RESHARING["jpeg"]["quality"])
        if not perturbations:
            return {}
        return {"perturbations": sorted(set(perturbations)), "jpeg_qualities": [min(qualities), max(qualities)]}

    def _scored(self, batch: Sequence[ImageInput]) -> tuple[dict[str, np.ndarray], np.ndarray, list[str]]:
        info = self.require_artifact().info
        pixels, hows = stack([item.image for item in batch], int(info["input_size"]))
        scored = self.runtime.score(pixels, chunk=max(1, len(batch)))
        return scored, calibration.softmax(scored["logits"], float(info["temperature"])), hows

    def domain_scores(self, images: Sequence[ImageInput]) -> DomainScores:
        scored, probabilities, _ = self._scored(images)
        return DomainScores(probabilities, scored["features"])

    def analyze(self, batch: Sequence[ImageInput]) -> list[Finding]:
        artifact = self.require_artifact()
        info = artifact.info
        sources: list[str] = list(info["sources"])
        side = int(info["input_size"])
        temperature, threshold = float(info["temperature"]), float(info["threshold"])
        scored, probabilities, hows = self._scored(batch)
        decisions: list[Decision] | None = None
        if self._novelty is not None and artifact.domain is not None:
            decisions = decide(artifact.domain, self._novelty, DomainScores(probabilities, scored["features"]), sources,
                               threshold)
        findings = []
        for i, item in enumerate(batch):
            p = probabilities[i]
            order = np.argsort(-p, kind="stable")
            top, second = int(order[0]), int(order[1]) if len(order) > 1 else None
            candidate, confidence = sources[top], float(p[top])
            evidence: dict[str, Any] = {
                "variant": info["variant"],
                "top_candidate": candidate,
                "top_probability": confidence,
                "runner_up": None if second is None else sources[second],
                "runner_up_probability": None if second is None else float(p[second]),
                "threshold": threshold,
                "temperature": temperature,
                "input": f"{hows[i]} to {side}×{side} from {item.image.width}×{item.image.height}",
            }
            if REAL in sources:
                evidence["p_synthetic"] = 1.0 - float(p[sources.index(REAL)])
            if decisions is not None:
                label, source, confidence = decisions[i].label, decisions[i].source, decisions[i].confidence
                evidence["domain"] = decisions[i].evidence
            elif confidence < threshold:
                label, source = "unknown", None
                evidence["reason"] = (f"calibrated maximum probability {confidence:.3f} is below the open-set threshold "
                                      f"{threshold:.3f}: not attributed (top candidate {candidate})")
            elif candidate == REAL:
                label, source = "real", None
            else:
                label, source = "synthetic", candidate
            pictures: list[Picture] = []
            embedding = None
            if "fingerprints" in scored:
                fingerprint = scored["fingerprints"][i]
                assert self._kernels is not None
                kernel = self._kernels[top]
                evidence["fingerprint_cosine"] = float(
                    np.dot(fingerprint.ravel(), kernel.ravel())
                    / (np.linalg.norm(fingerprint) * np.linalg.norm(kernel) + 1e-12))
                pictures = [
                    Picture.from_pixels("image-fingerprint", "Image fingerprint: the image minus its reconstruction "
                                        "(contrast-stretched, grey is zero)", stretch(fingerprint),
                                        zoom=display_zoom(fingerprint.shape[-1], fingerprint.shape[-2])),
                    Picture(f"model-fingerprint-{candidate}",
                            f"Model fingerprint of {candidate}" + (" (top candidate, not attributed)"
                                                                   if label == "unknown" else ""),
                            self._model_picture(top)),
                ]
            else:
                embedding = [float(v) for v in scored["features"][i]]
            findings.append(self.finding(
                label=label, source=source, scores={s: float(p[j]) for j, s in enumerate(sources)},
                confidence=confidence, evidence=evidence, pictures=pictures, embedding=embedding,
                device=self._device, precision=self.precision))
        return findings

    def network_throughput(self, *, batch_size: int, n: int, device: str, precision: str) -> float:
        """Images per second of the network alone on ready uint8 tensors (``vestige bench detector``)."""
        import time

        runtime = self.runtime
        side = int(self.require_artifact().info["input_size"])
        pixels = np.random.default_rng(0).integers(0, 256, (batch_size, 3, side, side), dtype=np.uint8)
        runtime.score(pixels, chunk=batch_size)  # warm-up
        began, done = time.perf_counter(), 0
        while done < n:  # score() copies its outputs to the CPU, which waits for a GPU to finish
            runtime.score(pixels[: min(batch_size, n - done)], chunk=batch_size)
            done += min(batch_size, n - done)
        return n / (time.perf_counter() - began)

    def _model_picture(self, index: int) -> bytes:
        if index not in self._model_pictures:
            assert self._kernels is not None
            self._model_pictures[index] = fingerprint_png(self._kernels[index])
        return self._model_pictures[index]
