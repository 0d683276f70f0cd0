"""The convolutional GAN generators and the discriminator they are trained against.

Three generators share one shape (class-conditional latent -> 4×4 -> 8 -> 16 -> 32
RGB in [-1, 1]) and differ only in how they upsample and normalise, the design
choices that shape a generator's fingerprint:

* :class:`TransposedConvGenerator`: DCGAN, 4×4 stride-2 transposed convolutions;
* :class:`NearestUpsampleGenerator`: nearest-neighbour upsampling then a 3×3 convolution;
* :class:`PixelShuffleGenerator`: a 3×3 convolution to 4× channels then sub-pixel shuffle.

Every generator takes ``(z, y)``: ``z`` an N×``latent_dim`` standard normal
latent, ``y`` N class indices.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils import spectral_norm


def _norm(kind: str, channels: int) -> nn.Module:
    if kind == "batch":
        return nn.BatchNorm2d(channels)
    if kind == "none":
        return nn.Identity()
    raise ValueError(f"unknown normalisation {kind!r}")


class _ConditionalStem(nn.Module):
    """Maps (z, class) to a 4×4 feature map: class embedding concatenated to z, then a linear layer."""

    def __init__(self, latent_dim: int, num_classes: int, channels: int, norm: str) -> None:
        super().__init__()
        self.embed = nn.Embedding(num_classes, latent_dim)
        self.linear = nn.Linear(2 * latent_dim, channels * 16)
        self.norm = _norm(norm, channels)
        self.channels = channels

    def forward(self, z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        h = self.linear(torch.cat([z, self.embed(y)], dim=1)).view(-1, self.channels, 4, 4)
        return torch.relu(self.norm(h))


class _Generator(nn.Module):
    """Stem, three upsampling stages that halve the channels, a 3×3 convolution to RGB, tanh."""

    def __init__(self, latent_dim: int = 64, num_classes: int = 10, width: int = 32, norm: str = "batch") -> None:
        super().__init__()
        self.latent_dim = latent_dim
        self.num_classes = num_classes
        chans = [4 * width, 2 * width, width, width // 2]
        self.stem = _ConditionalStem(latent_dim, num_classes, chans[0], norm)
        self.stages = nn.ModuleList(
            nn.Sequential(self.upsample(cin, cout), _norm(norm, cout), nn.ReLU()) for cin, cout in zip(chans, chans[1:])
        )
        self.to_rgb = nn.Conv2d(chans[-1], 3, 3, padding=1)

    def upsample(self, cin: int, cout: int) -> nn.Module:  # pragma: no cover - overridden
        raise NotImplementedError

    def forward(self, z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        h = self.stem(z, y)
        for stage in self.stages:
            h = stage(h)
        return torch.tanh(self.to_rgb(h))


class TransposedConvGenerator(_Generator):
    """DCGAN: each stage is a 4×4 transposed convolution with stride 2."""

    def upsample(self, cin: int, cout: int) -> nn.Module:
        return nn.ConvTranspose2d(cin, cout, 4, stride=2, padding=1)


class NearestUpsampleGenerator(_Generator):
    """Each stage is nearest-neighbour 2× upsampling followed by a 3×3 convolution."""

    def upsample(self, cin: int, cout: int) -> nn.Module:
        return nn.Sequential(nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(cin, cout, 3, padding=1))


class PixelShuffleGenerator(_Generator):
    """Each stage is a 3×3 convolution to 4× the channels and a 2× sub-pixel shuffle."""

    def upsample(self, cin: int, cout: int) -> nn.Module:
        return nn.Sequential(nn.Conv2d(cin, 4 * cout, 3, padding=1), nn.PixelShuffle(2))


class Discriminator(nn.Module):
    """A conditional discriminator with a projection term and an auxiliary class head.

    ``norm`` is ``batch`` (DCGAN), ``spectral`` (spectral normalisation on every
    layer) or ``none`` (WGAN-GP: the gradient penalty forbids batch statistics).
    ``forward`` returns the real/fake score (projection of the class embedding
    included) and the class logits. The score also sees the batch's feature
    spread (ProGAN's minibatch standard deviation), so a generator that ignores
    its latent and draws one picture per class is easy to tell from real data.
    """

    def __init__(self, num_classes: int = 10, width: int = 32, norm: str = "spectral") -> None:
        super().__init__()
        sn = spectral_norm if norm == "spectral" else (lambda m: m)
        layer_norm = "batch" if norm == "batch" else "none"
        chans = [width, 2 * width, 4 * width, 8 * width]
        layers: list[nn.Module] = [sn(nn.Conv2d(3, chans[0], 3, padding=1)), nn.LeakyReLU(0.2)]
        for i, (cin, cout) in enumerate(zip(chans, chans[1:])):
            layers.append(sn(nn.Conv2d(cin, cout, 4, stride=2, padding=1)))
            if i > 0:
                layers.append(_norm(layer_norm, cout))
            layers.append(nn.LeakyReLU(0.2))
        self.features = nn.Sequential(*layers)
        self.score = sn(nn.Linear(chans[-1] + 1, 1))
        self.embed = sn(nn.Embedding(num_classes, chans[-1]))
        self.classify = nn.Linear(chans[-1], num_classes)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.features(x).mean(dim=(2, 3))
        spread = (h.var(dim=0, unbiased=False) + 1e-8).sqrt().mean().expand(h.shape[0], 1)
        score = self.score(torch.cat([h, spread], dim=1)).squeeze(1) + (self.embed(y) * h).sum(dim=1)
        return score, self.classify(h)
