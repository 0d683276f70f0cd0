"""The project's small CIFAR-10 classifier: it measures whether generated samples show their class.

A VGG-style network (three stages of two 3×3 convolutions with batch
normalisation, max-pooling between stages, global average pooling, a linear
layer). Inputs are images in [-1, 1]. Its penultimate features are what the
ManiFPT detector's "SL" space uses (:meth:`CifarClassifier.features`).
"""

from __future__ import annotations

import torch
from torch import nn


def _stage(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(),
        nn.Conv2d(cout, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(),
    )


class CifarClassifier(nn.Module):
    """Images N×3×32×32 in [-1, 1] -> logits over the ten CIFAR-10 classes."""

    def __init__(self, width: int = 32, num_classes: int = 10) -> None:
        super().__init__()
        self.body = nn.Sequential(
            _stage(3, width), nn.MaxPool2d(2),
            _stage(width, 2 * width), nn.MaxPool2d(2),
            _stage(2 * width, 4 * width),
        )
        self.head = nn.Linear(4 * width, num_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The pooled penultimate features (N × 4·width)."""
        return self.body(x).mean(dim=(2, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))
