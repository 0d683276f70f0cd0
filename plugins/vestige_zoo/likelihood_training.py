"""Training of the zoo's non-adversarial models: the VAE, the diffusion model and the classifier."""

from __future__ import annotations

import copy
import math
from typing import Any

import torch
import torch.nn.functional as F

from vestige_zoo.diffusion_net import TIMESTEPS, alphas_cumprod
from vestige_zoo.training import TrainingRun, ema_update, recalibrate_batchnorm

EMA_DECAY = 0.999


def train_vae(run: TrainingRun) -> tuple[torch.nn.Module, dict[str, Any]]:
    """Maximise the ELBO with a Gaussian likelihood of fixed σ (recipe ``sigma``, in [-1, 1] units)."""
    vae = run.model.network().to(run.device).train()
    opt = torch.optim.Adam(vae.parameters(), lr=1e-3)
    sigma = run.model.recipe["sigma"]
    metrics: dict[str, Any] = {}
    for step in run.step_indices():
        x, y = run.batch()
        mu, logvar = vae.encoder.distribution(x, y)
        z = mu + run.randn(*mu.shape) * (0.5 * logvar).exp()
        recon = vae.decoder(z, y)
        rec = (recon - x).square().flatten(1).sum(1).mean() / (2 * sigma**2)
        kl = 0.5 * (mu.square() + logvar.exp() - 1 - logvar).sum(1).mean()
        loss = rec + kl
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if step % 200 == 0:
            metrics = {"reconstruction": rec.item(), "kl": kl.item(), "mse": (recon - x).square().mean().item()}
            run.log(f"step {step}/{run.planned_steps or '?'} rec {rec.item():.1f} kl {kl.item():.1f} ({run.elapsed() / 60:.1f} min)")
    # The decoder samples from the prior: its batch-norm statistics are re-estimated on prior samples.
    recalibrate_batchnorm(vae.decoder, run, vae.decoder.latent_dim)
    return vae.cpu().eval(), metrics


def train_diffusion(run: TrainingRun) -> tuple[torch.nn.Module, dict[str, Any]]:
    """DDPM ε-prediction with class dropout (for classifier-free guidance); returns the EMA sampler."""
    sampler = run.model.network().to(run.device)
    unet = sampler.unet.train()
    ema = copy.deepcopy(sampler).eval()
    opt = torch.optim.Adam(unet.parameters(), lr=5e-4)
    alpha_bar = alphas_cumprod().to(run.device)
    dropout = run.model.recipe["label_dropout"]
    metrics: dict[str, Any] = {}
    for step in run.step_indices():
        x, y = run.batch()
        n = x.shape[0]
        t = run.randint(TIMESTEPS, n)
        noise = run.randn(*x.shape)
        a = alpha_bar[t][:, None, None, None]
        drop = torch.rand(n, generator=run.rng).to(run.device) < dropout
        y = torch.where(drop, torch.full_like(y, unet.num_classes), y)
        loss = F.mse_loss(unet(a.sqrt() * x + (1 - a).sqrt() * noise, t, y), noise)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        ema_update(ema.unet, unet, EMA_DECAY if step > 1000 else 0.99)
        if step % 200 == 0:
            metrics = {"mse": loss.item()}
            run.log(f"step {step}/{run.planned_steps or '?'} mse {loss.item():.4f} ({run.elapsed() / 60:.1f} min)")
    return ema.cpu().eval(), metrics


def train_classifier(run: TrainingRun) -> tuple[torch.nn.Module, dict[str, Any]]:
    """SGD with Nesterov momentum and a cosine learning rate over the planned steps; random crops and flips."""
    net = run.model.network().to(run.device).train()
    opt = torch.optim.SGD(net.parameters(), lr=0.05, momentum=0.9, nesterov=True, weight_decay=5e-4)
    metrics: dict[str, Any] = {}
    for step in run.step_indices():
        for group in opt.param_groups:
            group["lr"] = 0.05 * 0.5 * (1 + math.cos(math.pi * run.progress(step)))
        x, y = run.batch(run.model.recipe["batch_size"])
        # random translation by up to 4 pixels (pad-and-crop)
        dx, dy = (int(v) for v in torch.randint(-4, 5, (2,), generator=run.rng))
        x = torch.roll(F.pad(x, (4, 4, 4, 4), mode="reflect"), shifts=(dy, dx), dims=(2, 3))[:, :, 4:36, 4:36]
        logits = net(x)
        loss = F.cross_entropy(logits, y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if step % 200 == 0:
            metrics = {"loss": loss.item(), "train_batch_accuracy": (logits.argmax(1) == y).float().mean().item()}
            run.log(f"step {step}/{run.planned_steps or '?'} loss {loss.item():.3f} ({run.elapsed() / 60:.1f} min)")
    return net.cpu().eval(), metrics
