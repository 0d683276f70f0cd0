"""Training RepMix: sampling, mixing, the compound loss, augmentation, early stopping, calibration.

One epoch visits every training image once in a seeded random order; each
batch of that order is a uniform draw from the whole training set, so the
partner of image i (the batch permuted) is a random training image too. With
probability :data:`AUGMENT_P` an image is first corrupted by
``TrainingSet.augment`` (one random *seen* corruption at severity 1–5; unseen
ones are never used). Every random choice comes from generators seeded by
``seed``, so a run replays exactly on the same machine and thread count.

Departures from the paper's recipe, for a network trained from scratch on a
CPU in minutes: Adam's learning rate is 1e-3 (the paper's 1e-4 fine-tunes an
ImageNet-pretrained ResNet-50), still with weight decay 5e-4 and ×0.85 per
epoch; early stopping watches the validation loss with a patience of
:data:`PATIENCE` epochs (from epoch :data:`MIN_EPOCHS` on) and keeps the best
epoch's weights.

Validation is the clean validation split plus one corrupted copy of it
(fixed seed, the same p = 0.95 and seen set), so early stopping, the
temperature and the open-set threshold see the conditions training targets.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch.nn import functional as F

from vestige.plugin.calibration import fit_temperature, open_set_threshold, softmax
from vestige.plugin.training import REAL, EpochClock, Example, TrainingSet
from vestige_repmix.nets import RepMixNet, gate, mixed_cross_entropy, sample_alpha

AUGMENT_P = 0.95
PATIENCE = 4
#: Early stopping waits this many epochs: batch-norm running statistics lag
#: the weights at first, and the early validation loss swings with them.
MIN_EPOCHS = 6
LR_DECAY = 0.85


@dataclass(frozen=True)
class Recipe:
    """What ``vestige train repmix`` options choose."""

    mix: bool = True
    compound: bool = True
    augment: bool = True
    epochs: int = 30
    minutes: float = 0.0
    batch_size: int = 64
    lr: float = 1e-3
    lr_decay: float = LR_DECAY
    weight_decay: float = 5e-4
    keep: float = 0.95


def to_array(image: Image.Image, size: int) -> np.ndarray:
    """An RGB picture as an S×S×3 uint8 array: as it is when S×S, else its centred square resized (bicubic)."""
    image = image.convert("RGB") if image.mode != "RGB" else image
    if image.size != (size, size):
        side = min(image.size)
        left, top = (image.width - side) // 2, (image.height - side) // 2
        image = image.crop((left, top, left + side, top + side))
        image = image.resize((size, size), Image.Resampling.BICUBIC)
    return np.asarray(image, dtype=np.uint8)


def to_tensor(pixels: np.ndarray) -> torch.Tensor:
    """N×S×S×3 uint8 -> N×3×S×S float in [-1, 1]."""
    return torch.from_numpy(np.ascontiguousarray(pixels)).permute(0, 3, 1, 2).float().div_(127.5).sub_(1.0)


def input_size(examples: Sequence[Example]) -> int:
    """The side the network works at: the training images' common square side, else their smallest side."""
    sizes = {e.image.image.size for e in examples}
    if len(sizes) == 1 and next(iter(sizes))[0] == next(iter(sizes))[1]:
        return next(iter(sizes))[0]
    return min(min(s) for s in sizes)


def _pixels(images: Sequence[Image.Image], size: int, augment: Callable | None, rng: np.random.Generator) -> np.ndarray:
    out = np.empty((len(images), size, size, 3), dtype=np.uint8)
    for row, image in enumerate(images):
        if augment is not None and rng.random() < AUGMENT_P:
            image = augment(image, rng)
        out[row] = to_array(image, size)
    return out


