"""``vestige manifpt``: build a reference manifold, benchmark projection, analyse fingerprint structure, ship."""

from __future__ import annotations

import json
import os
import platform
import threading
import time
from pathlib import Path
from typing import Any

import click

from vestige.plugin import VestigeError

DEFAULT_CIFAR = Path("../shared/data/cifar10-jpeg.zip")


@click.group()
def manifpt() -> None:
    """ManiFPT: the reference manifold of real images, projection benchmark, fingerprint structure."""


def _registry_session() -> Any:
    """A context manager giving the workspace's model registry (core internals: no public API reaches it yet)."""
    import contextlib

    from vestige.plugin import load_configuration
    from vestige.plugin.commands import Registry, Workspace

    @contextlib.contextmanager
    def session() -> Any:
        workspace = Workspace.open(load_configuration())
        with workspace.db.session() as s:
            yield Registry(s, workspace.store)

    return session()


def load_artifact(ref: str) -> Any:
    """An artifact from a file, or by id / SHA-256 prefix from the workspace's registry."""
    from vestige.plugin.training import ArtifactFile

    path = Path(ref)
    if path.is_file():
        return ArtifactFile.from_bytes(path.read_bytes(), origin="imported", name=str(path))
    with _registry_session() as registry:
        return registry.read(registry.get(ref))


@manifpt.command("reference")
@click.option("--images", "folder", type=click.Path(path_type=Path, file_okay=False), required=True,
              help="A folder of the lab's real images (searched recursively).")
@click.option("--limit", type=click.IntRange(1), default=None, help="Keep at most this many (a seeded random choice).")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--out", type=click.Path(path_type=Path, dir_okay=False), default=None, help="Also write the artifact here.")
@click.option("--no-register", is_flag=True, help="Only write --out; do not add it to the workspace's registry.")
def reference_command(folder: Path, limit: int | None, seed: int, out: Path | None, no_register: bool) -> None:
    """Build a reference manifold from a folder of real images and register it as a model artifact."""
    import numpy as np

    from vestige.plugin.services import make_input
    from vestige_manifpt.detector import VERSION
    from vestige_manifpt.reference import ReferenceError, folder_images, from_images, pack

    files = folder_images(folder)
    if limit is not None and limit < len(files):
        chosen = np.sort(np.random.default_rng(seed).permutation(len(files))[:limit])
        files = [files[i] for i in chosen]
    inputs = []
    for path in files:
        try:
            inputs.append(make_input(path.read_bytes(), name=str(path.relative_to(folder))))
        except VestigeError as exc:
            raise ReferenceError(f"{path} cannot be a reference image: {exc}") from None
    reference = from_images(inputs)
    data = pack(reference, version=VERSION, info={"folder": folder.name, "seed": seed, "limit": limit})
    if out is None and no_register:
        raise click.UsageError("--no-register without --out would build the reference for nothing")
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_bytes(data)
    import hashlib

    sha = hashlib.sha256(data).hexdigest()
    if not no_register:
        with _registry_session() as registry:
            row = registry.add(data, origin="trained", filename=f"manifpt-reference-{sha[:8]}.safetensors",
                               info={"command": f"vestige manifpt reference --images {folder}"
                                                + (f" --limit {limit} --seed {seed}" if limit else "")})
            click.echo(f"registered reference artifact {row.id}: {len(reference)} images, sha256 {sha}")
    if out is not None:
        click.echo(f"{out}  sha256 {sha}  ({len(reference)} images, {len(data)} bytes)")
    click.echo(f"train with it: vestige train manifpt --dataset DIR --reference {sha[:12] if not no_register else out}")


class PeakRss:
    """Samples the process's resident memory every 5 ms in a thread; ``peak`` is the largest seen (bytes)."""

    def __init__(self) -> None:
        self.peak = self.current()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    @staticmethod
    def current() -> int:
        with open(f"/proc/{os.getpid()}/statm") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")

    def _run(self) -> None:
        while not self._stop.wait(0.005):
            self.peak = max(self.peak, self.current())

    def __enter__(self) -> PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self.current())


@manifpt.command("bench")
@click.option("--reference-size", type=click.IntRange(1), default=50_000, show_default=True)
@click.option("--n", "count", type=click.IntRange(1), default=1000, show_default=True, help="Query images.")
@click.option("--space", type=click.Choice(["rgb", "freq", "sl"]), default="rgb", show_default=True)
@click.option("--device", default="cpu", show_default=True)
@click.option("--budget-mib", type=click.IntRange(1), default=256, show_default=True, help="Working memory of one step.")
@click.option("--threads", type=click.IntRange(1), default=1, show_default=True)
@click.option("--data", type=click.Path(path_type=Path), default=DEFAULT_CIFAR, show_default=True,
              help="CIFAR-10 zip (train: reference, test: queries); synthetic images when it is absent.")
