"""``vestige zoo train``: train one zoo model from the CIFAR-10 zip, reproducibly from a seed.

A run is a number of optimisation steps. Given ``--steps`` it is exactly that
many; given a time budget (``--minutes``) the run times its first steps, fixes
the step count that fits the budget, and records it, so the same command
with ``--steps N`` replays the run. Every random draw (batches, flips, noise)
comes from generators seeded by the seed, so on the CPU with the same thread
count a replay gives the same weights.

``--precision bf16`` runs the GANs' forward passes under CPU/GPU autocast
(bfloat16 matrix products, fp32 weights and optimiser state): on this
project's AVX-512-BF16 development CPU a dcgan-s0 step took 0.54× the fp32
time. It is recorded in the training record and in the replay command.
``--snapshot-every N`` also writes the averaged generator every N steps to
``OUT/snapshots/step-N/``, laid out like a training output (weights plus
``<name>.json``), so ``vestige zoo ship OUT/snapshots/step-N --to DIR`` and
``vestige zoo evaluate --weights DIR`` measure how quality grows with steps.
"""

from __future__ import annotations

import contextlib
import copy
import json
import platform
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from vestige.plugin import InvalidInputError
from vestige.plugin.cifar import load_split
from vestige_zoo.catalog import ZooModel, get_model
from vestige_zoo.weights import save_weights

#: Steps timed before a time budget is turned into a step count.
CALIBRATION_STEPS = 30
PRECISIONS = ("fp32", "bf16")


@dataclass
class TrainingRun:
    """What a trainer needs: the data, the device, seeded random sources and the step plan."""

    model: ZooModel
    images: torch.Tensor  # N×3×32×32 uint8 on the device
    labels: torch.Tensor
    device: torch.device
    seed: int
    batch_size: int
    steps: int | None
    budget_s: float | None
    log: Callable[[str], None]
    precision: str = "fp32"
    snapshot_every: int | None = None
    out: Path | None = None
    rng: torch.Generator = field(init=False)
    started: float = field(init=False)
    planned_steps: int | None = field(init=False, default=None)

    def __post_init__(self) -> None:
        self.rng = torch.Generator().manual_seed(self.seed)
        self.started = time.perf_counter()
        self.planned_steps = self.steps

    def batch(self, size: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """A random batch of real images in [-1, 1], randomly flipped, with their labels."""
        n = size or self.batch_size
        idx = torch.randint(0, self.images.shape[0], (n,), generator=self.rng)
        flip = torch.rand(n, generator=self.rng) < 0.5
        x = self.images[idx.to(self.device)].float().div(127.5).sub(1.0)
        x = torch.where(flip.to(self.device)[:, None, None, None], x.flip(3), x)
        return x, self.labels[idx.to(self.device)]

    def randn(self, *shape: int) -> torch.Tensor:
        """Standard normal noise from the run's generator, on the device."""
        return torch.randn(*shape, generator=self.rng).to(self.device)

    def randint(self, high: int, n: int) -> torch.Tensor:
        return torch.randint(0, high, (n,), generator=self.rng).to(self.device)

    def step_indices(self) -> Iterator[int]:
        """Yield step numbers until the plan is done, fixing the plan after calibration on a time budget."""
        step = 0
        while self.planned_steps is None or step < self.planned_steps:
            if self.planned_steps is None and step == CALIBRATION_STEPS:
                per_step = (time.perf_counter() - self.started) / CALIBRATION_STEPS
                self.planned_steps = max(CALIBRATION_STEPS, int(self.budget_s / per_step))
                self.log(f"{per_step * 1000:.0f} ms/step: planning {self.planned_steps} steps for {self.budget_s / 60:.1f} min")
            yield step
            step += 1

    def progress(self, step: int) -> float:
        """Fraction of the plan done; 0 during the calibration steps, so a budgeted run and its replay agree."""
        return step / self.planned_steps if step >= CALIBRATION_STEPS and self.planned_steps else 0.0

    def elapsed(self) -> float:
        return time.perf_counter() - self.started

    def autocast(self) -> contextlib.AbstractContextManager[Any]:
        """Mixed precision for forward passes when the run is ``bf16``; a no-op in ``fp32``."""
        if self.precision == "fp32":
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=torch.bfloat16)

    def snapshot_due(self, step: int) -> bool:
        """Whether a snapshot is written after ``step`` (never after the last: that is the run's result)."""
        done = step + 1
        return (bool(self.snapshot_every) and done % self.snapshot_every == 0
                and (self.planned_steps is None or done < self.planned_steps))


def ema_update(ema: torch.nn.Module, model: torch.nn.Module, decay: float) -> None:
    """ema ← decay·ema + (1 − decay)·model for parameters; buffers are copied."""
    with torch.no_grad():
        for e, p in zip(ema.parameters(), model.parameters()):
            e.lerp_(p, 1.0 - decay)
        for e, b in zip(ema.buffers(), model.buffers()):
            e.copy_(b)


