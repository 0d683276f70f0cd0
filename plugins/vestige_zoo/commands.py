"""The ``vestige zoo`` command group: list, sample, grid, train, ship, evaluate, bench."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import click

from vestige.plugin.cifar import CLASSES

DEFAULT_DATA = Path("../shared/data/cifar10-jpeg.zip")


def _weights_option(command: Any) -> Any:
    return click.option("--weights", "weights", type=click.Path(path_type=Path, exists=True, file_okay=False), default=None,
                        help="A weights folder with its manifest.json (a candidate release) instead of the shipped weights.")(command)


def _folder(weights: Path | None) -> Path:
    from vestige_zoo.weights import WEIGHTS_DIR

    return weights or WEIGHTS_DIR


def _echo_rows(rows: Sequence[Sequence[Any]], headers: Sequence[str]) -> None:
    cells = [[str(v) for v in row] for row in rows]
    widths = [max([len(h)] + [len(r[i]) for r in cells]) for i, h in enumerate(headers)]
    for row in [list(headers), *cells]:
        click.echo("  ".join(v.ljust(w) for v, w in zip(row, widths)).rstrip())


def _write_json(path: Path | None, value: Any) -> None:
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(value, indent=2) + "\n")


def _device(device: str | None) -> str:
    import torch

    return device or ("cuda" if torch.cuda.is_available() else "cpu")


def list_models(*, generators_only: bool = False) -> list[Any]:
    """The catalog, imported on use: it brings torch, which every other ``vestige`` command can do without."""
    from vestige_zoo.catalog import list_models as catalog_models

    return catalog_models(generators_only=generators_only)


@click.group()
def zoo() -> None:
    """Vestige's reference generators (Zoo-32): class-conditional 32×32 CIFAR-10 models."""


@zoo.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@_weights_option
def list_command(as_json: bool, weights: Path | None) -> None:
    """List the models with their weight hashes and design choices."""
    from vestige_zoo.weights import shipped_weights

    shipped = shipped_weights(_folder(weights))
    entries = []
    for model in list_models():
        record = shipped.entries.get(model.name)
        entries.append({
            "name": model.name, "kind": "generator" if model.is_generator else "classifier",
            "description": model.description, "design": model.design,
            "latent_shape": list(model.latent_shape), "num_classes": len(CLASSES),
            "weights": record.file if record else None, "sha256": record.sha256 if record else None,
            "size": record.size if record else None, "training": record.metadata.get("training") if record else None,
        })
    if as_json:
        click.echo(json.dumps(entries, indent=2, ensure_ascii=False))
        return
    _echo_rows([[e["name"], e["design"]["family"], e["design"].get("upsampling", "-"), e["design"].get("loss", "-"),
                 e["design"]["normalisation"], (e["sha256"] or "not shipped")[:16]] for e in entries],
               ["name", "family", "upsampling", "loss", "normalisation", "sha256"])


@zoo.command()
@click.argument("name")
@click.option("--n", "count", type=click.IntRange(1), default=100, show_default=True, help="Number of images.")
@click.option("--class", "class_name", type=click.Choice(CLASSES), default=None, help="Draw only this class (default: cycle through all ten).")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--out", type=click.Path(path_type=Path), required=True, help="Folder for the PNGs.")
@click.option("--device", default="cpu", show_default=True)
@_weights_option
def sample(name: str, count: int, class_name: str | None, seed: int, out: Path, device: str, weights: Path | None) -> None:
    """Write N samples of generator NAME as PNGs (deterministic for a seed on the CPU)."""
    from vestige_zoo.registry import load_generator
    from vestige_zoo.sampling import sample_images, write_pngs

    images, labels = sample_images(name, load_generator(name, _folder(weights)), count, seed, class_name, device=device)
    paths = write_pngs(images, labels, out, f"{name}-s{seed}")
    click.echo(f"wrote {len(paths)} PNGs to {out}")


