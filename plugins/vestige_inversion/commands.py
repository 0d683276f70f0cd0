"""``vestige inversion``: calibrate a generator, measure the cost of inversion, evaluate the verifier."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from vestige.cli.app import State, echo_json, pass_state

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
@click.option("--n", "n", type=click.IntRange(3), default=500, show_default=True, help="Own samples to invert.")
@click.option("--steps", type=click.IntRange(1), default=200, show_default=True)
@click.option("--restarts", type=click.IntRange(1), default=2, show_default=True)
@click.option("--lr", type=float, default=0.1, show_default=True)
@click.option("--loss", type=click.Choice(["mse", "l1", "ssim"]), default="mse", show_default=True)
@click.option("--screen-steps", type=click.IntRange(1), default=20, show_default=True,
              help="Steps every class is tried before each restart keeps its best one.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--batch", type=click.IntRange(1), default=50, show_default=True, help="Images inverted together.")
@click.option("--device", type=click.Choice(["cpu", "cuda"]), default=None, help="Default: cuda when present.")
@click.option("--threads", type=click.IntRange(1), default=None, help="torch CPU threads.")
@click.option("--no-default", is_flag=True, help="Store the calibration set without making it the lab's default.")
@click.option("--out", type=click.Path(path_type=Path), default=None,
              help="Write the calibration to this artifact file instead of the registry (for `vestige inversion ship`).")
@pass_state
def calibrate_command(state: State, generator: str, n: int, steps: int, restarts: int, lr: float, loss: str,
                      screen_steps: int, seed: int, batch: int, device: str | None, threads: int | None,
                      no_default: bool, out: Path | None) -> None:
    """Invert N of GENERATOR's own samples and store their losses as its calibration."""
    import torch

    from vestige.cli.models import optional_registry
    from vestige.training import ArtifactFile
    from vestige_inversion.calibration import calibrate, merged, pack_set, shipped_set, unpack_set
    from vestige_inversion.generators import LoadedGenerator, get_spec
    from vestige_inversion.optimise import Settings

    _threads(threads)
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    loaded = LoadedGenerator.load(get_spec(generator), device)
    settings = Settings(steps=steps, restarts=restarts, lr=lr, loss=loss, screen_steps=screen_steps, seed=seed)
    cal = calibrate(loaded, n, settings, sample_seed=CALIBRATION_SEED_BASE + seed, batch=batch,
                    progress=lambda m: click.echo(m, err=True))
    summary = {"generator": generator, "sha256": cal.sha256, **cal.entry(),
               "loss_quantiles": [float(q) for q in torch.tensor(cal.losses).quantile(torch.tensor([0.0, 0.5, 0.9, 1.0])).tolist()]}
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_bytes(pack_set({generator: cal}))
        echo_json({**summary, "file": str(out)})
        return
    with optional_registry(state, required=True) as registry:
        assert registry is not None
        current = registry.default_for("inversion")
        base = registry.read(current) if current is not None else shipped_set()
        data = pack_set(merged(unpack_set(base) if base is not None else {}, cal))
        row = registry.add(data, origin="trained", make_default=not no_default,
                           calibration={generator: {k: summary[k] for k in ("statistic", "n", "mean", "sd", "sha256")}},
                           info={"calibrated": generator})
        ArtifactFile.from_bytes(data)  # a set that cannot be read back is never reported as stored
        echo_json({**summary, "artifact": {"id": row.id, "sha256": row.sha256, "default": row.is_default}})


@inversion.command("ship")
@click.argument("files", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path))
def ship_command(files: tuple[Path, ...]) -> None:
    """Maintainers: merge calibration files (`calibrate --out`) into the calibration set the plugin ships."""
    from vestige.training import ArtifactFile
    from vestige_inversion.calibration import ship, shipped_set, unpack_set

    current = shipped_set()
    calibrations = unpack_set(current) if current is not None else {}
    for path in files:
        calibrations.update(unpack_set(ArtifactFile.from_bytes(path.read_bytes(), name=str(path))))
    written = ship(calibrations)
    echo_json({"file": str(written), "generators": sorted(calibrations)})


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
@click.option("--alpha", type=float, default=None, help="Default: the detector's (VESTIGE_INVERSION_ALPHA or 0.01).")
@click.option("--conditions", default="clean,jpeg90,resize0.9", show_default=True)
@click.option("--threads", type=click.IntRange(1), default=None)
@click.option("--out", type=click.Path(path_type=Path), default=Path("bench-results/inversion-evaluate.json"), show_default=True)
@click.option("--record", is_flag=True, help="Append the Markdown table to docs/benchmarks.md.")
@pass_state
def evaluate_command(state: State, generators: str | None, n: int, n_other: int | None, data: Path, alpha: float | None,
                     conditions: str, threads: int | None, out: Path, record: bool) -> None:
    """AUROC of each generator's own held-out samples against real images and other zoo models' samples."""
    from vestige.artifacts import choose
    from vestige.cli.models import optional_registry
    from vestige_inversion.calibration import unpack_set
    from vestige_inversion.detector import DEFAULT_ALPHA, ENV_ALPHA, InversionDetector, env_float
    from vestige_inversion.evaluation import evaluate, markdown

    _threads(threads)
    detector = InversionDetector()
    with optional_registry(state) as registry:
        artifact = choose(detector, registry)
    if artifact is None:
        raise click.ClickException("no inversion calibration: run `vestige inversion calibrate GENERATOR` first")
    calibrations = unpack_set(artifact)
    names = [g.strip() for g in generators.split(",")] if generators else sorted(calibrations)
    result = evaluate(names, calibrations, artifact.sha256, n=n, n_other=n_other or n, data=data,
                      alpha=alpha or env_float(ENV_ALPHA, DEFAULT_ALPHA), conditions=[c.strip() for c in conditions.split(",") if c.strip()])
    _write_json(out, result)
    table = markdown(result)
    click.echo(table)
    if record:
        path = Path("docs/benchmarks.md")
        with path.open("a") as f:
            f.write("\n" + table)
        click.echo(f"appended to {path}", err=True)
