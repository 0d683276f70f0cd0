"""RepMix's network: a ResNet split into stages, a 256-d embedding, and two heads.

The backbone is a list of *stages*: stage 0 is the stem, stages 1..L the
residual stages. Representation mixing happens after stage ``mix_layer``::

    f = top(α·bottom(x_i) + (1 − α)·bottom(x_j))

where ``bottom`` is stages 0..mix_layer and ``top`` the remaining stages,
global average pooling and the embedding layer. At inference (and whenever
no partner is given) nothing is mixed.

Two architectures (``hyper["arch"]``):

- ``resnet50``: torchvision's ResNet-50 (``weights=None``: nothing is ever
  downloaded), stages = stem (conv1, bn1, relu, maxpool), layer1..layer4, as
  in the paper;
- ``narrow``: a CIFAR-style ResNet for 32² inputs and CPU inference, built
  from torchvision's ``BasicBlock``: a 3×3 stem without max-pooling and three
  stages of ``blocks`` blocks at ``widths`` channels (stride 1, 2, 2).

Heads on the embedding: detection (2-way: real, synthetic) and attribution
(C-way, class 0 = real). With the compound loss the attribution head is
*gated* by the detection head (:func:`gate`). Inputs are N×3×S×S in [-1, 1].
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F
from torchvision.models import resnet50
from torchvision.models.resnet import BasicBlock

EMBEDDING_DIM = 256
ARCHS = ("narrow", "resnet50")


def architecture(arch: str, num_classes: int, *, mix_layer: int | None = None) -> dict[str, Any]:
    """Default hyper-parameters of ``arch``; ``mix_layer`` defaults to the stage before the last (the paper's best)."""
    if arch == "narrow":
        hyper: dict[str, Any] = {"arch": "narrow", "widths": [16, 32, 64], "blocks": [3, 3, 3]}
    elif arch == "resnet50":
        hyper = {"arch": "resnet50"}
    else:
        raise ValueError(f"unknown architecture {arch!r}: {' or '.join(ARCHS)}")
    hyper.update(num_classes=num_classes, embedding_dim=EMBEDDING_DIM)
    last = stage_total(hyper) - 1
    hyper["mix_layer"] = last - 1 if mix_layer is None else int(mix_layer)
    if not 0 <= hyper["mix_layer"] <= last:
        raise ValueError(f"mix layer must lie between 0 (after the stem) and {last} (after the last stage), "
                         f"not {hyper['mix_layer']}")
    return hyper


def stage_total(hyper: Mapping[str, Any]) -> int:
    """Stages including the stem: 4 for ``narrow``, 5 for ``resnet50``."""
    return 1 + (len(hyper["widths"]) if hyper["arch"] == "narrow" else 4)


def _narrow_stages(widths: Sequence[int], blocks: Sequence[int]) -> tuple[list[nn.Module], int]:
    stem = nn.Sequential(nn.Conv2d(3, widths[0], 3, padding=1, bias=False), nn.BatchNorm2d(widths[0]),
                         nn.ReLU(inplace=True))
    stages: list[nn.Module] = [stem]
    channels = widths[0]
    for index, (width, count) in enumerate(zip(widths, blocks)):
        stride = 1 if index == 0 else 2
        layers: list[nn.Module] = []
        for block in range(count):
            downsample = None
            if block == 0 and (stride != 1 or channels != width):
                downsample = nn.Sequential(nn.Conv2d(channels, width, 1, stride=stride, bias=False),
                                           nn.BatchNorm2d(width))
            layers.append(BasicBlock(channels, width, stride=stride if block == 0 else 1, downsample=downsample))
            channels = width
        stages.append(nn.Sequential(*layers))
    return stages, channels


def _resnet50_stages() -> tuple[list[nn.Module], int]:
    net = resnet50(weights=None)
    stem = nn.Sequential(net.conv1, net.bn1, net.relu, net.maxpool)
    return [stem, net.layer1, net.layer2, net.layer3, net.layer4], net.fc.in_features


class RepMixNet(nn.Module):
    """Images -> (embedding N×256, detection logits N×2, attribution logits N×C), optionally mixed."""

    def __init__(self, hyper: Mapping[str, Any]) -> None:
        super().__init__()
        if hyper["arch"] == "narrow":
            stages, channels = _narrow_stages(hyper["widths"], hyper["blocks"])
        else:
            stages, channels = _resnet50_stages()
        self.stages = nn.ModuleList(stages)
        self.mix_layer = int(hyper["mix_layer"])
        self.embed = nn.Sequential(nn.Linear(channels, hyper["embedding_dim"]), nn.BatchNorm1d(hyper["embedding_dim"]),
                                   nn.ReLU(inplace=True))
        self.detection = nn.Linear(hyper["embedding_dim"], 2)
        self.attribution = nn.Linear(hyper["embedding_dim"], hyper["num_classes"])

    def bottom(self, x: torch.Tensor) -> torch.Tensor:
        for stage in self.stages[: self.mix_layer + 1]:
            x = stage(x)
        return x

    def top(self, h: torch.Tensor) -> torch.Tensor:
        for stage in self.stages[self.mix_layer + 1 :]:
            h = stage(h)
        return self.embed(torch.flatten(F.adaptive_avg_pool2d(h, 1), 1))

    def forward(self, x: torch.Tensor, partner: torch.Tensor | None = None,
                alpha: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``partner`` (indices into the batch) and ``alpha`` (N,) mix representations; leave both out at inference."""
        h = self.bottom(x)
        if partner is not None:
            if alpha is None:
                raise ValueError("mixing needs alpha with the partner indices")
            a = alpha.view(-1, *([1] * (h.dim() - 1))).to(h.dtype)
            h = a * h + (1 - a) * h[partner]
        embedding = self.top(h)
        return embedding, self.detection(embedding), self.attribution(embedding)


def gate(detection_logits: torch.Tensor, attribution_logits: torch.Tensor) -> torch.Tensor:
    """The compound loss's gated attribution logits: real by P(real), generators by P(synthetic).

    Gating multiplies each class's unnormalised probability ``exp(z_k)`` by
    the detection head's probability of its branch, i.e. adds the log of that
    probability to the logit: ``z_0 + log P(real)``, ``z_k + log P(synthetic)``
    for k ≥ 1. A detection head sure an image is real so drives every
    generator's attribution probability to zero, and the reverse.
    """
    log_p = F.log_softmax(detection_logits, dim=1)
    offsets = torch.cat([log_p[:, :1], log_p[:, 1:2].expand(-1, attribution_logits.shape[1] - 1)], dim=1)
    return attribution_logits + offsets


def mixed_cross_entropy(logits: torch.Tensor, target: torch.Tensor, partner_target: torch.Tensor,
                        alpha: torch.Tensor, class_weight: torch.Tensor | None = None) -> torch.Tensor:
    """α·CE(y_i) + (1 − α)·CE(y_j) per image, averaged with the class weights' normaliser (as torch's weighted CE).

    With ``alpha`` all ones this is the ordinary (weighted) cross-entropy.
    """
    log_p = F.log_softmax(logits, dim=1)
    own = -log_p.gather(1, target[:, None])[:, 0]
    other = -log_p.gather(1, partner_target[:, None])[:, 0]
    if class_weight is None:
        return (alpha * own + (1 - alpha) * other).mean()
    w_own, w_other = class_weight[target], class_weight[partner_target]
    total = alpha * w_own * own + (1 - alpha) * w_other * other
    return total.sum() / (alpha * w_own + (1 - alpha) * w_other).sum()


def sample_alpha(rng: np.random.Generator, n: int, concentration: float = 0.4) -> torch.Tensor:
    """n mixing weights α ~ Beta(c, c) (float32) drawn from the numpy generator ``rng``, so the seed fixes them."""
    return torch.from_numpy(rng.beta(concentration, concentration, size=n).astype(np.float32))
