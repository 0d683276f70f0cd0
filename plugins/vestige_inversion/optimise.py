"""Batched reconstruction of images by optimising a generator's input (RONAN, LatentTracer).

For each image, ``restarts`` latents are drawn (restart 0 starts from the
encoder's latent when the generator has one) and, for a class-conditional
generator, each is tried with every class: images × restarts × classes are
one batch, optimised together by Adam on the per-sample loss summed over the
batch (Adam is element-wise, so each latent follows the path it would follow
alone). After ``screen_steps`` every restart keeps only its best class and
goes on alone: the class is searched exhaustively but cheaply, since the
other nine classes only run for the screening steps. Each restart keeps the
running minimum of its loss and the reconstruction at that minimum; an
image's loss is the minimum over its restarts, so more restarts are never
worse.

Each restart's latent is drawn from a CPU generator seeded with
``(seed, restart)``: restart r of an image starts from the same point
whatever the batch or the number of restarts, and a CPU run is
deterministic.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from vestige.plugin import InputSpec

LOSSES = ("mse", "l1", "ssim")


@dataclass(frozen=True)
class Settings:
    """How hard to try: these are recorded with a calibration, and detection uses the same ones."""

    steps: int = 200
    restarts: int = 2
    lr: float = 0.1
    loss: str = "mse"
    screen_steps: int = 20
    seed: int = 0

    def as_dict(self) -> dict[str, float | int | str]:
        return {"steps": self.steps, "restarts": self.restarts, "lr": self.lr, "loss": self.loss,
                "screen_steps": self.screen_steps, "seed": self.seed}


@dataclass
class Inversion:
    """Per image: the minimum loss, per restart: its minimum and its first loss; the best reconstruction."""

    loss: torch.Tensor               # N
    restart_loss: torch.Tensor       # N × R
    initial_loss: torch.Tensor       # N × R (the best class's loss at step 0)
    reconstruction: torch.Tensor     # N × C × H × W in [-1, 1]
    klass: torch.Tensor | None       # N, the class of the best restart
    steps: int
    seconds: float
    budget_hit: bool
    extra: dict = field(default_factory=dict)


def per_sample_loss(output: torch.Tensor, target: torch.Tensor, kind: str) -> torch.Tensor:
    """Loss of each image of the batch: MSE, L1 or 1 − SSIM (images in [-1, 1])."""
    if kind == "mse":
        return (output - target).square().flatten(1).mean(1)
    if kind == "l1":
        return (output - target).abs().flatten(1).mean(1)
    if kind == "ssim":
        return 1 - ssim(output, target)
    raise ValueError(f"unknown loss {kind!r}; use one of {', '.join(LOSSES)}")


def ssim(a: torch.Tensor, b: torch.Tensor, window: int = 7, sigma: float = 1.5) -> torch.Tensor:
    """Mean SSIM per image (Gaussian window, images mapped to [0, 1])."""
    a, b = (a + 1) / 2, (b + 1) / 2
    channels = a.shape[1]
    coords = torch.arange(window, dtype=a.dtype, device=a.device) - window // 2
    g = torch.exp(-coords.square() / (2 * sigma**2))
    g = g / g.sum()
    kernel = (g[:, None] * g[None, :]).expand(channels, 1, window, window).contiguous()

    def blur(x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, kernel, padding=window // 2, groups=channels)

    mu_a, mu_b = blur(a), blur(b)
    var_a = blur(a * a) - mu_a.square()
    var_b = blur(b * b) - mu_b.square()
    cov = blur(a * b) - mu_a * mu_b
    c1, c2 = 0.01**2, 0.03**2
    value = ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / ((mu_a.square() + mu_b.square() + c1) * (var_a + var_b + c2))
    return value.flatten(1).mean(1)


def draw_latents(spec: InputSpec, n: int, generator: torch.Generator) -> torch.Tensor:
    """``n`` latents from the spec's distribution (``normal`` or ``uniform`` on [-1, 1])."""
    shape = (n, *spec.latent_shape)
    if spec.distribution == "normal":
        return torch.randn(shape, generator=generator)
    if spec.distribution == "uniform":
        return torch.rand(shape, generator=generator) * 2 - 1
    raise ValueError(f"unknown latent distribution {spec.distribution!r}; use normal or uniform")


def restart_latents(spec: InputSpec, n_images: int, restarts: int, seed: int) -> torch.Tensor:
    """N × R × latent: restart r of every image drawn from a generator seeded with (seed, r)."""
    per_restart = [draw_latents(spec, n_images, torch.Generator().manual_seed(seed * 100_003 + r)) for r in range(restarts)]
    return torch.stack(per_restart, dim=1)


