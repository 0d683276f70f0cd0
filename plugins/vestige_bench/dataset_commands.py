"""``vestige bench build ...``: benchmark datasets (docs/datasets.md), and the helpers the harness commands share."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import click

from vestige.cli.app import State

# ---------------------------------------------------------------------------
# benchmark datasets and the harness (docs/benchmarks.md, "Building datasets and running the harness")


def replay_command(ctx: click.Context) -> str:
    """The command as a replayable line: every option with the value it took, defaults included."""
    import shlex

    parts = ctx.command_path.split()
    arguments = []
    for param in ctx.command.params:
        value = ctx.params.get(param.name)
        if isinstance(param, click.Argument):
            arguments += [str(v) for v in (value if isinstance(value, tuple) else (value,)) if v is not None]
            continue
        if not isinstance(param, click.Option) or value is None or value is False or value == ():
            continue
        flag = max(param.opts, key=len)
        if param.is_flag:
            parts.append(flag)
            continue
        for item in value if param.multiple else (value,):
            parts += [flag, str(item)]
    return shlex.join(parts + arguments)


def say_progress(line: str) -> None:
    click.echo(line, err=True)


def _counts_options(command: Callable[..., None]) -> Callable[..., None]:
    """The per-source image counts, corruption severity and seed of the zoo builders (in the order recorded
    commands, and so zoo32's manifest hash, have always had)."""
    for option in reversed([
        click.option("--train", "n_train", type=click.IntRange(1), default=1000, show_default=True, help="Training images per source."),
        click.option("--val", "n_val", type=click.IntRange(0), default=200, show_default=True, help="Validation images per source."),
        click.option("--test", "n_test", type=click.IntRange(2), default=500, show_default=True,
                     help="Clean test images per source (half seen, half unseen classes)."),
        click.option("--severity", type=click.IntRange(1, 5), default=3, show_default=True, help="Severity of the test corruptions."),
        click.option("--seed", type=int, default=0, show_default=True),
    ]):
        command = option(command)
    return command


_device_option = click.option("--device", default="cpu", show_default=True, help="Where the generators sample.")


@click.group("build")
def build_group() -> None:
    """Build a benchmark dataset: PNGs of every source and a manifest hashing each file."""


@build_group.command("zoo32")
@click.option("--out", type=click.Path(path_type=Path), required=True, help="New folder for the dataset.")
@click.option("--data", type=click.Path(path_type=Path), default=None,
              help="The CIFAR-10 zip (default: ../shared/data/cifar10-jpeg.zip).")
@_counts_options
@click.option("--sources", default=None, help="Comma-separated subset of: real and the zoo's generators.")
@_device_option
@click.pass_context
def bench_build_zoo32(ctx: click.Context, out: Path, data: Path | None, n_train: int, n_val: int, n_test: int,
                      severity: int, seed: int, sources: str | None, device: str) -> None:
    """CIFAR-10 and every zoo generator: train/val on five classes, test on those and five unseen, perturbed copies."""
    import time

    from vestige_bench.dataset_builders import Counts, build_zoo32

    state: State = ctx.find_object(State)
    began = time.perf_counter()
    dataset = build_zoo32(out, data=data, counts=Counts(n_train, n_val, n_test), severity=severity, seed=seed,
                          sources=[s.strip() for s in sources.split(",") if s.strip()] if sources else None,
                          command=replay_command(ctx), device=device, pm=state.pm, progress=say_progress)
    _report_dataset(dataset, time.perf_counter() - began)


@build_group.command("snapshots")
@click.argument("runs", nargs=-1, required=True, type=click.Path(path_type=Path, exists=True, file_okay=False))
@click.option("--out", type=click.Path(path_type=Path), required=True, help="New folder for the dataset.")
@click.option("--real", is_flag=True, help="Add CIFAR-10 photographs as `real` (default: generators only, like a lab's case).")
@click.option("--data", type=click.Path(path_type=Path), default=None,
              help="The CIFAR-10 zip for --real (default: ../shared/data/cifar10-jpeg.zip).")
@_counts_options
@_device_option
@click.pass_context
def bench_build_snapshots(ctx: click.Context, runs: tuple[Path, ...], out: Path, real: bool, data: Path | None,
                          n_train: int, n_val: int, n_test: int, severity: int, seed: int, device: str) -> None:
    """Every snapshot of `vestige zoo train --snapshot-every` RUNS as a source: new generators, as a lab's case brings."""
    import time

    from vestige_bench.dataset_builders import Counts, build_snapshots

    state: State = ctx.find_object(State)
    began = time.perf_counter()
    dataset = build_snapshots(list(runs), out, data=data, counts=Counts(n_train, n_val, n_test), severity=severity,
                              seed=seed, real=real, command=replay_command(ctx), device=device, pm=state.pm,
                              progress=say_progress)
    _report_dataset(dataset, time.perf_counter() - began)


@build_group.command("folders")
@click.argument("src", type=click.Path(path_type=Path, exists=True, file_okay=False))
@click.option("--out", type=click.Path(path_type=Path), required=True, help="New folder for the dataset.")
@click.option("--val-fraction", type=float, default=0.1, show_default=True)
@click.option("--test-fraction", type=float, default=0.2, show_default=True)
@click.option("--severity", type=click.IntRange(1, 5), default=3, show_default=True, help="Severity of the test corruptions.")
@click.option("--crop", type=click.IntRange(1), default=None, help="Keep the centre N×N of every image (same size for all sources).")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--tiles", type=click.IntRange(1), default=None,
              help="Cut every image into tiles of N×N at native resolution after splitting by image (docs/tiles.md).")