def losses(net: RepMixNet, x: torch.Tensor, y: torch.Tensor, *, compound: bool, num_classes: int,
           partner: torch.Tensor | None = None, alpha: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """(training loss, attribution logits as the detector reads them) for a batch; mixed when ``partner`` is given."""
    if alpha is None:
        alpha = torch.ones(len(y))
    y_partner = y if partner is None else y[partner]
    _, det, attr = net(x, partner, alpha if partner is not None else None)
    if not compound:
        return mixed_cross_entropy(attr, y, y_partner, alpha), attr
    gated = gate(det, attr)
    # Detection classes weighted 1 (real) and 1/(C − 1) (synthetic): every
    # generator brings as many images as the real source.
    weight = torch.tensor([1.0, 1.0 / max(1, num_classes - 1)])
    is_fake, partner_fake = (y > 0).long(), (y_partner > 0).long()
    loss = mixed_cross_entropy(gated, y, y_partner, alpha) + mixed_cross_entropy(det, is_fake, partner_fake, alpha, weight)
    return loss, gated


def train_step(net: RepMixNet, optimiser: torch.optim.Optimizer, x: torch.Tensor, y: torch.Tensor, recipe: Recipe,
               num_classes: int, rng: np.random.Generator) -> float:
    """One optimisation step on a batch, mixing each image with a partner permuted from the batch."""
    net.train()
    partner = alpha = None
    if recipe.mix:
        partner = torch.from_numpy(rng.permutation(len(y)))
        alpha = sample_alpha(rng, len(y))
    loss, _ = losses(net, x, y, compound=recipe.compound, num_classes=num_classes, partner=partner, alpha=alpha)
    optimiser.zero_grad(set_to_none=True)
    loss.backward()
    optimiser.step()
    return float(loss.detach())


@torch.no_grad()
def evaluate(net: RepMixNet, x: torch.Tensor, y: torch.Tensor, *, compound: bool, num_classes: int,
             batch_size: int = 256) -> tuple[float, np.ndarray]:
    """Mean unmixed loss and the attribution logits (gated when compound) over a split."""
    net.eval()
    total, logits = 0.0, []
    for start in range(0, len(y), batch_size):
        loss, attr = losses(net, x[start:start + batch_size], y[start:start + batch_size], compound=compound,
                            num_classes=num_classes)
        total += float(loss) * len(attr)
        logits.append(attr.numpy())
    return total / max(1, len(y)), np.concatenate(logits) if logits else np.zeros((0, num_classes))


def fit_network(data: TrainingSet, hyper: Mapping[str, Any], recipe: Recipe, *, seed: int,
                progress: Callable[[str], None]) -> tuple[RepMixNet, dict[str, Any]]:
    """Train a :class:`RepMixNet` on ``data``; the best validation epoch's network and what was measured."""
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    size = int(hyper["input_size"])
    index = {source: i for i, source in enumerate(data.sources)}
    train_images = [e.image.image for e in data.train]
    y_train = torch.tensor([index[e.source] for e in data.train])
    augment = data.augment if recipe.augment else None
    validation = data.validation or data.train
    y_val = torch.tensor([index[e.source] for e in validation])
    val_images = [e.image.image for e in validation]
    x_val = to_tensor(_pixels(val_images, size, None, rng))
    if augment is not None:
        x_val = torch.cat([x_val, to_tensor(_pixels(val_images, size, augment, np.random.default_rng([seed, 1])))])
        y_val = torch.cat([y_val, y_val])
    num_classes = len(data.sources)

    net = RepMixNet(hyper)
    optimiser = torch.optim.Adam(net.parameters(), lr=recipe.lr, weight_decay=recipe.weight_decay)
    scheduler = torch.optim.lr_scheduler.StepLR(optimiser, step_size=1, gamma=recipe.lr_decay)
    began = time.monotonic()
    best = (math.inf, -1, copy.deepcopy(net.state_dict()))
    history = []
    clock = EpochClock(recipe.epochs, recipe.minutes)
    for epoch in range(recipe.epochs):
        epoch_rng = np.random.default_rng([seed, 2, epoch])
        order = epoch_rng.permutation(len(train_images))
        running, steps = 0.0, 0
        for start in range(0, len(order), recipe.batch_size):
            chosen = order[start:start + recipe.batch_size]
            if len(chosen) < 2:
                continue
            x = to_tensor(_pixels([train_images[i] for i in chosen], size, augment, epoch_rng))
            running += train_step(net, optimiser, x, y_train[chosen], recipe, num_classes, epoch_rng)
            steps += 1
        scheduler.step()
        val_loss, logits = evaluate(net, x_val, y_val, compound=recipe.compound, num_classes=num_classes)
        accuracy = float((logits.argmax(1) == y_val.numpy()).mean())
        history.append({"epoch": epoch + 1, "train_loss": round(running / max(1, steps), 4),
                        "val_loss": round(val_loss, 4), "val_accuracy": round(accuracy, 4)})
        progress(f"{clock.lap()}: train loss {running / max(1, steps):.4f}, validation loss {val_loss:.4f}, "
                 f"attribution accuracy {accuracy:.3f}")
        if val_loss < best[0]:
            best = (val_loss, epoch, copy.deepcopy(net.state_dict()))
        elif epoch + 1 >= MIN_EPOCHS and epoch - best[1] >= PATIENCE:
            clock.early_stop()
            progress(f"early stop: no better validation loss for {PATIENCE} epochs")
            break
        # Stop before an epoch that would end past the budget (epochs take minutes on a shared CPU).
        if epoch + 1 < recipe.epochs and clock.over_budget():
            progress(clock.warning())
            break
    net.load_state_dict(best[2])
    _, logits = evaluate(net, x_val, y_val, compound=recipe.compound, num_classes=num_classes)
    labels = y_val.numpy()
    temperature = fit_temperature(logits, labels)
    probabilities = softmax(logits, temperature)
    threshold = open_set_threshold(probabilities, labels, keep=recipe.keep)
    predicted = probabilities.argmax(1)
    report = {
        "best_epoch": best[1] + 1, "epochs_run": len(history), "val_loss": round(best[0], 4),
        "attribution_accuracy": round(float((predicted == labels).mean()), 4),
        "detection_accuracy": (round(float(((predicted > 0) == (labels > 0)).mean()), 4)
                               if data.sources[0] == REAL else None),  # real is first when present
        "temperature": temperature, "threshold": threshold, "minutes": round((time.monotonic() - began) / 60, 2),
        **clock.metrics(),
        "history": history,
    }
    return net, report
