"""A small StyleGAN-like generator: mapping network, modulated convolutions, noise inputs.

The class embedding joins z in an MLP mapping network that produces the style
vector w. Synthesis starts from a learned 4×4 constant; every 3×3 convolution
is modulated by an affine projection of w and demodulated (StyleGAN2), and
each layer adds per-pixel noise scaled by a learned per-channel strength.
Resolution doubles by bilinear upsampling; an un-demodulated 1×1 modulated
convolution produces RGB at 32×32.

The zoo's samples draw their noise inputs from a generator seeded by the
latent itself, so a sample is a deterministic function of ``(z, y)`` and
sampling is reproducible. That derivation is not differentiable (a small
change of ``z`` draws unrelated noise), so an inversion verifier cannot reach
the noise through ``z``: :class:`ExplicitNoise` makes the noise maps part of
the latent, which is the generator's real input space (in training the noise
is independent standard normal), and the zoo registers that view for
inversion.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


class ModulatedConv(nn.Module):
    """A convolution whose input channels are scaled per sample by a style, then demodulated.

    Computed as scale-input, shared convolution, scale-output, which equals
    StyleGAN2's per-sample weight modulation and demodulation.
    """

    def __init__(self, cin: int, cout: int, kernel: int, style_dim: int, demodulate: bool = True) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(cout, cin, kernel, kernel) / math.sqrt(cin * kernel * kernel))
        self.bias = nn.Parameter(torch.zeros(cout))
        self.affine = nn.Linear(style_dim, cin)
        nn.init.ones_(self.affine.bias)
        self.demodulate = demodulate
        self.padding = kernel // 2

    def forward(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        style = self.affine(w)  # N × cin
        h = F.conv2d(x * style[:, :, None, None], self.weight, padding=self.padding)
        if self.demodulate:
            # sum over cin, k, k of (weight * style)^2, per sample and output channel
            energy = torch.einsum("oikl,ni->no", self.weight.square(), style.square())
            h = h * torch.rsqrt(energy + 1e-8)[:, :, None, None]
        return h + self.bias[None, :, None, None]


class StyleLayer(nn.Module):
    """Modulated 3×3 convolution, scaled noise, leaky ReLU."""

    def __init__(self, cin: int, cout: int, style_dim: int) -> None:
        super().__init__()
        self.conv = ModulatedConv(cin, cout, 3, style_dim)
        self.noise_strength = nn.Parameter(torch.zeros(cout))

    def forward(self, x: torch.Tensor, w: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        h = self.conv(x, w) + self.noise_strength[None, :, None, None] * noise
        return F.leaky_relu(h, 0.2)


class StyleGenerator(nn.Module):
    """(z, y) -> 3×32×32 in [-1, 1], StyleGAN-like."""

    def __init__(self, latent_dim: int = 64, num_classes: int = 10, style_dim: int = 128,
                 channels: tuple[int, ...] = (128, 96, 64, 32), mapping_layers: int = 4) -> None:
        super().__init__()
        self.latent_dim = latent_dim
        self.num_classes = num_classes
        self.embed = nn.Embedding(num_classes, latent_dim)
        mapping: list[nn.Module] = []
        dim = 2 * latent_dim
        for _ in range(mapping_layers):
            mapping += [nn.Linear(dim, style_dim), nn.LeakyReLU(0.2)]
            dim = style_dim
        self.mapping = nn.Sequential(*mapping)
        self.const = nn.Parameter(torch.randn(1, channels[0], 4, 4))
        self.layers = nn.ModuleList()
        cin = channels[0]
        for cout in channels:  # one layer at 4×4, then one per doubled resolution
            self.layers.append(StyleLayer(cin, cout, style_dim))
            cin = cout
        self.to_rgb = ModulatedConv(cin, 3, 1, style_dim, demodulate=False)

    def style(self, z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """The style vector w of (z, y); z is normalised to the unit sphere × sqrt(dim) first."""
        z = z * torch.rsqrt(z.square().mean(dim=1, keepdim=True) + 1e-8)
        return self.mapping(torch.cat([z, self.embed(y)], dim=1))

    @staticmethod
    def noise_sides(layers: int = 4) -> list[int]:
        """Side of each layer's square noise map: one layer at 4×4, then one per doubled resolution (4, 8, 16, 32)."""
        return [4 * 2**i for i in range(layers)]

    @property
    def noise_sizes(self) -> list[int]:
        """Side of each of this generator's noise maps."""
        return self.noise_sides(len(self.layers))

    def noises(self, z: torch.Tensor) -> list[torch.Tensor]:
        """Per-layer noise maps, drawn deterministically from each sample's latent (random in training)."""
        sizes = self.noise_sizes
        if self.training:
            return [torch.randn(z.shape[0], 1, s, s, device=z.device) for s in sizes]
        maps = []
        for row in z.detach().float().cpu():
            seed = int.from_bytes(row.numpy().tobytes()[:8], "little") & 0x7FFFFFFFFFFFFFFF
            gen = torch.Generator().manual_seed(seed)
            maps.append([torch.randn(1, s, s, generator=gen) for s in sizes])
        return [torch.stack([m[i] for m in maps]).to(z.device) for i in range(len(sizes))]

    def forward(self, z: torch.Tensor, y: torch.Tensor, noise: list[torch.Tensor] | None = None) -> torch.Tensor:
        """Images of ``(z, y)``; ``noise`` (N×1×s×s per layer) replaces the maps derived from ``z``."""
        w = self.style(z, y)
        h = self.const.expand(z.shape[0], -1, -1, -1)
        for i, (layer, noise_map) in enumerate(zip(self.layers, noise if noise is not None else self.noises(z))):
            if i > 0:
                h = F.interpolate(h, scale_factor=2, mode="bilinear", align_corners=False)
            h = layer(h, w, noise_map)
        return torch.tanh(self.to_rgb(h, w))


class ExplicitNoise(nn.Module):
    """A :class:`StyleGenerator` whose latent is ``z`` followed by its flattened noise maps.

    ``forward(latent, y)`` with ``latent`` of ``latent_dim`` = 64 + 4² + 8² +
    16² + 32² = 1424 standard normal values. ``latent_of(z)`` gives the latent
    at which this view reproduces the zoo's sample of ``z`` exactly.
    """

    def __init__(self, generator: StyleGenerator) -> None:
        super().__init__()
        self.generator = generator
        self.latent_dim = generator.latent_dim + sum(s * s for s in generator.noise_sizes)

    def split(self, latent: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        z, rest = latent[:, : self.generator.latent_dim], latent[:, self.generator.latent_dim:]
        maps, start = [], 0
        for side in self.generator.noise_sizes:
            maps.append(rest[:, start:start + side * side].reshape(-1, 1, side, side))
            start += side * side
        return z, maps

    def latent_of(self, z: torch.Tensor) -> torch.Tensor:
        """The explicit latent of the zoo's sample drawn from ``z`` (noise derived as in eval mode)."""
        maps = self.generator.noises(z)
        return torch.cat([z, *[m.flatten(1) for m in maps]], dim=1)

    def forward(self, latent: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        z, maps = self.split(latent)
        return self.generator(z, y, maps)
