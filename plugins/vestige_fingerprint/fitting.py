"""Training the fingerprint detector: clean training, optional immunisation, calibration (imports torch).

Recipe (Yu et al. 2019, methods.md §1): Adam (β1 = 0, β2 = 0.99, lr 1e-3),
batch 32, random horizontal flips, softmax cross-entropy; the auto-encoder
variant adds 20 × the L1 reconstruction error (no adversarial term on the
reconstruction: at this scale it is dropped, as methods.md allows). The
epoch with the lowest validation cross-entropy is kept; training stops after
``PATIENCE`` epochs without a better one, after ``epochs``, or before an
epoch that would overrun the ``minutes`` budget (judged by the mean epoch
time so far).

Immunisation fine-tunes the kept network (Adam, lr 2e-4) on training images
perturbed afresh every epoch (:mod:`vestige_fingerprint.immunisation`),
choosing its epoch by the cross-entropy on the clean *and* a perturbed copy
of the validation split, which is also what it is calibrated on.

The weights are rounded to fp16 (as the artifact stores them) *before* the
validation logits are computed, so temperature and threshold are fitted on
the numbers inference will produce. With the same seed, data, options and
thread count on the CPU, training gives the same artifact byte for byte (a
``minutes`` budget can end it at a different epoch; the recorded epoch count
replays it).
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from vestige.plugin import InvalidInputError, calibration
from vestige.plugin.augment import RESHARING, Resharer
from vestige.plugin.training import REAL, ArtifactFile, EpochClock, TrainedModel, TrainingSet, pack_artifact
from vestige_fingerprint.immunisation import RECIPE, Immuniser
from vestige_fingerprint.nets import architecture, build, stage_count
from vestige_fingerprint.preprocess import fit_to_side, training_side
from vestige_fingerprint.recipe import DEFAULT_AUGMENT, DEFAULT_HEAD, DEFAULT_SCHEDULE, DEFAULT_TTA
from vestige_fingerprint.runtime import Runtime, fp16_arrays, to_float

PATIENCE = 4
LEARNING_RATE = 1e-3
IMMUNISE_LEARNING_RATE = 2e-4
RECONSTRUCTION_WEIGHT = 20.0
OPEN_SET_RULE = ("unknown when the calibrated maximum probability is below the threshold: the "
                 "⌊(1 − keep)·n⌋-th smallest calibrated maximum probability of the n correctly classified "
                 "validation images, so a share keep of them stays attributed")

Progress = Callable[[str], None]


def parse_options(options: Mapping[str, Any] | None) -> dict[str, Any]:
    """Options as ``vestige train`` or ``--option k=v`` give them (values may be strings), checked."""
    raw = dict(options or {})
    out: dict[str, Any] = {}

    def number(key: str, kind: type, default: Any, low: float) -> Any:
        value = raw.pop(key, None)
        if value is None or value == "":
            return default
        try:
            parsed = kind(value)
        except (TypeError, ValueError):
            raise InvalidInputError(f"fingerprint option {key} must be a number, not {value!r}") from None
        if parsed < low:
            raise InvalidInputError(f"fingerprint option {key} must be at least {low}, not {value!r}")
        return parsed

    variant = raw.pop("variant", None) or "image"
    if variant not in ("image", "autoencoder"):
        raise InvalidInputError(f"fingerprint option variant must be image or autoencoder, not {variant!r}")
    out["variant"] = variant
    immunize = raw.pop("immunize", False)
    if isinstance(immunize, str):
        immunize = immunize.strip().lower() in ("1", "true", "yes", "on")
    out["immunize"] = bool(immunize)
    out["epochs"] = number("epochs", int, 30, 0)
    out["augment"] = number("augment", float, DEFAULT_AUGMENT, 0.0)
    if out["augment"] > 1.0:
        raise InvalidInputError(f"fingerprint option augment is a share of the training images, at most 1, not {out['augment']}")
    out["immunize_epochs"] = number("immunize_epochs", int, 10, 1)
    out["minutes"] = number("minutes", float, None, 0.0)
    out["batch_size"] = number("batch_size", int, 32, 1)
    out["size"] = number("size", int, None, 8)
    keep = number("keep", float, 0.99, 0.0)
    if not 0.0 < keep <= 1.0:
        raise InvalidInputError(f"fingerprint option keep must lie in (0, 1], not {keep!r}")
    out["keep"] = keep
    out["start_from"] = raw.pop("start_from", None) or None
    schedule = raw.pop("schedule", None) or DEFAULT_SCHEDULE
    if schedule not in ("constant", "cosine"):
        raise InvalidInputError(f"fingerprint option schedule must be constant or cosine, not {schedule!r}")
    out["schedule"] = schedule
    head = raw.pop("head", None) or DEFAULT_HEAD
    if head not in ("dense", "pool"):
        raise InvalidInputError(f"fingerprint option head must be dense or pool, not {head!r}")
    out["head"] = head
    tta = raw.pop("tta", None) or DEFAULT_TTA
    if tta not in ("none", "flip"):
        raise InvalidInputError(f"fingerprint option tta must be none or flip, not {tta!r}")
    out["tta"] = tta
    norm = raw.pop("norm", None) or "batch"
    if norm not in ("batch", "none"):
        raise InvalidInputError(f"fingerprint option norm must be batch or none, not {norm!r}")
    out["norm"] = norm
    if raw:
        raise InvalidInputError(f"fingerprint has no training option {sorted(raw)[0]!r}")
    if out["epochs"] == 0 and not out["start_from"]:
        raise InvalidInputError("fingerprint option epochs may be 0 only with start_from (an artifact to fine-tune)")
    if out["epochs"] == 0:
        out["augment"] = 0.0  # no epoch runs, so none is augmented (the artifact must not claim it)
    return out


def _starting_point(path: str, sources: Sequence[str], variant: str) -> tuple[ArtifactFile, dict[str, Any]]:
    """The artifact to fine-tune from, checked against this training's sources and variant."""
    try:
        artifact = ArtifactFile.from_bytes(Path(path).read_bytes(), origin="imported", name=path)
    except OSError as exc:
        raise InvalidInputError(f"cannot read start_from artifact {path}: {exc.strerror}") from None
    info = artifact.info
    if artifact.detector != "fingerprint" or info.get("variant") != variant:
        raise InvalidInputError(f"start_from {path} is not a fingerprint {variant} artifact")
    if list(info.get("sources", [])) != list(sources):
        raise InvalidInputError(f"start_from {path} was trained on sources {', '.join(info.get('sources', []))}, "
                                f"not this dataset's {', '.join(sources)}")
    return artifact, dict(info["architecture"])