def run_generator(module: torch.nn.Module, z: torch.Tensor, y: torch.Tensor | None) -> torch.Tensor:
    return module(z) if y is None else module(z, y)


def run_encoder(encoder: torch.nn.Module, x: torch.Tensor, y: torch.Tensor | None) -> torch.Tensor:
    return encoder(x) if y is None else encoder(x, y)


def invert(module: torch.nn.Module, spec: InputSpec, targets: torch.Tensor, settings: Settings, *,
           encoder: torch.nn.Module | None = None, max_seconds: float | None = None,
           device: str = "cpu") -> Inversion:
    """Reconstruct ``targets`` (N × C × H × W in [-1, 1]) through ``module``; see the module docstring."""
    began = time.perf_counter()
    n, r = targets.shape[0], settings.restarts
    classes = spec.num_classes or 1
    conditional = spec.num_classes is not None
    targets = targets.to(device)

    # N × R × K × latent, K = classes; restart 0 from the encoder's latent of each (image, class).
    z0 = restart_latents(spec, n, r, settings.seed).to(device)
    z0 = z0[:, :, None].expand(n, r, classes, *spec.latent_shape).clone()
    class_ids = torch.arange(classes, device=device)
    if encoder is not None:
        with torch.no_grad():
            x = targets.repeat_interleave(classes, dim=0)
            y = class_ids.repeat(n) if conditional else None
            z0[:, 0] = run_encoder(encoder, x, y).reshape(n, classes, *spec.latent_shape).to(z0.dtype)

    def flat_targets(k: int) -> torch.Tensor:
        return targets[:, None].expand(n, r * k, *targets.shape[1:]).reshape(n * r * k, *targets.shape[1:])

    z = torch.nn.Parameter(z0.reshape(n * r * classes, *spec.latent_shape))
    y = class_ids.repeat(n * r) if conditional else None
    goal = flat_targets(classes)
    optimiser = torch.optim.Adam([z], lr=settings.lr)
    best = torch.full((z.shape[0],), float("inf"), device=device)
    best_image = torch.zeros_like(goal)
    initial = None
    screening = classes > 1
    step = 0
    budget_hit = False
    while step < settings.steps:
        if max_seconds is not None and step > 0 and time.perf_counter() - began > max_seconds:
            budget_hit = True
            break
        optimiser.zero_grad(set_to_none=True)
        output = run_generator(module, z, y)
        losses = per_sample_loss(output, goal, settings.loss)
        with torch.no_grad():
            improved = losses < best
            best = torch.where(improved, losses.detach(), best)
            best_image[improved] = output.detach()[improved].to(best_image.dtype)
            if initial is None:
                initial = losses.detach().clone()
        losses.sum().backward()
        optimiser.step()
        step += 1
        if screening and (step >= settings.screen_steps or step >= settings.steps):
            # Keep each restart's best class; the rest stop here.
            screening = False
            per = best.reshape(n * r, classes)
            keep = per.argmin(dim=1)
            rows = torch.arange(n * r, device=device) * classes + keep
            initial = initial.reshape(n * r, classes).gather(1, keep[:, None]).squeeze(1)
            z = torch.nn.Parameter(z.detach()[rows].clone())
            y = y[rows]
            best, best_image, goal = best[rows], best_image[rows], goal[rows]
            optimiser = torch.optim.Adam([z], lr=settings.lr)
    if initial is not None and initial.shape[0] != n * r:  # stopped before screening ended
        per = best.reshape(n * r, classes)
        keep = per.argmin(dim=1)
        rows = torch.arange(n * r, device=device) * classes + keep
        initial = initial.reshape(n * r, classes).gather(1, keep[:, None]).squeeze(1)
        best, best_image, y = best[rows], best_image[rows], (y[rows] if y is not None else None)
    restart_loss = best.reshape(n, r)
    choice = restart_loss.argmin(dim=1)
    index = torch.arange(n, device=device) * r + choice
    return Inversion(
        loss=restart_loss.min(dim=1).values.cpu(), restart_loss=restart_loss.cpu(),
        initial_loss=(initial if initial is not None else best).reshape(n, r).cpu(),
        reconstruction=best_image[index].clamp(-1, 1).cpu(),
        klass=y[index].cpu() if y is not None else None,
        steps=step, seconds=time.perf_counter() - began, budget_hit=budget_hit,
    )
