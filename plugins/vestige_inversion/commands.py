"""``vestige inversion``: calibrate a generator, measure the cost of inversion, evaluate the verifier."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from vestige.plugin.commands import State, echo_json, pass_state

DEFAULT_DATA = Path("../shared/data/cifar10-jpeg.zip")
#: Calibration samples and evaluation samples come from disjoint seeds (``vestige zoo sample`` uses small ones).
CALIBRATION_SEED_BASE = 1_000_000
HELD_OUT_SEED_BASE = 2_000_000


def _write_json(path: Path, value: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(value, indent=2) + "\n")


def _threads(threads: int | None) -> None:
    if threads:
        import torch

        torch.set_num_threads(threads)


@click.group("inversion")
def inversion() -> None:
    """Verification by inversion: calibrations, cost and evaluation (docs/inversion.md)."""


@inversion.command("calibrate")
@click.argument("generator")
@click.option("--n", "n", type=click.IntRange(3), default=200, show_default=True, help="Own samples to invert.")
@click.option("--n-real", type=click.IntRange(1), default=None, help="Real photographs among the negatives (default: N).")
@click.option("--n-per-generator", type=click.IntRange(0), default=None,
              help="Samples of each other registered generator of the same output size (default: N / 5).")
@click.option("--negatives", "negatives_dir", type=click.Path(path_type=Path), default=None,
              help="A folder of the lab's own photographs, used first as real negatives.")
@click.option("--data", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help=f"A CIFAR-10 zip whose train split gives real negatives (default: {DEFAULT_DATA} when it is there).")
@click.option("--steps", type=click.IntRange(1), default=200, show_default=True)
@click.option("--restarts", type=click.IntRange(1), default=4, show_default=True)
@click.option("--lr", type=float, default=0.1, show_default=True)
@click.option("--loss", type=click.Choice(["mse", "l1", "ssim"]), default="mse", show_default=True)
@click.option("--screen-steps", type=click.IntRange(1), default=20, show_default=True,
              help="Steps every class is tried before each restart keeps its best one.")
@click.option("--own-quantile", type=click.FloatRange(0.5, 1.0), default=0.95, show_default=True,
              help="Share of own samples the accept region must hold.")
@click.option("--false-accept", type=click.FloatRange(0.0, 0.5), default=0.01, show_default=True,
              help="Largest share of negatives the accept region may reach.")
@click.option("--robust-to", multiple=True, type=click.Choice(["jpeg90", "resize0.9"]),
              help="Add copies of the own samples so perturbed to the own set (repeatable): the accept region then "
                   "holds re-shared images too, or the calibration is refused.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--batch", type=click.IntRange(1), default=64, show_default=True,
              help="Images inverted together (with their restarts and classes).")
@click.option("--device", type=click.Choice(["cpu", "cuda"]), default=None, help="Default: cuda when present.")
@click.option("--threads", type=click.IntRange(1), default=None, help="torch CPU threads.")
@click.option("--no-default", is_flag=True, help="Store the calibration set without making it the lab's default.")
@click.option("--out", type=click.Path(path_type=Path), default=None,
              help="Write the calibration to this artifact file instead of the registry (for `vestige inversion ship`).")
@pass_state
def calibrate_command(state: State, generator: str, n: int, n_real: int | None, n_per_generator: int | None,
                      negatives_dir: Path | None, data: Path | None, steps: int, restarts: int, lr: float, loss: str,
                      screen_steps: int, own_quantile: float, false_accept: float, robust_to: tuple[str, ...],
                      seed: int, batch: int,
                      device: str | None, threads: int | None, no_default: bool, out: Path | None) -> None:
    """Invert N of GENERATOR's own samples and its negatives, and store the accept threshold between them.

    A generator whose accept region would reach its negatives is refused, and nothing is stored.
    """
    import numpy as np
    import torch

    from vestige.plugin.commands import optional_registry
    from vestige.plugin.training import ArtifactFile
    from vestige_inversion.calibration import Calibration, calibrate, merged, pack_set, shipped_set, unpack_set
    from vestige_inversion.generators import LoadedGenerator, generator_specs, get_spec
    from vestige_inversion.negatives import gather
    from vestige_inversion.optimise import Settings

    _threads(threads)
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    specs = generator_specs()
    loaded = LoadedGenerator.load(get_spec(generator, specs), device)
    negatives = gather(loaded, specs, n_real=n_real or n, n_per_generator=n // 5 if n_per_generator is None else n_per_generator,
                       folder=negatives_dir, data=data or (DEFAULT_DATA if DEFAULT_DATA.is_file() else None), seed=CALIBRATION_SEED_BASE + seed,
                       load=lambda spec: LoadedGenerator.load(spec, device))
    settings = Settings(steps=steps, restarts=restarts, lr=lr, loss=loss, screen_steps=screen_steps, seed=seed)
    cal = calibrate(loaded, n, settings, sample_seed=CALIBRATION_SEED_BASE + seed, negatives=negatives, batch=batch,
                    own_quantile=own_quantile, false_accept=false_accept, robust_to=robust_to,
                    progress=lambda m: click.echo(m, err=True))
    summary = {"generator": generator, **cal.entry(), **cal.summary(),
               # min, median, 90th percentile and max of the own losses: a long upper tail means un-inverted samples
               "loss_quantiles": [float(q) for q in np.quantile(cal.losses, [0.0, 0.5, 0.9, 1.0])]}
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_bytes(pack_set({generator: cal}))
        echo_json({**summary, "file": str(out)})
        return
    with optional_registry(state, required=True) as registry:
        assert registry is not None
        current = registry.default_for("inversion")
        base = registry.read(current) if current is not None else shipped_set()
        kept = unpack_set(base) if base is not None else {}
        data_bytes = pack_set(merged(kept, cal))
        ArtifactFile.from_bytes(data_bytes)  # a set that cannot be read back is never stored
        row = registry.add(data_bytes, origin="trained", make_default=not no_default,
                           calibration={generator: cal.summary()}, info={"calibrated": generator})
        dropped = sorted(k for k, v in kept.items() if k != generator and not isinstance(v, Calibration))
        echo_json({**summary, "artifact": {"id": row.id, "sha256": row.sha256, "default": row.is_default},
                   "dropped_first_format": dropped})


@inversion.command("ship")
@click.argument("files", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path))
def ship_command(files: tuple[Path, ...]) -> None:
    """Maintainers: merge calibration files (`calibrate --out`) into the calibration set the plugin ships."""
    from vestige.plugin.training import ArtifactFile
    from vestige_inversion.calibration import Calibration, ship, shipped_set, unpack_set

    current = shipped_set()
    calibrations = unpack_set(current) if current is not None else {}
    for path in files:
        calibrations.update(unpack_set(ArtifactFile.from_bytes(path.read_bytes(), name=str(path))))
    written = ship(calibrations)
    echo_json({"file": str(written), "generators": sorted(k for k, v in calibrations.items() if isinstance(v, Calibration)),
               "dropped_first_format": sorted(k for k, v in calibrations.items() if not isinstance(v, Calibration))})


@inversion.command("bench")
@click.option("--generator", "generators", multiple=True, default=("dcgan-s0",), show_default=True)
@click.option("--steps", type=click.IntRange(1), default=1000, show_default=True)
@click.option("--batch", "batches", default="1,64", show_default=True, help="Comma-separated batch sizes.")
@click.option("--device", type=click.Choice(["cpu", "cuda"]), default=None)
@click.option("--threads", type=click.IntRange(1), default=None)
@click.option("--out", type=click.Path(path_type=Path), default=Path("bench-results/inversion-bench.json"), show_default=True)
def bench_command(generators: tuple[str, ...], steps: int, batches: str, device: str | None, threads: int | None,
                  out: Path) -> None:
    """Seconds per image per generator for STEPS Adam steps, one image at a time vs batched."""
    from vestige_inversion.evaluation import bench

    _threads(threads)
    sizes = [int(b) for b in batches.split(",") if b.strip()]
    result = bench(list(generators), steps=steps, batches=sizes, device=device)
    _write_json(out, result)
    echo_json(result)


@inversion.command("evaluate")
@click.option("--generators", default=None, help="Comma-separated inverters (default: the calibrated GANs and VAE).")
@click.option("--n", "n", type=click.IntRange(2), default=100, show_default=True, help="Own held-out samples and real images.")
@click.option("--n-other", type=click.IntRange(1), default=None, help="Samples of each other zoo model (default: N).")
@click.option("--data", type=click.Path(path_type=Path), default=DEFAULT_DATA, show_default=True)
@click.option("--conditions", default="clean,jpeg90,resize0.9", show_default=True)
@click.option("--threads", type=click.IntRange(1), default=None)
@click.option("--out", type=click.Path(path_type=Path), default=Path("bench-results/inversion-evaluate.json"), show_default=True)
@click.option("--record", is_flag=True, help="Append the Markdown table to docs/benchmarks.md.")
@pass_state
def evaluate_command(state: State, generators: str | None, n: int, n_other: int | None, data: Path,
                     conditions: str, threads: int | None, out: Path, record: bool) -> None:
    """AUROC of each generator's own held-out samples against real images and other zoo models' samples."""
    from vestige.plugin.commands import choose, optional_registry
    from vestige_inversion.calibration import Calibration, unpack_set
    from vestige_inversion.detector import InversionDetector
    from vestige_inversion.evaluation import evaluate, markdown

    _threads(threads)
    detector = InversionDetector()
    with optional_registry(state) as registry:
        artifact = choose(detector, registry)
    if artifact is None:
        raise click.ClickException("no inversion calibration: run `vestige inversion calibrate GENERATOR` first")
    calibrations = {k: v for k, v in unpack_set(artifact).items() if isinstance(v, Calibration)}
    names = [g.strip() for g in generators.split(",")] if generators else sorted(calibrations)
    missing = [g for g in names if g not in calibrations]
    if missing:
        raise click.ClickException(f"no usable calibration for {', '.join(missing)} in model artifact "
                                   f"{artifact.sha256[:12]}…: run `vestige inversion calibrate` for each")
    result = evaluate(names, calibrations, artifact.sha256, n=n, n_other=n_other or n, data=data,
                      conditions=[c.strip() for c in conditions.split(",") if c.strip()])
    _write_json(out, result)
    table = markdown(result)
    click.echo(table)
    if record:
        path = Path("docs/benchmarks.md")
        with path.open("a") as f:
            f.write("\n" + table)
        click.echo(f"appended to {path}", err=True)
