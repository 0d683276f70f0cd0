"""The two networks of Yu, Davis and Fritz (ICCV 2019), sized for small square inputs.

:class:`ImageClassifier` is shaped like a ProGAN discriminator: a 1×1
convolution from RGB, then per resolution stage two 3×3 convolutions and a 2×
average pooling, down to 4×4; a 3×3 convolution, a dense layer and the C-way
output. LeakyReLU 0.2 and ProGAN's equalised learning rate. One deviation,
measured (docs/fingerprint.md): batch normalisation after every 3×3
convolution (``norm="batch"``, the default); without it the network learned
zoo32 several times more slowly, too slowly for a CPU budget.
``norm="none"`` builds the paper's network. One stage per doubling of the input
side, so a 64² model has one more stage than a 32² one; channels double from
stage to stage up to ``top_channels`` at 4×4 and never fall below
``min_channels``, which keeps the weights about the same size at any input.

:class:`FingerprintAutoencoder` is the fingerprint variant: an encoder-decoder
``R`` reconstructs the image, the image fingerprint is ``I − R(I)``, every
class owns a learnable model fingerprint the size of the image, and a class
logit is the inner product of the two.

Both take images N×3×S×S in [-1, 1]. ``hyper`` dictionaries (what
:func:`architecture` returns) rebuild the same network from an artifact's info.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn


def stage_count(size: int) -> int:
    """Stages from ``size`` down to 4×4; ``size`` must be 4·2^k with k ≥ 1."""
    stages = int(round(math.log2(size / 4)))
    if stages < 1 or 4 * 2**stages != size:
        raise ValueError(f"input side must be 4·2^k (8, 16, 32, 64, ...), not {size}")
    return stages


def architecture(variant: str, size: int, num_classes: int) -> dict[str, Any]:
    """The default hyper-parameters of ``variant`` for ``size``² inputs and ``num_classes`` outputs."""
    if variant == "image":
        return {"variant": "image", "size": size, "num_classes": num_classes, "top_channels": 128,
                "min_channels": 16, "dense": 256, "norm": "batch"}
    if variant == "autoencoder":
        return {"variant": "autoencoder", "size": size, "num_classes": num_classes, "width": 32, "latent": 32}
    raise ValueError(f"unknown variant {variant!r}: image or autoencoder")


def build(hyper: Mapping[str, Any]) -> nn.Module:
    """The network ``hyper`` describes (as :func:`architecture` returns it)."""
    if hyper["variant"] == "image":
        return ImageClassifier(hyper["size"], hyper["num_classes"], top_channels=hyper["top_channels"],
                               min_channels=hyper["min_channels"], dense=hyper["dense"],
                               norm=hyper.get("norm", "none"), head=hyper.get("head", "dense"))
    return FingerprintAutoencoder(hyper["size"], hyper["num_classes"], width=hyper["width"], latent=hyper["latent"])


def _act() -> nn.Module:
    return nn.LeakyReLU(0.2)


class NearestUp2(nn.Module):
    """Nearest-neighbour ×2 upsampling as a view and one copy: the same numbers as
    ``nn.Upsample(scale_factor=2, mode="nearest")`` (tested bit for bit) at a quarter of its time on the CPU,
    where it was 40 % of the auto-encoder's forward pass. No parameters, so weights load unchanged."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        return x[:, :, :, None, :, None].expand(n, c, h, 2, w, 2).reshape(n, c, 2 * h, 2 * w)


class EqualizedConv2d(nn.Module):
    """ProGAN's equalised learning rate: weights drawn from N(0, 1), scaled by He's constant at run time.

    With Adam, whose steps are about the same size for every weight, this
    gives every layer the same effective learning rate; without it this
    unnormalised network did not learn at all at lr 1e-3 (see docs/fingerprint.md).
    """

    def __init__(self, cin: int, cout: int, kernel: int, *, stride: int = 1, padding: int = 0, gain: float = 2**0.5) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(cout, cin, kernel, kernel))
        self.bias = nn.Parameter(torch.zeros(cout))
        self.scale = gain / math.sqrt(cin * kernel * kernel)
        self.stride, self.padding = stride, padding

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, self.weight * self.scale, self.bias, stride=self.stride, padding=self.padding)