@click.option("--out", type=click.Path(path_type=Path, dir_okay=False), default=None, help="Write the result as JSON.")
def bench_command(reference_size: int, count: int, space: str, device: str, budget_mib: int, threads: int,
                  data: Path, out: Path | None) -> None:
    """Projection throughput (images/s) and peak memory against a large reference."""
    import numpy as np
    import torch

    from vestige_manifpt.projection import chunk_sizes, nearest
    from vestige_manifpt.spaces import representation

    torch.set_num_threads(threads)
    if data.is_file():
        from vestige.plugin.cifar import load_split

        train, test = load_split(data, "train"), load_split(data, "test")
        if reference_size > len(train.images):
            raise click.UsageError(f"the CIFAR-10 train split has {len(train.images)} images")
        ref_pixels = train.images[:reference_size].transpose(0, 2, 3, 1)
        queries = np.resize(test.images, (count, 3, 32, 32)).transpose(0, 2, 3, 1)
        origin = f"CIFAR-10 ({data.name}): train[:{reference_size}] as reference, test[:{count}] as queries"
    else:
        rng = np.random.default_rng(0)
        ref_pixels = rng.integers(0, 256, (reference_size, 32, 32, 3), dtype=np.uint8)
        queries = rng.integers(0, 256, (count, 32, 32, 3), dtype=np.uint8)
        origin = "synthetic uniform noise (no CIFAR-10 zip)"
    began = time.perf_counter()
    ref = representation(np.ascontiguousarray(ref_pixels), space, device=device)
    if ref.is_floating_point():
        ref = ref.to(torch.float16)  # as the detector keeps it
    reference_seconds = time.perf_counter() - began
    norms = (ref.reshape(len(ref), -1).double() ** 2).sum(1)
    dim = int(np.prod(ref.shape[1:]))
    budget = budget_mib * 1024**2
    chunks = chunk_sizes(count, reference_size, dim, budget)
    rss_before = PeakRss.current()
    with PeakRss() as peak:
        began = time.perf_counter()
        query = representation(np.ascontiguousarray(queries), space, device=device)
        nearest(query, ref, budget_bytes=budget, device=device, reference_norms=norms)
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        seconds = time.perf_counter() - began
    result = {
        "command": f"vestige manifpt bench --reference-size {reference_size} --n {count} --space {space} "
                   f"--device {device} --budget-mib {budget_mib} --threads {threads}",
        "space": space, "device": device, "threads": threads, "reference_size": reference_size, "queries": count,
        "data": origin, "dim": dim, "reference_dtype": str(ref.dtype).removeprefix("torch."),
        "reference_mib": round(ref.element_size() * ref.nelement() / 1024**2, 1),
        "reference_representation_seconds": round(reference_seconds, 2),
        "chunks": {"queries": chunks.queries, "references": chunks.references, "step_mib": round(chunks.step_bytes / 1024**2, 1)},
        "budget_mib": budget_mib, "seconds": round(seconds, 2), "images_per_second": round(count / seconds, 1),
        "rss_before_mib": round(rss_before / 1024**2, 1), "peak_rss_mib": round(peak.peak / 1024**2, 1),
        "peak_rss_growth_mib": round((peak.peak - rss_before) / 1024**2, 1),
        "machine": f"{platform.machine()} CPU, {os.cpu_count()} cores visible, torch {torch.__version__}",
    }
    for key in ("images_per_second", "seconds", "chunks", "reference_mib", "peak_rss_mib", "peak_rss_growth_mib"):
        click.echo(f"{key}: {result[key]}")
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(result, indent=2) + "\n")


@manifpt.command("structure")
@click.option("--dataset", type=click.Path(path_type=Path, file_okay=False), required=True)
@click.option("--model", "model_ref", default=None, help="A trained manifpt artifact (file or registry SHA); default: "
              "the lab's default, else the shipped one.")
@click.option("--per-source", type=click.IntRange(2), default=200, show_default=True, help="Test images per generator.")
@click.option("--out", type=click.Path(path_type=Path, file_okay=False), default=Path("var/manifpt-structure"),
              show_default=True, help="Folder for structure.json, structure.md and structure.png.")
