"""A class-conditional convolutional VAE.

The encoder maps (image, class) to the mean and log-variance of a
``latent_dim`` Gaussian; the decoder (the generator) maps (z, class) back to an
image through transposed convolutions. Sampling draws z from N(0, I).
"""

from __future__ import annotations

import torch
from torch import nn


class VaeEncoder(nn.Module):
    """(x in [-1, 1], y) -> (mu, logvar). Calling it as a module returns mu, the latent an inverter starts from."""

    def __init__(self, latent_dim: int = 64, num_classes: int = 10, width: int = 32) -> None:
        super().__init__()
        self.latent_dim = latent_dim
        self.convs = nn.Sequential(
            nn.Conv2d(3, width, 4, 2, 1), nn.BatchNorm2d(width), nn.LeakyReLU(0.2),
            nn.Conv2d(width, 2 * width, 4, 2, 1), nn.BatchNorm2d(2 * width), nn.LeakyReLU(0.2),
            nn.Conv2d(2 * width, 4 * width, 4, 2, 1), nn.BatchNorm2d(4 * width), nn.LeakyReLU(0.2),
        )
        self.embed = nn.Embedding(num_classes, 4 * width)
        self.out = nn.Linear(4 * width * 16 + 4 * width, 2 * latent_dim)

    def distribution(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The posterior's mean and log-variance."""
        h = torch.cat([self.convs(x).flatten(1), self.embed(y)], dim=1)
        mu, logvar = self.out(h).chunk(2, dim=1)
        return mu, logvar.clamp(-10, 10)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return self.distribution(x, y)[0]


class VaeDecoder(nn.Module):
    """(z, y) -> 3×32×32 in [-1, 1] through 4×4 stride-2 transposed convolutions."""

    def __init__(self, latent_dim: int = 64, num_classes: int = 10, width: int = 32) -> None:
        super().__init__()
        self.latent_dim = latent_dim
        self.num_classes = num_classes
        self.width = width
        self.embed = nn.Embedding(num_classes, latent_dim)
        self.linear = nn.Linear(2 * latent_dim, 4 * width * 16)
        self.deconvs = nn.Sequential(
            nn.BatchNorm2d(4 * width), nn.ReLU(),
            nn.ConvTranspose2d(4 * width, 2 * width, 4, 2, 1), nn.BatchNorm2d(2 * width), nn.ReLU(),
            nn.ConvTranspose2d(2 * width, width, 4, 2, 1), nn.BatchNorm2d(width), nn.ReLU(),
            nn.ConvTranspose2d(width, 3, 4, 2, 1),
        )

    def forward(self, z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        h = self.linear(torch.cat([z, self.embed(y)], dim=1)).view(-1, 4 * self.width, 4, 4)
        return torch.tanh(self.deconvs(h))


class ConditionalVae(nn.Module):
    """Encoder and decoder trained together; saved and loaded as one state dict."""

    def __init__(self, latent_dim: int = 64, num_classes: int = 10, width: int = 32) -> None:
        super().__init__()
        self.encoder = VaeEncoder(latent_dim, num_classes, width)
        self.decoder = VaeDecoder(latent_dim, num_classes, width)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        mu, logvar = self.encoder.distribution(x, y)
        z = mu + torch.randn_like(mu) * (0.5 * logvar).exp()
        return self.decoder(z, y), mu, logvar
