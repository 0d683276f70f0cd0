"""The attributor: a small network trained on artifacts instead of images.

For picture artifacts (rgb, freq) it is a CIFAR-style ResNet as in the paper:
a 3×3 stem, three stages of 16/32/64 channels with ``blocks`` basic residual
blocks each (stride 2 between stages), global average pooling and a linear
layer. For the sl space the artifact is a 128-value vector, so an MLP
(two hidden layers of 256 with batch norm) takes its place.

Inputs are divided by ``scale`` (the per-channel standard deviation of the
training artifacts, stored in the model artifact), so all spaces train with
the same learning rate.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from vestige.plugin.training import EpochClock


class BasicBlock(nn.Module):
    """Two 3×3 convolutions with batch norm, and a 1×1 projection when the shape changes."""

    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        return F.relu(self.bn2(self.conv2(out)) + self.shortcut(x))


class ArtifactResNet(nn.Module):
    """3×32×32 artifacts -> logits; :meth:`embed` gives the pooled 64-value features."""

    def __init__(self, num_classes: int, blocks: int = 3, widths: tuple[int, ...] = (16, 32, 64)) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, widths[0], 3, 1, 1, bias=False), nn.BatchNorm2d(widths[0]), nn.ReLU())
        layers: list[nn.Module] = []
        cin = widths[0]
        for stage, width in enumerate(widths):
            for block in range(blocks):
                layers.append(BasicBlock(cin, width, 2 if stage > 0 and block == 0 else 1))
                cin = width
        self.body = nn.Sequential(*layers)
        self.head = nn.Linear(cin, num_classes)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(self.stem(x)).mean(dim=(2, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.embed(x))


class ArtifactMLP(nn.Module):
    """Vector artifacts -> logits; :meth:`embed` gives the last hidden layer."""

    def __init__(self, dim: int, num_classes: int, hidden: int = 256) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Linear(dim, hidden), nn.BatchNorm1d(hidden), nn.ReLU(),
                                  nn.Linear(hidden, hidden), nn.BatchNorm1d(hidden), nn.ReLU())
        self.head = nn.Linear(hidden, num_classes)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.embed(x))


def build(hyper: Mapping[str, Any]) -> nn.Module:
    """The network ``hyper`` describes (as stored in the model artifact's info)."""
    if hyper["network"] == "resnet":
        return ArtifactResNet(hyper["num_classes"], blocks=hyper["blocks"], widths=tuple(hyper["widths"]))
    return ArtifactMLP(hyper["dim"], hyper["num_classes"], hidden=hyper["hidden"])


def hyperparameters(space_is_picture: bool, dim: int, num_classes: int, blocks: int) -> dict[str, Any]:
    if space_is_picture:
        return {"network": "resnet", "num_classes": num_classes, "blocks": blocks, "widths": [16, 32, 64]}
    return {"network": "mlp", "num_classes": num_classes, "dim": dim, "hidden": 256}


def artifact_scale(artifacts: torch.Tensor) -> torch.Tensor:
    """Per-channel (pictures) or per-value (vectors) standard deviation, floored so nothing divides by zero."""
    dims = (0, 2, 3) if artifacts.dim() == 4 else (0,)
    std = artifacts.std(dim=dims) if len(artifacts) > 1 else torch.ones(artifacts.shape[1])
    return std.clamp_min(1e-4)


def normalise(artifacts: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    shape = (1, -1, 1, 1) if artifacts.dim() == 4 else (1, -1)
    return artifacts / scale.view(shape)


def logits(net: nn.Module, inputs: torch.Tensor, batch: int = 256) -> np.ndarray:
    """Eval-mode logits, in batches (float64 numpy)."""
    net.eval()
    out = []
    with torch.no_grad():
        for start in range(0, len(inputs), batch):
            out.append(net(inputs[start : start + batch]).double().cpu())
    return torch.cat(out).numpy() if out else np.zeros((0, 0))


def train(net: nn.Module, x: torch.Tensor, y: torch.Tensor, x_val: torch.Tensor, y_val: torch.Tensor, *,
          epochs: int, minutes: float, batch_size: int, seed: int, device: str,
          progress: Callable[[str], None], class_weights: torch.Tensor | None = None) -> dict[str, Any]:
    """Adam with a cosine schedule; the weights of the epoch with the best validation accuracy are kept.

    ``class_weights`` weigh the loss per source (the real examples are fewer
    than a generator's, since part of the real images became the reference).
    """
    generator = torch.Generator().manual_seed(seed)
    net.to(device)
    x, y = x.to(device), y.to(device)
    x_val, y_val = x_val.to(device), y_val.to(device)
    weight = None if class_weights is None else class_weights.to(device)
    steps_per_epoch = max(1, (len(x) + batch_size - 1) // batch_size)
    optimiser = torch.optim.Adam(net.parameters(), lr=2e-3, weight_decay=5e-4)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimiser, T_max=epochs * steps_per_epoch)
    began = time.monotonic()
    best = (-1.0, 0, copy.deepcopy(net.state_dict()))
    history = []
    epoch = 0
    clock = EpochClock(epochs, minutes)
    for epoch in range(1, epochs + 1):
        net.train()
        order = torch.randperm(len(x), generator=generator).to(device)
        total = 0.0
        for start in range(0, len(x), batch_size):
            idx = order[start : start + batch_size]
            if len(idx) < 2:
                continue  # batch norm needs two examples
            loss = F.cross_entropy(net(x[idx]), y[idx], weight=weight)
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            optimiser.step()
            schedule.step()
            total += float(loss.detach()) * len(idx)
        accuracy = float((logits(net, x_val).argmax(1) == y_val.cpu().numpy()).mean()) if len(y_val) else 0.0
        history.append({"epoch": epoch, "loss": round(total / len(x), 4), "val_accuracy": round(accuracy, 4)})
        progress(f"{clock.lap()}: loss {total / len(x):.4f}, validation accuracy {100 * accuracy:.1f} %")
        if accuracy > best[0]:
            best = (accuracy, epoch, copy.deepcopy(net.state_dict()))
        if (time.monotonic() - began) / 60 > minutes:
            if epoch < epochs:
                clock.stopped_by = "time budget"
                progress(f"stopping after epoch {epoch}: {clock.warning()}")
            break
    net.load_state_dict(best[2])
    net.eval()
    return {"epochs_run": epoch, "best_epoch": best[1], "history": history, **clock.metrics()}