class EqualizedLinear(nn.Module):
    """The dense counterpart of :class:`EqualizedConv2d`."""

    def __init__(self, cin: int, cout: int, *, gain: float = 2**0.5) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(cout, cin))
        self.bias = nn.Parameter(torch.zeros(cout))
        self.scale = gain / math.sqrt(cin)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.weight * self.scale, self.bias)


class ImageClassifier(nn.Module):
    """Images -> (logits N×C); :meth:`features` gives the dense layer's activations."""

    def __init__(self, size: int, num_classes: int, *, top_channels: int = 128, min_channels: int = 16,
                 dense: int = 256, norm: str = "batch", head: str = "dense") -> None:
        super().__init__()
        stages = stage_count(size)

        def conv(cin: int, cout: int) -> list[nn.Module]:
            layers: list[nn.Module] = [EqualizedConv2d(cin, cout, 3, padding=1)]
            return [*layers, nn.BatchNorm2d(cout), _act()] if norm == "batch" else [*layers, _act()]

        outs = [max(min_channels, top_channels >> (stages - 1 - i)) for i in range(stages)]
        ins = [max(min_channels // 2, outs[0] // 2), *outs[:-1]]
        layers: list[nn.Module] = [EqualizedConv2d(3, ins[0], 1), _act()]
        for cin, cout in zip(ins, outs):
            layers += [*conv(cin, cin), *conv(cin, cout), nn.AvgPool2d(2)]
        layers += conv(outs[-1], outs[-1])
        self.body = nn.Sequential(*layers)
        # head "dense": the paper's dense layer over the 4×4 map (position-specific); "pool": the map averaged
        # over positions first, so the same trace anywhere in the picture weighs the same (issue 18's ablation)
        pool: list[nn.Module] = [nn.AdaptiveAvgPool2d(1)] if head == "pool" else []
        self.dense = nn.Sequential(*pool, nn.Flatten(), EqualizedLinear(outs[-1] * (1 if head == "pool" else 16), dense),
                                   _act())
        self.head = EqualizedLinear(dense, num_classes, gain=1.0)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.dense(self.body(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


class FingerprintAutoencoder(nn.Module):
    """Images -> (logits N×C, reconstructions N×3×S×S); image fingerprint = input − reconstruction."""

    def __init__(self, size: int, num_classes: int, *, width: int = 32, latent: int = 32) -> None:
        super().__init__()
        stage_count(size)
        w = width
        # Two stride-2 steps to S/4 and a narrow latent: the bottleneck keeps
        # R from copying its input, so the residual carries what it cannot
        # reconstruct, and the classification loss shapes what that is.
        self.encoder = nn.Sequential(
            nn.Conv2d(3, w, 3, padding=1), _act(),
            nn.Conv2d(w, 2 * w, 4, stride=2, padding=1), _act(),
            nn.Conv2d(2 * w, 4 * w, 4, stride=2, padding=1), _act(),
            nn.Conv2d(4 * w, latent, 1),
        )
        self.decoder = nn.Sequential(
            nn.Conv2d(latent, 4 * w, 1), _act(),
            NearestUp2(), nn.Conv2d(4 * w, 2 * w, 3, padding=1), _act(),
            NearestUp2(), nn.Conv2d(2 * w, w, 3, padding=1), _act(),
            nn.Conv2d(w, 3, 3, padding=1),
        )
        self.model_fingerprints = nn.Parameter(torch.randn(num_classes, 3, size, size) * 0.01)

    def reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.encoder(x))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        reconstruction = self.reconstruct(x)
        fingerprint = x - reconstruction
        logits = torch.einsum("nchw,kchw->nk", fingerprint, self.model_fingerprints)
        return logits, reconstruction
