"""A small class-conditional diffusion model: a UNet trained as DDPM, sampled with DDIM.

:class:`UNet` predicts the noise in x_t given t and the class (class index
``num_classes`` is the "no class" token, used for classifier-free guidance).
:class:`DdimSampler` wraps a UNet as a generator: ``forward(z, y)`` runs
deterministic DDIM (η = 0) from x_T = z over ``steps`` steps with guidance
scale ``guidance``, so an image is a deterministic function of ``(z, y)``.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

TIMESTEPS = 1000


def alphas_cumprod(timesteps: int = TIMESTEPS) -> torch.Tensor:
    """ᾱ_t of DDPM's linear β schedule (1e-4 to 0.02)."""
    betas = torch.linspace(1e-4, 0.02, timesteps, dtype=torch.float64)
    return torch.cumprod(1.0 - betas, dim=0).float()


def timestep_embedding(t: torch.Tensor, dim: int) -> torch.Tensor:
    """Sinusoidal embedding of integer timesteps."""
    half = dim // 2
    freqs = torch.exp(-math.log(10000.0) * torch.arange(half, device=t.device) / half)
    args = t.float()[:, None] * freqs[None]
    return torch.cat([args.sin(), args.cos()], dim=1)


class ResBlock(nn.Module):
    """GroupNorm, SiLU, 3×3 conv, plus the time/class embedding, twice, with a residual path."""

    def __init__(self, cin: int, cout: int, emb_dim: int) -> None:
        super().__init__()
        self.norm1 = nn.GroupNorm(8, cin)
        self.conv1 = nn.Conv2d(cin, cout, 3, padding=1)
        self.emb = nn.Linear(emb_dim, cout)
        self.norm2 = nn.GroupNorm(8, cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1)
        self.skip = nn.Conv2d(cin, cout, 1) if cin != cout else nn.Identity()

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x))) + self.emb(emb)[:, :, None, None]
        h = self.conv2(F.silu(self.norm2(h)))
        return h + self.skip(x)


class UNet(nn.Module):
    """Noise predictor: three resolutions (32, 16, 8), one residual block per level each way."""

    def __init__(self, num_classes: int = 10, channels: tuple[int, int, int] = (32, 64, 96), emb_dim: int = 128) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.emb_dim = emb_dim
        self.time_mlp = nn.Sequential(nn.Linear(emb_dim, emb_dim), nn.SiLU(), nn.Linear(emb_dim, emb_dim))
        self.class_embed = nn.Embedding(num_classes + 1, emb_dim)
        c1, c2, c3 = channels
        self.stem = nn.Conv2d(3, c1, 3, padding=1)
        self.down1 = ResBlock(c1, c1, emb_dim)
        self.pool1 = nn.Conv2d(c1, c1, 3, stride=2, padding=1)
        self.down2 = ResBlock(c1, c2, emb_dim)
        self.pool2 = nn.Conv2d(c2, c2, 3, stride=2, padding=1)
        self.mid = ResBlock(c2, c3, emb_dim)
        self.up2 = ResBlock(c3 + c2, c2, emb_dim)
        self.up1 = ResBlock(c2 + c1, c1, emb_dim)
        self.out_norm = nn.GroupNorm(8, c1)
        self.out = nn.Conv2d(c1, 3, 3, padding=1)

    def forward(self, x: torch.Tensor, t: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        emb = self.time_mlp(timestep_embedding(t, self.emb_dim)) + self.class_embed(y)
        h1 = self.down1(self.stem(x), emb)                      # 32×32
        h2 = self.down2(self.pool1(h1), emb)                    # 16×16
        h = self.mid(self.pool2(h2), emb)                       # 8×8
        h = F.interpolate(h, scale_factor=2, mode="nearest")
        h = self.up2(torch.cat([h, h2], dim=1), emb)            # 16×16
        h = F.interpolate(h, scale_factor=2, mode="nearest")
        h = self.up1(torch.cat([h, h1], dim=1), emb)            # 32×32
        return self.out(F.silu(self.out_norm(h)))


class DdimSampler(nn.Module):
    """A trained UNet as a generator: (z = x_T, y) -> x_0 by deterministic DDIM with classifier-free guidance."""

    def __init__(self, unet: UNet | None = None, steps: int = 25, guidance: float = 4.0) -> None:
        super().__init__()
        self.unet = unet or UNet()
        self.num_classes = self.unet.num_classes
        self.steps = steps
        self.guidance = guidance
        self.register_buffer("alpha_bar", alphas_cumprod(), persistent=False)

    def forward(self, z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        times = torch.linspace(TIMESTEPS - 1, 0, self.steps).round().long().tolist()
        x = z
        null = torch.full_like(y, self.num_classes)
        for i, t in enumerate(times):
            a_t = self.alpha_bar[t]
            a_prev = self.alpha_bar[times[i + 1]] if i + 1 < len(times) else torch.tensor(1.0)
            tt = torch.full((x.shape[0],), t, dtype=torch.long, device=x.device)
            if self.guidance == 1.0:
                eps = self.unet(x, tt, y)
            else:
                cond, uncond = self.unet(torch.cat([x, x]), torch.cat([tt, tt]), torch.cat([y, null])).chunk(2)
                eps = uncond + self.guidance * (cond - uncond)
            x0 = ((x - (1 - a_t).sqrt() * eps) / a_t.sqrt()).clamp(-1, 1)
            eps = (x - a_t.sqrt() * x0) / (1 - a_t).sqrt()
            x = a_prev.sqrt() * x0 + (1 - a_prev).sqrt() * eps
        return x.clamp(-1, 1)
