"""The ``repmix`` detector: training options, the artifact it writes and reads, and ``analyze``.

Torch is imported only when the detector trains or loads, so listing plugins
stays fast.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from vestige.plugin import Finding, ImageInput, InvalidInputError, VestigeError
from vestige.plugin.domain import DomainScores, decide
from vestige.plugin.training import REAL, ArtifactFile, TrainableDetector, TrainedModel, TrainingSet, TrainOption, pack_artifact, read_shipped

ARTIFACT_FORMAT = "repmix/1"
WEIGHTS_DIR = Path(__file__).parent / "weights"
#: Candidates listed in a finding's evidence.
TOP_CANDIDATES = 3


class ArtifactMismatchError(VestigeError):
    """An artifact of another detector or of a layout this version does not read."""

    status = 422


def _recipe(options: Mapping[str, Any]):  # noqa: ANN202 - torch-side type, imported lazily
    from vestige_repmix.fitting import LR_DECAY, Recipe

    lr_decay = LR_DECAY if options.get("lr_decay") is None else float(options["lr_decay"])
    if not 0 < lr_decay <= 1:
        raise InvalidInputError(f"--lr-decay must be in (0, 1], not {lr_decay}")
    return Recipe(mix=not options.get("no_mix"), compound=not options.get("no_compound"),
                  augment=not options.get("no_augment"), epochs=int(options.get("epochs") or 30),
                  minutes=float(options.get("minutes") or 0.0), batch_size=int(options.get("batch_size") or 64),
                  lr=float(options.get("lr") or 1e-3), lr_decay=lr_decay)


class RepMixDetector(TrainableDetector):
    """Attribution by a ResNet trained with representation mixing, the compound loss and corruption augmentation."""

    name = "repmix"
    version = "1.0.0"
    kind = "attribution"
    description = "RepMix (Bui et al. 2022): ResNet attribution robust to re-sharing, with an open-set 'unknown'"
    device = "cpu"
    batch_size = 64
    train_options = (
        TrainOption("arch", str, "narrow", "Backbone: narrow (CIFAR-style, 32² and CPU) or resnet50 (the paper's).",
                    choices=("narrow", "resnet50")),
        TrainOption("mix_layer", int, None, "Stage whose output is mixed (0 = stem; default: the one before the last)."),
        TrainOption("no_mix", bool, False, "Ablation: no representation mixing."),
        TrainOption("no_compound", bool, False, "Ablation: attribution head alone, no detection head or gating."),
        TrainOption("no_augment", bool, False, "Ablation: no corruption augmentation."),
        TrainOption("epochs", int, 30, "At most this many epochs (early stopping may end sooner)."),
        TrainOption("minutes", float, 0.0, "Wall-clock budget: no epoch starts that would end past it (0: none)."),
        TrainOption("batch_size", int, 64, "Images per step."),
        TrainOption("lr", float, 1e-3, "Adam's learning rate (multiplied by --lr-decay after each epoch)."),
        TrainOption("lr_decay", float, 0.85, "Learning-rate factor per epoch (the paper's 0.85; a slower decay "
                    "lets more epochs still learn)."),
    )

    domain_features = "the L2-normalised 256-d embedding both heads read"

    def __init__(self) -> None:
        self._net: Any = None
        self._info: Mapping[str, Any] = {}
        self._device = "cpu"
        self._novelty: Any = None

    # -- training ---------------------------------------------------------

    def fit(self, data: TrainingSet, *, seed: int = 0, options: Mapping[str, Any] | None = None,
            progress: Callable[[str], None] | None = None, device: str = "cpu") -> TrainedModel:
        net, hyper, recipe, report = self.train_network(data, seed=seed, options=options, progress=progress)
        return self.package(net, hyper, recipe, report, sources=data.sources, dataset_sha256=data.dataset_sha256,
                            seed=seed)

    def train_network(self, data: TrainingSet, *, seed: int = 0, options: Mapping[str, Any] | None = None,
                      progress: Callable[[str], None] | None = None) -> tuple[Any, dict, Any, dict]:
        """The trained network, its hyper-parameters, the recipe and what training measured (no artifact yet)."""
        from vestige_repmix.fitting import fit_network, input_size
        from vestige_repmix.nets import architecture

        options = dict(options or {})
        recipe = _recipe(options)
        if REAL not in data.sources and recipe.compound:
            # The detection head learns real against synthetic: without real images it has nothing to learn,
            # and gating by it would make the first generator stand in for "real". Attribution alone, then.
            recipe = dataclasses.replace(recipe, compound=False)
            (progress or (lambda _: None))("no real source: detection head and gating off, attribution among "
                                           "the generators only")
        try:
            hyper = architecture(options.get("arch") or "narrow", len(data.sources), mix_layer=options.get("mix_layer"))
        except ValueError as exc:
            raise ArtifactMismatchError(str(exc)) from None
        hyper["input_size"] = input_size(data.train)
        net, report = fit_network(data, hyper, recipe, seed=seed, progress=progress or (lambda _: None))
        return net, hyper, recipe, report

    def package(self, net: Any, hyper: Mapping[str, Any], recipe: Any, report: Mapping[str, Any], *,
                sources: Sequence[str], dataset_sha256: str | None, seed: int) -> TrainedModel:
        """The artifact of a trained network: fp16 tensors and the header ``use_artifact`` reads."""
        tensors = {k: v.detach().cpu().numpy().astype(np.float16) for k, v in net.state_dict().items()
                   if not k.endswith("num_batches_tracked")}
        flags = {"mix": recipe.mix, "compound": recipe.compound, "augment": recipe.augment}
        info = {
            "format": ARTIFACT_FORMAT, "hyper": dict(hyper), "sources": list(sources), "input_size": hyper["input_size"],
            "flags": flags, "temperature": report["temperature"], "threshold": report["threshold"],
            "keep": recipe.keep, "dataset_sha256": dataset_sha256, "seed": seed,
            "recipe": {"epochs": recipe.epochs, "minutes": recipe.minutes, "batch_size": recipe.batch_size,
                       "lr": recipe.lr, "weight_decay": recipe.weight_decay, "lr_decay": recipe.lr_decay, "augment_p": 0.95},
            "history": report["history"],
        }
        metrics = {k: v for k, v in report.items() if k not in ("history", "temperature", "threshold")}
        return TrainedModel(data=pack_artifact(tensors, detector=self.name, version=self.version, info=info),
                            metrics=metrics, calibration={"temperature": report["temperature"],
                                                          "threshold": report["threshold"]})

    # -- artifacts --------------------------------------------------------

    def use_artifact(self, artifact: ArtifactFile) -> None:
        if artifact.detector != self.name:
            raise ArtifactMismatchError(f"artifact {artifact.sha256[:12]} is a model of {artifact.detector}, not of {self.name}")
        if artifact.info.get("format") != ARTIFACT_FORMAT:
            raise ArtifactMismatchError(f"artifact {artifact.sha256[:12]} has layout {artifact.info.get('format')!r}; "
                                        f"{self.name} {self.version} reads {ARTIFACT_FORMAT}: retrain it")
        self._artifact = artifact
        self._info = artifact.info
        self._net = None
        self._novelty = artifact.novelty()  # parsed once per artifact, not per batch

    def shipped_artifact(self) -> ArtifactFile | None:
        """The manifest's ``default`` entry of ``weights/``, hashed against the manifest on every read."""
        return read_shipped(WEIGHTS_DIR)

    @property
    def labels(self) -> tuple[str, ...]:
        return tuple(self._info.get("sources", ())) or super().labels

    def load(self, device: str = "cpu") -> None:
        import torch

        from vestige_repmix.nets import RepMixNet

        artifact = self.require_artifact()
        net = RepMixNet(self._info["hyper"])
        state = {k: torch.from_numpy(v.astype(np.float32)) for k, v in artifact.tensors().items()}
        missing, unexpected = net.load_state_dict(state, strict=False)
        if unexpected or [k for k in missing if not k.endswith("num_batches_tracked")]:
            raise ArtifactMismatchError(f"artifact {artifact.sha256[:12]} does not fit the network its header "
                                        "describes; retrain it")
        self._device = "cuda" if device in ("cuda", "gpu") and torch.cuda.is_available() else "cpu"
        self._net = net.to(self._device).eval()

    # -- inference --------------------------------------------------------

    def infer(self, pixels: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(L2-normalised embeddings, P(synthetic) from the detection head, calibrated attribution probabilities)."""
        import torch

        from vestige.plugin.calibration import softmax
        from vestige_repmix.fitting import to_tensor
        from vestige_repmix.nets import gate

        if self._net is None:
            self.load(self._device)
        with torch.no_grad():
            embedding, det, attr = self._net(to_tensor(pixels).to(self._device))
            if self._info["flags"]["compound"]:
                attr = gate(det, attr)
            embedding = torch.nn.functional.normalize(embedding, dim=1)
        probabilities = softmax(attr.cpu().numpy(), float(self._info["temperature"]))
        sources = list(self._info["sources"])
        if self._info["flags"]["compound"]:
            synthetic = torch.softmax(det, dim=1)[:, 1].cpu().numpy().astype(np.float64)
        elif REAL in sources:
            synthetic = 1.0 - probabilities[:, sources.index(REAL)]
        else:  # a model of generators only: every image it is shown is taken to be synthetic
            synthetic = np.full(len(probabilities), np.nan)
        return embedding.cpu().numpy(), synthetic, probabilities

    def network_throughput(self, *, batch_size: int, n: int, device: str = "cpu", precision: str = "fp32") -> float:
        """Images per second of the network alone (embedding and both heads) on ready N×3×S×S tensors."""
        import time

        import torch

        if self._net is None:
            self.load(device)
        size = int(self._info["input_size"])
        x = torch.zeros(batch_size, 3, size, size, device=self._device)
        with torch.no_grad():
            self._net(x)
            began, done = time.perf_counter(), 0
            while done < n:
                self._net(x)
                done += batch_size
        return done / (time.perf_counter() - began)

    def _infer_inputs(self, batch: Sequence[ImageInput]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        from vestige_repmix.fitting import to_array

        self.require_artifact()
        size = int(self._info.get("input_size", 32))
        pixels = np.stack([to_array(item.image, size) for item in batch]) if batch else np.zeros((0, size, size, 3), np.uint8)
        return self.infer(pixels)

    def domain_scores(self, images: Sequence[ImageInput]) -> DomainScores:
        embeddings, synthetic, probabilities = self._infer_inputs(images)
        return DomainScores(probabilities, embeddings)

    def augmentation_domain(self) -> Mapping[str, Any]:
        if not self.require_artifact().info["flags"]["augment"]:
            return {}
        from vestige.plugin.augment import SEEN_CORRUPTIONS, jpeg_compression_qualities

        return {"perturbations": list(SEEN_CORRUPTIONS), "jpeg_qualities": [min(qualities := jpeg_compression_qualities()), max(qualities)]}

    def analyze(self, batch: Sequence[ImageInput]) -> list[Finding]:
        size = int(self._info.get("input_size", 32)) if self._artifact is not None else 32
        artifact = self.require_artifact()
        embeddings, synthetic, probabilities = self._infer_inputs(batch)
        sources = list(self._info["sources"])
        threshold = float(self._info["threshold"])
        decisions = None
        if self._novelty is not None and artifact.domain is not None:
            decisions = decide(artifact.domain, self._novelty, DomainScores(probabilities, embeddings), sources, threshold)
        findings = []
        for n, (item, embedding, p_fake, probs) in enumerate(zip(batch, embeddings, synthetic, probabilities)):
            best = int(np.argmax(probs))
            confidence = float(probs[best])
            if decisions is not None:
                label, source, confidence = decisions[n].label, decisions[n].source, decisions[n].confidence
            elif confidence < threshold:
                label, source = "unknown", None
            elif sources[best] == REAL:
                label, source = "real", None
            else:
                label, source = "synthetic", sources[best]
            order = np.argsort(-probs)[:TOP_CANDIDATES]
            evidence = {
                "detection_probability": None if np.isnan(p_fake) else float(p_fake),
                "top_candidates": [{"source": sources[i], "probability": float(probs[i])} for i in order],
                "temperature": float(self._info["temperature"]), "threshold": threshold,
                "input": {"width": item.image.width, "height": item.image.height, "working_size": size,
                          "resized": item.image.size != (size, size)},
            }
            if decisions is not None:
                evidence["domain"] = decisions[n].evidence
            findings.append(self.finding(label=label, source=source, confidence=confidence,
                                         scores={s: float(p) for s, p in zip(sources, probs)}, evidence=evidence,
                                         device=self._device, precision="fp32",
                                         embedding=[float(v) for v in embedding]))
        return findings