def recalibrate_batchnorm(generator: torch.nn.Module, run: TrainingRun, latent_dim: int, batches: int = 50,
                          rng: torch.Generator | None = None) -> None:
    """Re-estimate batch-norm statistics of a (EMA) generator from its own batches, for eval-mode sampling.

    The latents come from the run's generator, or from ``rng`` when given
    (snapshots use their own, so writing them does not change the run).
    """
    norms = [m for m in generator.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    if not norms:
        return
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # cumulative average over the recalibration batches
    n = run.batch_size
    generator.train()
    with torch.no_grad():
        for _ in range(batches):
            if rng is None:
                z, y = run.randn(n, latent_dim), run.randint(10, n)
            else:
                z = torch.randn(n, latent_dim, generator=rng).to(run.device)
                y = torch.randint(0, 10, (n,), generator=rng).to(run.device)
            generator(z, y)
    generator.eval()


def write_snapshot(run: TrainingRun, generator: torch.nn.Module, step: int, latent_dim: int) -> Path:
    """Save a copy of ``generator`` after ``step`` steps to ``OUT/snapshots/step-N/`` with the record ``ship`` reads."""
    snapshot = copy.deepcopy(generator)
    recalibrate_batchnorm(snapshot, run, latent_dim, rng=torch.Generator().manual_seed(run.seed * 1_000_003 + step))
    folder = (run.out or Path(".")) / "snapshots" / f"step-{step}"
    path, sha = save_weights(snapshot.cpu(), run.model.name, folder)
    record = {"name": run.model.name, "weights": path.name, "sha256": sha, "seed": run.seed, "steps": step,
              "precision": run.precision, "minutes": round(run.elapsed() / 60, 2), "snapshot": True}
    (folder / f"{run.model.name}.json").write_text(json.dumps(record, indent=2) + "\n")
    run.log(f"snapshot after {step} steps: {path}")
    return path


def train_model(name: str, data: Path, out: Path, seed: int = 0, *, steps: int | None = None,
                minutes: float | None = None, device: str = "cpu", batch_size: int = 64,
                precision: str = "fp32", snapshot_every: int | None = None,
                log: Callable[[str], None] = print) -> dict[str, Any]:
    """Train zoo model ``name`` and write ``<name>-<sha8>.safetensors`` and ``<name>.json`` to ``out``."""
    from vestige_zoo.gan_training import train_gan
    from vestige_zoo.likelihood_training import train_classifier, train_diffusion, train_vae

    trainers = {"gan": train_gan, "vae": train_vae, "diffusion": train_diffusion, "classifier": train_classifier}
    model = get_model(name)
    if steps is not None and steps < 1:
        raise InvalidInputError("--steps must be at least 1.")
    if precision not in PRECISIONS:
        raise InvalidInputError(f"--precision must be one of {', '.join(PRECISIONS)}, not {precision!r}.")
    if (precision != "fp32" or snapshot_every) and model.trainer != "gan":
        raise InvalidInputError(f"--precision bf16 and --snapshot-every are for the GANs; {name} is trained by the {model.trainer} trainer.")
    budget_s = None if steps is not None else 60.0 * (minutes if minutes is not None else model.minutes)
    torch.manual_seed(seed)
    split = load_split(data, "train")
    dev = torch.device(device)
    run = TrainingRun(model, torch.from_numpy(split.images).to(dev), torch.from_numpy(split.labels).to(dev), dev,
                      seed, batch_size, steps, budget_s, log, precision, snapshot_every, out)
    log(f"training {name} on {device} ({torch.get_num_threads()} threads), seed {seed}, "
        + (f"{steps} steps" if steps is not None else f"budget {budget_s / 60:.1f} min"))
    trained, metrics = trainers[model.trainer](run)
    seconds = run.elapsed()
    path, sha = save_weights(trained, name, out)
    record = {
        "name": name,
        "weights": path.name,
        "sha256": sha,
        "seed": seed,
        "steps": run.planned_steps,
        "batch_size": model.recipe.get("batch_size", batch_size),
        "minutes": round(seconds / 60, 2),
        "device": device,
        "threads": torch.get_num_threads(),
        "hardware": f"{platform.machine()} CPU" if device == "cpu" else torch.cuda.get_device_name(dev),
        "torch": torch.__version__,
        "precision": precision,
        "recipe": model.recipe,
        "final": {k: round(float(v), 4) for k, v in metrics.items()},
        "command": (f"vestige zoo train {name} --data {data.name} --out DIR --seed {seed} --steps {run.planned_steps}"
                    + (f" --precision {precision}" if precision != "fp32" else "")
                    + (f" --device {device}" if device != "cpu" else f" --device cpu --threads {torch.get_num_threads()}")),
    }
    (out / f"{name}.json").write_text(json.dumps(record, indent=2) + "\n")
    log(f"wrote {path} ({path.stat().st_size / 1e6:.2f} MB) after {seconds / 60:.1f} min")
    return record
