"""Adversarial training of the zoo's GANs: non-saturating, hinge, or WGAN-GP, plus an auxiliary classifier.

All three losses share one conditional discriminator (projection term plus a
class head). The class head is trained on real images only; the generator is
also asked to make the head name the class it was given (weight
``AUX_WEIGHT``), which is what makes a short CPU run produce class-specific
images. Two terms keep that pull from collapsing each class to one picture:
the discriminator's minibatch-spread input, and a mode-seeking term (MSGAN)
that rewards the generator when two latents of the same class give
different images. The shipped generator is an exponential moving average of the
trained one, with batch-norm statistics re-estimated before saving.
"""

from __future__ import annotations

import copy
from typing import Any

import torch
import torch.nn.functional as F

from vestige_zoo.gan_nets import Discriminator
from vestige_zoo.training import TrainingRun, ema_update, recalibrate_batchnorm, write_snapshot

AUX_WEIGHT = 0.5
#: Weight of the mode-seeking term (Mao et al., MSGAN 2019).
MODE_SEEKING_WEIGHT = 1.0
GP_WEIGHT = 10.0
#: A short average (about the last 100 steps): GAN weights move far in a short CPU run, and a longer
#: average blends generators that are too different (noisy, z-blind samples).
EMA_DECAY = 0.99
#: Adam settings and discriminator steps per generator step, by loss.
OPTIMISERS = {
    "nonsaturating": {"lr": 2e-4, "betas": (0.5, 0.999), "d_steps": 1},
    "hinge": {"lr": 2e-4, "betas": (0.5, 0.999), "d_steps": 1},
    "wgan-gp": {"lr": 2e-4, "betas": (0.0, 0.9), "d_steps": 2},
}


def _d_adversarial(loss: str, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    if loss == "nonsaturating":
        return F.softplus(-real).mean() + F.softplus(fake).mean()
    if loss == "hinge":
        return F.relu(1 - real).mean() + F.relu(1 + fake).mean()
    return fake.mean() - real.mean() + 1e-3 * real.square().mean()  # WGAN, with a small drift term


def _g_adversarial(loss: str, fake: torch.Tensor) -> torch.Tensor:
    return F.softplus(-fake).mean() if loss == "nonsaturating" else -fake.mean()


def _gradient_penalty(d: Discriminator, real: torch.Tensor, fake: torch.Tensor, y: torch.Tensor, run: TrainingRun) -> torch.Tensor:
    eps = torch.rand(real.shape[0], 1, 1, 1, generator=run.rng).to(run.device)
    mixed = (eps * real + (1 - eps) * fake).requires_grad_(True)
    score, _ = d(mixed, y)
    (grad,) = torch.autograd.grad(score.sum(), mixed, create_graph=True)
    return (grad.flatten(1).norm(dim=1) - 1).square().mean()


def _mode_seeking(z: torch.Tensor, fake: torch.Tensor, half: int) -> torch.Tensor:
    """Small when images of the same class differ as much as their latents: 1 / (image distance / latent distance + 0.05)."""
    image_distance = (fake[:half] - fake[half:]).abs().flatten(1).mean(1)
    latent_distance = (z[:half] - z[half:]).abs().mean(1)
    return (1.0 / (image_distance / latent_distance + 0.05)).mean()


def train_gan(run: TrainingRun) -> tuple[torch.nn.Module, dict[str, Any]]:
    """Train the model's generator against a fresh discriminator; return the EMA generator and final losses."""
    recipe = run.model.recipe
    loss, settings = recipe["loss"], OPTIMISERS[recipe["loss"]]
    g = run.model.network().to(run.device)
    d = Discriminator(norm=recipe["d_norm"], width=recipe.get("d_width", 16)).to(run.device)
    g_ema = copy.deepcopy(g).eval()
    g_opt = torch.optim.Adam(g.parameters(), lr=settings["lr"], betas=settings["betas"])
    d_opt = torch.optim.Adam(d.parameters(), lr=settings["lr"], betas=settings["betas"])
    n, latent = run.batch_size, g.latent_dim
    metrics: dict[str, Any] = {}
    for step in run.step_indices():
        for _ in range(settings["d_steps"]):
            real, y_real = run.batch()
            y_fake = run.randint(10, n)
            with torch.no_grad(), run.autocast():
                fake = g(run.randn(n, latent), y_fake)
            with run.autocast():
                real_score, real_logits = d(real, y_real)
                fake_score, _ = d(fake, y_fake)
            d_loss = (_d_adversarial(loss, real_score.float(), fake_score.float())
                      + AUX_WEIGHT * F.cross_entropy(real_logits.float(), y_real))
            if loss == "wgan-gp":  # in fp32: the penalty differentiates through a gradient
                d_loss = d_loss + GP_WEIGHT * _gradient_penalty(d, real, fake.float(), y_fake, run)
            d_opt.zero_grad(set_to_none=True)
            d_loss.backward()
            d_opt.step()
        half = n // 2
        y_half = run.randint(10, half)
        y_fake = torch.cat([y_half, y_half])
        z = run.randn(2 * half, latent)
        with run.autocast():
            fake = g(z, y_fake)
            fake_score, fake_logits = d(fake, y_fake)
        g_loss = (_g_adversarial(loss, fake_score.float()) + AUX_WEIGHT * F.cross_entropy(fake_logits.float(), y_fake)
                  + MODE_SEEKING_WEIGHT * _mode_seeking(z, fake.float(), half))
        g_opt.zero_grad(set_to_none=True)
        g_loss.backward()
        g_opt.step()
        ema_update(g_ema, g, EMA_DECAY if step >= 100 else 0.0)
        if step % 200 == 0:
            acc = (fake_logits.argmax(1) == y_fake).float().mean().item()
            metrics = {"d_loss": d_loss.item(), "g_loss": g_loss.item(), "fake_class_accuracy_by_d": acc}
            run.log(f"step {step}/{run.planned_steps or '?'} d {d_loss.item():.3f} g {g_loss.item():.3f} "
                    f"D-accuracy on fakes {acc:.2f} ({run.elapsed() / 60:.1f} min)")
        if run.snapshot_due(step):
            write_snapshot(run, g_ema, step + 1, latent)
    recalibrate_batchnorm(g_ema, run, latent)
    return g_ema.cpu().eval(), metrics