@click.option("--tiles-per-image", type=click.IntRange(1), default=None,
              help="With --tiles: at most this many tiles per image, on an evenly spaced sub-grid (default 64).")
@click.pass_context
def bench_build_folders(ctx: click.Context, src: Path, out: Path, val_fraction: float, test_fraction: float,
                        severity: int, crop: int | None, seed: int, tiles: int | None,
                        tiles_per_image: int | None) -> None:
    """A lab's reference images: one sub-folder of SRC per source (`real` for camera images)."""
    import time

    from vestige.evidence.imagefile import ImageLimits
    from vestige_bench.dataset_builders import TILES_PER_IMAGE, build_folders

    state: State = ctx.find_object(State)
    cfg = state.config.ingest
    began = time.perf_counter()
    dataset = build_folders(src, out, val_fraction=val_fraction, test_fraction=test_fraction, seed=seed, severity=severity,
                            crop=crop, command=replay_command(ctx), pm=state.pm, tiles=tiles,
                            tiles_per_image=tiles_per_image or TILES_PER_IMAGE,
                            limits=ImageLimits.from_config(cfg),
                            progress=say_progress, warn=lambda line: click.echo(f"warning: {line}", err=True))
    _report_dataset(dataset, time.perf_counter() - began)


@build_group.command("tiles-dev")
@click.option("--out", type=click.Path(path_type=Path), required=True, help="New folder (fit/ and test/ inside).")
@click.option("--side", type=click.IntRange(32), default=96, show_default=True, help="Side of every full-size image.")
@click.option("--pieces", type=click.IntRange(1), default=8, show_default=True, help="Most pieces per photograph.")
@click.option("--mosaics", type=click.IntRange(0), default=8, show_default=True, help="Mosaics per generator and split.")
@click.option("--whole", type=click.IntRange(0), default=8, show_default=True, help="Whole 32×32 samples per generator and split.")
@click.option("--generators", default=None, help="Comma-separated zoo generators (default: all of them).")
@click.option("--seed", type=int, default=0, show_default=True)
@_device_option
@click.pass_context
def bench_build_tiles_dev(ctx: click.Context, out: Path, side: int, pieces: int, mosaics: int, whole: int,
                          generators: str | None, seed: int, device: str) -> None:
    """Full-size images for tiling (docs/tiles.md): pieces of the package photographs as `real`, mosaics of zoo
    samples not aligned with the tile grid and whole samples, split into fit/ and test/."""
    import json

    from vestige_bench.tile_devset import build_tile_devset

    names = [n.strip() for n in generators.split(",") if n.strip()] if generators else None
    counts = build_tile_devset(out, side=side, pieces=pieces, mosaics=mosaics, whole=whole, seed=seed,
                               generators=names, device=device, progress=say_progress)
    click.echo(json.dumps({"out": str(out), "command": replay_command(ctx), "images": counts}, sort_keys=True))


def _report_dataset(dataset, seconds: float) -> None:  # noqa: ANN001 - a vestige.models.datasets.Dataset
    files = dataset.records()
    size = sum(r.size for r in files) + (dataset.path / "manifest.json").stat().st_size
    clean = sum(r.condition == "clean" for r in files)
    click.echo(f"wrote {dataset.path}: {len(files)} PNGs ({clean} clean, {len(files) - clean} perturbed) of "
               f"{len(dataset.sources)} sources, "
               f"{size / 1e6:.1f} MB, in {seconds:.0f} s")
    click.echo(f"manifest SHA-256 {dataset.sha256}")