@zoo.command()
@click.argument("names", nargs=-1)
@click.option("--per-class", type=click.IntRange(1), default=10, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--out", type=click.Path(path_type=Path), required=True, help="Folder for zoo-<name>.png grids.")
@click.option("--prefix", default="zoo-", show_default=True, help="File names are <prefix><name>.png.")
@_weights_option
def grid(names: tuple[str, ...], per_class: int, seed: int, out: Path, prefix: str, weights: Path | None) -> None:
    """Write a sample grid per generator (one row per class, airplane at the top)."""
    from vestige_zoo.registry import load_generator
    from vestige_zoo.sampling import class_grid
    from vestige_zoo.weights import shipped_weights

    folder = _folder(weights)
    available = shipped_weights(folder)
    out.mkdir(parents=True, exist_ok=True)
    for name in names or [m.name for m in list_models(generators_only=True) if weights is None or m.name in available]:
        path = out / f"{prefix}{name}.png"
        class_grid(name, load_generator(name, folder), per_class, seed).save(path, optimize=True)
        click.echo(f"wrote {path}")


@zoo.command()
@click.argument("name")
@click.option("--data", type=click.Path(path_type=Path), required=True, help="The CIFAR-10 zip (train/<class>/*.jpg).")
@click.option("--out", type=click.Path(path_type=Path), required=True, help="Folder for the weights and training record.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--steps", type=click.IntRange(1), default=None, help="Exact number of steps (replays a recorded run).")
@click.option("--minutes", type=float, default=None, help="Time budget instead of --steps (default: the model's budget).")
@click.option("--device", default=None, help="cpu or cuda (default: cuda when available).")
@click.option("--threads", type=click.IntRange(1), default=None, help="CPU threads for torch.")
@click.option("--precision", type=click.Choice(["fp32", "bf16"]), default="fp32", show_default=True,
              help="bf16: GAN forward passes under autocast (faster on CPUs with AVX-512 BF16 and on GPUs).")
@click.option("--snapshot-every", type=click.IntRange(1), default=None,
              help="GANs: also save the averaged generator every N steps under OUT/snapshots/.")
def train(name: str, data: Path, out: Path, seed: int, steps: int | None, minutes: float | None,
          device: str | None, threads: int | None, precision: str, snapshot_every: int | None) -> None:
    """Train model NAME on the CIFAR-10 train split, reproducibly from --seed."""
    from vestige_zoo.training import train_model

    if threads:
        import torch

        torch.set_num_threads(threads)
    train_model(name, data, out, seed, steps=steps, minutes=minutes, device=_device(device), precision=precision,
                snapshot_every=snapshot_every, log=lambda line: click.echo(line, err=True))


@zoo.command()
@click.argument("trained", type=click.Path(path_type=Path, exists=True, file_okay=False))
@click.argument("names", nargs=-1)
@click.option("--to", "to", type=click.Path(path_type=Path, file_okay=False), default=None,
              help="Copy into this folder and its manifest instead of the plugin's (a candidate release).")
def ship(trained: Path, names: tuple[str, ...], to: Path | None) -> None:
    """Copy weights trained into folder TRAINED into the plugin and its manifest (for maintainers)."""
    from vestige_zoo.weights import ship as ship_weights

    for record in ship_weights(trained, list(names) or None, _folder(to)):
        click.echo(f"shipped {record.file} ({record.size / 1e6:.2f} MB)")


@zoo.command()
@click.argument("names", nargs=-1)
@click.option("--data", type=click.Path(path_type=Path), default=None,
              help="The CIFAR-10 zip: also measure the classifier on its test split.")
@click.option("--per-class", type=click.IntRange(1), default=100, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--out", type=click.Path(path_type=Path), default=Path("bench-results/zoo-accuracy.json"), show_default=True)
@_weights_option
def evaluate(names: tuple[str, ...], data: Path | None, per_class: int, seed: int, out: Path, weights: Path | None) -> None:
    """Class accuracy of each generator's samples, judged by the project's classifier."""
    from vestige_zoo.catalog import CLASSIFIER
    from vestige_zoo.evaluation import classifier_test_accuracy, sample_class_accuracy
    from vestige_zoo.registry import load_network

    result: dict[str, Any] = {}
    if data is not None:
        result["classifier_test"] = classifier_test_accuracy(data)
        click.echo(f"classifier accuracy on the CIFAR-10 test split: {result['classifier_test']['accuracy']:.1%} "
                   f"({result['classifier_test']['n']} images)")
    from vestige_zoo.weights import shipped_weights

    folder = _folder(weights)
    available = shipped_weights(folder)
    classifier = load_network(CLASSIFIER)
    chosen = names or [m.name for m in list_models(generators_only=True) if weights is None or m.name in available]
    rows = [sample_class_accuracy(n, per_class, seed, classifier, folder) for n in chosen]
    result["generators"] = rows
    _echo_rows([[r["model"], f"{r['accuracy']:.1%}", r["n"]] + [f"{r['per_class'][c]:.0%}" for c in CLASSES] for r in rows],
               ["model", "class accuracy", "samples", *[c[:5] for c in CLASSES]])
    _write_json(out, result)


@zoo.command()
@click.argument("names", nargs=-1)
@click.option("--n", "count", type=click.IntRange(1), default=256, show_default=True)
@click.option("--batch-size", type=click.IntRange(1), default=64, show_default=True)
@click.option("--device", default=None, help="cpu or cuda (default: cuda when available).")
@click.option("--out", type=click.Path(path_type=Path), default=Path("bench-results/zoo-sampling.json"), show_default=True)
def bench(names: tuple[str, ...], count: int, batch_size: int, device: str | None, out: Path) -> None:
    """Sampling throughput (images/s) of each generator."""
    from vestige_zoo.evaluation import sampling_throughput

    rows = [sampling_throughput(n, count, batch_size, _device(device)) for n in names or [m.name for m in list_models(generators_only=True)]]
    _echo_rows([[r["model"], f"{r['images_per_s']:.1f}", r["n"], r["batch_size"], r["device"], r["threads"]] for r in rows],
               ["model", "images/s", "n", "batch", "device", "threads"])
    _write_json(out, rows)