@click.option("--record", is_flag=True, help="Append the table to docs/benchmarks.md.")
def structure_command(dataset: Path, model_ref: str | None, per_source: int, out: Path, record: bool) -> None:
    """Cluster the per-model fingerprints and score the clusters against each design choice (NMI)."""
    import torch

    from vestige.plugin.datasets import open_dataset
    from vestige.plugin.services import get_plugin_manager
    from vestige_manifpt.detector import ManifptDetector
    from vestige_manifpt.structure import analyse, markdown

    torch.set_num_threads(1)
    detector = ManifptDetector()
    if model_ref:
        detector.use_artifact(load_artifact(model_ref))
    else:
        try:
            from vestige.plugin.commands import choose

            with _registry_session() as registry:
                artifact = choose(detector, registry)
        except VestigeError:
            artifact = detector.shipped_artifact()
        if artifact is None:
            raise click.UsageError("no trained manifpt model: train one or give --model")
        detector.use_artifact(artifact)
    metadata = {spec.name: dict(spec.metadata) for specs in get_plugin_manager().hook.vestige_generators() for spec in specs}
    data = open_dataset(dataset)
    result, picture = analyse(detector, data, metadata, per_source=per_source,
                              progress=lambda m: click.echo(m, err=True))
    command = f"vestige manifpt structure --dataset {dataset} --per-source {per_source}" + (f" --model {model_ref}" if model_ref else "")
    result["command"] = command
    out.mkdir(parents=True, exist_ok=True)
    (out / "structure.json").write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n")
    table = markdown(result)
    (out / "structure.md").write_text(table + "\n")
    (out / "structure.png").write_bytes(picture)
    click.echo(table)
    click.echo(f"wrote {out}/structure.json, structure.md, structure.png")
    if record:
        with open("docs/benchmarks.md", "a") as fh:
            fh.write(f"\n### ManiFPT fingerprint structure ({result['space']}, dataset {data.sha256[:12]})\n\n"
                     f"`{command}` (model {str(result['model_sha256'])[:16]})\n\n{table}\n")


@manifpt.command("ship")
@click.argument("file", type=click.Path(path_type=Path, dir_okay=False, exists=True))
@click.option("--command", "train_command", default=None, help="The command that trained it, for the manifest.")
@click.option("--minutes", type=float, default=None, help="How long it trained, for the manifest.")
def ship_command(file: Path, train_command: str | None, minutes: float | None) -> None:
    """Copy a trained manifpt artifact FILE into the plugin's weights/ and its manifest (for maintainers)."""
    from vestige.plugin import ShippedManifest
    from vestige.plugin.training import ArtifactFile
    from vestige_manifpt.detector import WEIGHTS_DIR

    data = file.read_bytes()
    artifact = ArtifactFile.from_bytes(data, name=str(file))
    if artifact.detector != "manifpt" or artifact.info.get("kind") != "attributor":
        raise click.UsageError(f"{file} is not a trained manifpt model")
    manifest = ShippedManifest.read(WEIGHTS_DIR)
    entry = manifest.add("manifpt", data, {
        "space": artifact.info["space"], "validation": artifact.info.get("validation"),
        "dataset_sha256": artifact.info.get("dataset_sha256"),
        "training": {"command": train_command, "minutes": minutes,
                     "epochs_run": artifact.info.get("training", {}).get("epochs_run")}}, make_default=True)
    manifest.write()
    click.echo(f"shipped {entry.file} ({entry.size} bytes)")


@manifpt.command("evaluate")
@click.option("--dataset", type=click.Path(path_type=Path, file_okay=False), required=True)
@click.option("--model", "models", multiple=True, required=True,
              help="DETECTOR=REF: an attribution detector and its artifact (file, or registry id / SHA-256 prefix).")
@click.option("--limit", type=click.IntRange(1), default=None, help="Test images per source, half seen and half unseen classes (default: all).")
@click.option("--condition", type=click.Choice(["clean", "seen-perturbations", "unseen-perturbations", "reshared"]),
              default="clean", show_default=True)
@click.option("--out", type=click.Path(path_type=Path, dir_okay=False), default=None, help="Write the result as JSON.")
def evaluate_command(dataset: Path, models: tuple[str, ...], limit: int | None, condition: str, out: Path | None) -> None:
    """Closed-set attribution accuracy (the paper's metric) of detectors on a dataset's test images, seen and unseen classes."""
    import torch

    from vestige.plugin.datasets import open_dataset
    from vestige.plugin.services import get_detectors, get_plugin_manager
    from vestige_manifpt.evaluation import evaluate, markdown

    torch.set_num_threads(1)
    installed = get_detectors(get_plugin_manager())
    chosen = {}
    for value in models:
        name, _, ref = value.partition("=")
        if name not in installed or not ref:
            raise click.UsageError(f"--model takes DETECTOR=REF with an installed detector, not {value!r}")
        detector = type(installed[name])()  # one instance per artifact: the same detector may be compared with itself
        artifact = load_artifact(ref)
        detector.use_artifact(artifact)
        detector.load("cpu")
        space = artifact.info.get("space")
        chosen[f"{name} ({space})" if space else name] = detector
    data = open_dataset(dataset)
    result = evaluate(chosen, data, limit=limit, condition=condition, progress=lambda m: click.echo(m, err=True))
    result["command"] = (f"vestige manifpt evaluate --dataset {dataset} " + " ".join(f"--model {m}" for m in models)
                         + (f" --limit {limit}" if limit else "") + f" --condition {condition}")
    click.echo(markdown(result))
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(result, indent=2) + "\n")