def _prepare(examples: Sequence[Any], side: int, index: Mapping[str, int]) -> tuple[list[Image.Image], np.ndarray, np.ndarray]:
    pictures = [fit_to_side(e.image.image, side)[0] for e in examples]
    pixels = np.stack([np.asarray(p, dtype=np.uint8).transpose(2, 0, 1) for p in pictures]) if pictures else \
        np.zeros((0, 3, side, side), np.uint8)
    labels = np.array([index[e.source] for e in examples], dtype=np.int64)
    return pictures, pixels, labels


def _perturbed(pictures: Sequence[Image.Image], immuniser: Immuniser, rng: np.random.Generator) -> np.ndarray:
    return np.stack([np.asarray(immuniser(p, rng), dtype=np.uint8).transpose(2, 0, 1) for p in pictures])


class _Trainer:
    """One optimisation phase over fixed tensors; keeps the epoch with the lowest validation cross-entropy."""

    def __init__(self, net: torch.nn.Module, *, autoencoder: bool, batch_size: int, lr: float,
                 generator: torch.Generator, device: torch.device, progress: Progress, schedule: str = "constant") -> None:
        self.net = net
        self.lr = lr
        self.schedule = schedule
        self.autoencoder = autoencoder
        self.batch_size = batch_size
        self.generator = generator
        self.device = device
        self.progress = progress
        self.optimizer = torch.optim.Adam(net.parameters(), lr=lr, betas=(0.0, 0.99))

    def _loss(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if self.autoencoder:
            logits, reconstruction = self.net(x)
            ce = F.cross_entropy(logits, y)
            return ce + RECONSTRUCTION_WEIGHT * (reconstruction - x).abs().mean(), ce
        ce = F.cross_entropy(self.net(x), y)
        return ce, ce

    def epoch(self, pixels: torch.Tensor, labels: torch.Tensor) -> float:
        self.net.train()
        n = len(labels)
        order = torch.randperm(n, generator=self.generator)
        flips = torch.rand(n, generator=self.generator) < 0.5
        total = 0.0
        for start in range(0, n, self.batch_size):
            idx = order[start : start + self.batch_size]
            x = to_float(pixels[idx])
            x = torch.where(flips[idx].view(-1, 1, 1, 1), x.flip(3), x).to(self.device)
            loss, _ = self._loss(x, labels[idx].to(self.device))
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self.optimizer.step()
            total += loss.item() * len(idx)
        return total / max(1, n)

    @torch.no_grad()
    def validation_loss(self, pixels: torch.Tensor, labels: torch.Tensor) -> tuple[float, float]:
        """Mean cross-entropy and accuracy on a split (no flips)."""
        self.net.eval()
        ce_sum, correct = 0.0, 0
        for start in range(0, len(labels), 256):
            x = to_float(pixels[start : start + 256]).to(self.device)
            y = labels[start : start + 256].to(self.device)
            out = self.net(x)
            logits = out[0] if self.autoencoder else out
            ce_sum += float(F.cross_entropy(logits, y, reduction="sum"))
            correct += int((logits.argmax(1) == y).sum())
        return ce_sum / max(1, len(labels)), correct / max(1, len(labels))

    def run(self, epochs: int, minutes: float | None, train: Callable[[int], tuple[torch.Tensor, torch.Tensor]],
            val: tuple[torch.Tensor, torch.Tensor], phase: str) -> dict[str, Any]:
        clock = EpochClock(epochs, minutes)
        best_loss, best_epoch, best_state, stale, ran = float("inf"), 0, None, 0, 0
        for epoch in range(1, epochs + 1):
            if self.schedule == "cosine":  # from lr down to 0 at the last planned epoch, half a cosine
                for group in self.optimizer.param_groups:
                    group["lr"] = self.lr * 0.5 * (1 + math.cos(math.pi * (epoch - 1) / epochs))
            train_loss = self.epoch(*train(epoch))
            val_loss, val_acc = self.validation_loss(*val) if len(val[1]) else (train_loss, float("nan"))
            ran = epoch
            better = val_loss < best_loss
            if better:
                best_loss, best_epoch, best_state, stale = val_loss, epoch, copy.deepcopy(self.net.state_dict()), 0
            else:
                stale += 1
            self.progress(f"{phase} {clock.lap()}: train loss {train_loss:.4f}, validation cross-entropy "
                          f"{val_loss:.4f}, accuracy {val_acc:.4f}{' (best)' if better else ''}")
            if stale >= PATIENCE and self.schedule == "constant":
                clock.early_stop()
                self.progress(f"{phase}: no better validation loss for {PATIENCE} epochs, stopping")
                break
            if epoch < epochs and clock.over_budget():
                self.progress(f"{phase}: {clock.warning()}")
                break
        if best_state is not None:
            self.net.load_state_dict(best_state)
        return {"epochs_run": ran, "best_epoch": best_epoch, "best_val_cross_entropy": round(best_loss, 6),
                **clock.metrics()}


def fit_fingerprint(data: TrainingSet, *, seed: int, options: Mapping[str, Any] | None, progress: Progress | None,
                    device: str, detector: str, version: str) -> TrainedModel:
    """Train, optionally immunise, calibrate, and pack the artifact."""
    opts = parse_options(options)
    say: Progress = progress or (lambda message: None)
    began = time.monotonic()
    sources = tuple(data.sources)
    used = {e.source for e in data.train}
    if len(used) < 2:
        raise InvalidInputError(f"{data.name} has training images of {len(used)} source; attribution needs at least two")
    index = {s: i for i, s in enumerate(sources)}
    start = None
    if opts["start_from"]:
        start, hyper = _starting_point(opts["start_from"], sources, opts["variant"])
        side = int(hyper["size"])
    else:
        side = opts["size"] or training_side(e.image.image.size for e in data.train)
        try:
            stage_count(side)
        except ValueError as exc:
            raise InvalidInputError(f"fingerprint option size: {exc}") from None
        hyper = architecture(opts["variant"], side, len(sources))
        if opts["variant"] == "image":
            hyper["norm"] = opts["norm"]
            if opts["head"] != "dense":
                hyper["head"] = opts["head"]
            if opts["tta"] != "none":
                hyper["test_time"] = opts["tta"]
    torch_device = torch.device(device)
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    was_deterministic = torch.are_deterministic_algorithms_enabled()
    torch.use_deterministic_algorithms(True, warn_only=True)
    try:
        train_pictures, train_pixels, train_labels = _prepare(data.train, side, index)
        val_pictures, val_pixels, val_labels = _prepare(data.validation, side, index)
        say(f"{opts['variant']} variant, {side}×{side}, {len(sources)} classes, {len(train_labels)} training and "
            f"{len(val_labels)} validation images, batch {opts['batch_size']}, {torch.get_num_threads()} threads")
        net = build(hyper)
        if start is not None:
            net.load_state_dict({k: torch.from_numpy(np.asarray(v, dtype=np.float32) if v.dtype == np.float16 else
                                                     np.array(v)) for k, v in start.tensors().items()})
            say(f"starting from artifact {start.sha256[:12]}")
        net.to(torch_device)
        autoencoder = opts["variant"] == "autoencoder"
        trainer = _Trainer(net, autoencoder=autoencoder, batch_size=opts["batch_size"], lr=LEARNING_RATE,
                           generator=generator, device=torch_device, progress=say, schedule=opts["schedule"])
        x_train, y_train = torch.from_numpy(train_pixels), torch.from_numpy(train_labels)
        x_val, y_val = torch.from_numpy(val_pixels), torch.from_numpy(val_labels)
        record: dict[str, Any] = {}
        calibration_pixels, calibration_labels = val_pixels, val_labels
        if opts["augment"]:
            # Re-sharing augmentation from the first epoch; early stopping and calibration on the clean and a
            # re-shared copy of the validation split, so the model is chosen for how it does after re-sharing.
            resharer = Resharer()
            val_reshared = _perturbed(val_pictures, resharer, np.random.default_rng([seed, 0x2A]))
            calibration_pixels = np.concatenate([val_pixels, val_reshared])
            calibration_labels = np.concatenate([val_labels, val_labels])
            x_val, y_val = torch.from_numpy(calibration_pixels), torch.from_numpy(calibration_labels)

            def reshared_train(epoch: int) -> tuple[torch.Tensor, torch.Tensor]:
                rng = np.random.default_rng([seed, 0x2B, epoch])
                chosen = rng.random(len(train_pictures)) < opts["augment"]
                pixels = train_pixels.copy()
                for i in np.flatnonzero(chosen):
                    pixels[i] = np.asarray(resharer(train_pictures[i], rng), dtype=np.uint8).transpose(2, 0, 1)
                return torch.from_numpy(pixels), y_train

            train_phase: Callable[[int], tuple[torch.Tensor, torch.Tensor]] = reshared_train
        else:
            train_phase = lambda _: (x_train, y_train)  # noqa: E731
        if opts["epochs"]:
            record["clean"] = trainer.run(opts["epochs"], opts["minutes"], train_phase, (x_val, y_val),
                                          "augmented" if opts["augment"] else "clean")
        if opts["immunize"]:
            immuniser = Immuniser()
            val_perturbed = _perturbed(val_pictures, immuniser, np.random.default_rng([seed, 0x1A]))
            calibration_pixels = np.concatenate([calibration_pixels, val_perturbed])
            calibration_labels = np.concatenate([calibration_labels, val_labels])

            def perturbed_train(epoch: int) -> tuple[torch.Tensor, torch.Tensor]:
                rng = np.random.default_rng([seed, 0x1B, epoch])
                return torch.from_numpy(_perturbed(train_pictures, immuniser, rng)), y_train

            trainer = _Trainer(net, autoencoder=autoencoder, batch_size=opts["batch_size"], lr=IMMUNISE_LEARNING_RATE,
                               generator=generator, device=torch_device, progress=say)
            record["immunise"] = trainer.run(opts["immunize_epochs"], opts["minutes"], perturbed_train,
                                             (torch.from_numpy(calibration_pixels), torch.from_numpy(calibration_labels)),
                                             "immunise")
        tensors = fp16_arrays(net.cpu())
    finally:
        torch.use_deterministic_algorithms(was_deterministic)

    runtime = Runtime(hyper, tensors, device=str(torch_device))
    logits = runtime.score(calibration_pixels)["logits"]
    fitted = _calibrate(logits, calibration_labels, sources, keep=opts["keep"])
    metrics = dict(fitted["metrics"])
    if (opts["immunize"] or opts["augment"]) and len(val_labels):
        n = len(val_labels)
        predicted = logits.argmax(1)
        metrics["val_accuracy_clean"] = round(float((predicted[:n] == val_labels).mean()), 6)
        # one perturbed copy of the validation split per phase that added one (re-shared, immunisation's)
        copies = len(calibration_labels) // n - 1
        metrics["val_accuracy_perturbed"] = round(float((predicted[n:] == np.tile(val_labels, copies)).mean()), 6)
    metrics["train_images"] = len(train_labels)
    metrics["val_images"] = len(val_labels)
    metrics["train_seconds"] = round(time.monotonic() - began, 1)
    for phase, values in record.items():
        for key, value in values.items():
            metrics[f"{phase}_{key}"] = value
    # the last phase says how training ended; any phase cut by its budget leaves the model under-trained
    metrics["stopped_by"] = list(record.values())[-1]["stopped_by"] if record else "epochs"
    metrics["under_trained"] = any(values["under_trained"] for values in record.values())
    info = {
        "variant": opts["variant"],
        "sources": list(sources),
        "input_size": side,
        "input_rule": "centre crop to input_size when both sides are at least that long, else bicubic upscale "
                      "of the shorter side to input_size and centre crop",
        "architecture": hyper,
        "temperature": fitted["temperature"],
        "threshold": fitted["threshold"],
        "open_set": {"rule": OPEN_SET_RULE, "keep": opts["keep"], "threshold": fitted["threshold"]},
        "immunized": opts["immunize"],
        "immunisation": RECIPE if opts["immunize"] else None,
        "augment": opts["augment"],
        "resharing": RESHARING if opts["augment"] else None,
        "dataset_sha256": data.dataset_sha256,
        "seed": seed,
        "started_from": None if start is None else start.sha256,
        "training": {
            "optimizer": {"name": "adam", "lr": LEARNING_RATE, "betas": [0.0, 0.99],
                          "immunise_lr": IMMUNISE_LEARNING_RATE if opts["immunize"] else None},
            "batch_size": opts["batch_size"], "flips": "horizontal, p = 0.5", "patience": PATIENCE,
            "schedule": opts["schedule"],
            "reconstruction_weight": RECONSTRUCTION_WEIGHT if autoencoder else None,
            "max_epochs": opts["epochs"], "max_immunize_epochs": opts["immunize_epochs"] if opts["immunize"] else None,
            "epochs": record, "threads": torch.get_num_threads(), "torch": torch.__version__,
        },
        "validation": {k: metrics[k] for k in ("val_accuracy", "val_ece", "val_nll") if k in metrics},
    }
    data_bytes = pack_artifact(tensors, detector=detector, version=version, info=info)
    calib = {"method": "temperature scaling (validation NLL)", "temperature": fitted["temperature"],
             "open_set": info["open_set"], "ece_bins": calibration.ECE_BINS}
    return TrainedModel(data=data_bytes, metrics=metrics, calibration=calib)


def _calibrate(logits: np.ndarray, labels: np.ndarray, sources: Sequence[str], *, keep: float) -> dict[str, Any]:
    """Temperature, threshold, and the validation numbers before and after."""
    if len(labels) == 0:
        return {"temperature": 1.0, "threshold": 0.0, "metrics": {}}
    temperature = calibration.fit_temperature(logits, labels)
    raw = calibration.softmax(logits)
    calibrated = calibration.softmax(logits, temperature)
    threshold = calibration.open_set_threshold(calibrated, labels, keep=keep)
    predicted = calibrated.argmax(1)
    known = calibrated.max(1) >= threshold
    per_source = {s: round(float((predicted[labels == i] == i).mean()), 6)
                  for i, s in enumerate(sources) if (labels == i).any()}
    metrics = {
        "val_accuracy": round(float((predicted == labels).mean()), 6),
        "val_accuracy_per_source": per_source,
        "val_nll_uncalibrated": round(calibration.nll(logits, labels), 6),
        "val_nll": round(calibration.nll(logits, labels, temperature), 6),
        "val_ece_uncalibrated": round(calibration.expected_calibration_error(raw, labels), 6),
        "val_ece": round(calibration.expected_calibration_error(calibrated, labels), 6),
        "temperature": round(temperature, 6),
        "threshold": round(threshold, 6),
        "val_unknown_rate": round(float((~known).mean()), 6),
        "val_accuracy_attributed": round(float((predicted[known] == labels[known]).mean()), 6) if known.any() else None,
    }
    if REAL in sources:
        i = sources.index(REAL)
        metrics["val_detection_accuracy"] = round(float(((predicted == i) == (labels == i)).mean()), 6)
    return {"temperature": float(temperature), "threshold": float(threshold), "metrics": metrics}
