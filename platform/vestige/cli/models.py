"""``vestige models ...`` (the model weights registry) and ``vestige train DETECTOR``."""

from __future__ import annotations

import contextlib
import dataclasses
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click

from vestige.cli.app import State, cli, echo_json, echo_table, json_option, pass_state
from vestige.core.errors import InvalidInputError, VestigeError
from vestige.core.plugins import get_detectors
from vestige.models.artifacts import Registry, artifact_dict
from vestige.plugin.domain import ACCUSATION_RATE, NOVELTY_KEEP
from vestige.plugin.training import DEFAULT_THREADS, TrainableDetector, use_threads


@contextlib.contextmanager
def optional_registry(state: State, *, required: bool = False) -> Iterator[Registry | None]:
    """The workspace's registry in a committed session, or ``None`` when there is no workspace (unless required)."""
    try:
        workspace = state.workspace
    except VestigeError:
        if required:
            raise
        yield None
        return
    with workspace.db.session() as session:
        yield Registry(session, workspace.store)


def parse_model_options(values: tuple[str, ...]) -> dict[str, str]:
    out: dict[str, str] = {}
    for value in values:
        name, sep, ref = value.partition("=")
        if not sep or not name or not ref:
            raise InvalidInputError(f"--model takes DETECTOR=ARTIFACT (an id or SHA-256 prefix), not {value!r}")
        out[name.strip()] = ref.strip()
    return out


def trainable_detectors(state: State) -> dict[str, TrainableDetector]:
    return {name: d for name, d in get_detectors(state.pm).items() if isinstance(d, TrainableDetector)}


@cli.group("models")
def models_group() -> None:
    """The model weights registry: trained detectors' artifacts, hashed and verified on every load."""


@models_group.command("list")
@click.option("--detector", default=None, help="Only this detector's artifacts.")
@json_option
@pass_state
def models_list(state: State, detector: str | None, as_json: bool) -> None:
    """List artifacts (the plugins' shipped ones are recorded on first listing)."""
    with state.workspace.db.session() as session:
        registry = Registry(session, state.workspace.store)
        registry.sync_shipped(trainable_detectors(state).values())
        rows = [artifact_dict(row) for row in registry.list(detector)]
    if as_json:
        echo_json(rows)
        return
    echo_table([[r["id"], r["detector"], r["version"], r["sha256"][:16], r["origin"], "yes" if r["default"] else "",
                 _headline(r["metrics"]), r["created_at"][:19]] for r in rows],
               ["id", "detector", "version", "sha256", "origin", "default", "validation", "created"])


def _headline(metrics: dict[str, Any]) -> str | None:
    for key in ("attribution_accuracy", "accuracy", "val_accuracy"):
        if isinstance(metrics.get(key), (int, float)):
            return f"{key} {metrics[key]:.3f}"
    return None


@models_group.command("show")
@click.argument("ref")
@pass_state
def models_show(state: State, ref: str) -> None:
    """Everything recorded about artifact REF (id or SHA-256 prefix), after verifying its bytes."""
    with state.workspace.db.session() as session:
        registry = Registry(session, state.workspace.store)
        row = registry.get(ref)
        registry.read(row)  # verified: a modified artifact is refused here too
        echo_json({**artifact_dict(row), "verified": True})


@models_group.command("import")
@click.argument("file", type=click.Path(path_type=Path, dir_okay=False))
@click.option("--default", "make_default", is_flag=True, help="Make it its detector's default.")
@json_option
@pass_state
def models_import(state: State, file: Path, make_default: bool, as_json: bool) -> None:
    """Import an artifact FILE (as `vestige models export` writes it)."""
    with state.workspace.db.session() as session:
        row = Registry(session, state.workspace.store).import_file(
            file, make_default=make_default, known_detectors=get_detectors(state.pm))
        data = artifact_dict(row)
    if as_json:
        echo_json(data)
    else:
        click.echo(f"imported model artifact {data['id']} for {data['detector']}: {data['sha256']}"
                   + (" (default)" if data["default"] else ""))


@models_group.command("export")
@click.argument("ref")
@click.option("--out", type=click.Path(path_type=Path), default=Path("."), show_default=True,
              help="A file name, or a folder to write it in.")
@pass_state
def models_export(state: State, ref: str, out: Path) -> None:
    """Write artifact REF to a file, verified."""
    with state.workspace.db.session() as session:
        registry = Registry(session, state.workspace.store)
        row = registry.get(ref)
        path = registry.export(row, out)
        click.echo(f"{path}  sha256 {row.sha256}")


@models_group.command("default")
@click.argument("ref")
@pass_state
def models_default(state: State, ref: str) -> None:
    """Make artifact REF its detector's default (analyses requested from now on use it)."""
    with state.workspace.db.session() as session:
        registry = Registry(session, state.workspace.store)
        row = registry.get(ref)
        registry.read(row)
        registry.set_default(row)
        click.echo(f"{row.detector}: default model is now artifact {row.id} ({row.sha256[:16]})")


@models_group.command("reset-default")
@click.argument("detector")
@pass_state
def models_reset_default(state: State, detector: str) -> None:
    """Go back to the artifact DETECTOR's plugin ships."""
    with state.workspace.db.session() as session:
        Registry(session, state.workspace.store).clear_default(detector)
    click.echo(f"{detector}: no lab default; the plugin's shipped artifact is used")


def _registers_artifact(command):  # noqa: ANN001, ANN202 - a click command function
    """--default, --out and --ship: the options of the commands that register a new artifact made from REF."""
    for option in reversed([
        click.option("--default", "make_default", is_flag=True, help="Make the new artifact its detector's default."),
        click.option("--out", type=click.Path(path_type=Path), default=None, help="Also write the artifact file here."),
        click.option("--ship", is_flag=True, help="Maintainers: replace the plugin's shipped file REF with the new one."),
    ]):
        command = option(command)
    return command


def _register_derived(registry: Registry, detector: TrainableDetector, row: Any, data: bytes, *,
                      dataset_sha256: str | None, info: dict[str, Any], command: str, make_default: bool,
                      out: Path | None, ship: bool) -> tuple[dict[str, Any], Path | None]:
    """Register an artifact made from ``row`` (same network, new domain or calibration) with the options of
    :func:`_registers_artifact`; its ``artifact_dict`` and, with ``ship``, the shipped file it replaced."""
    new = registry.add(data, origin="trained", make_default=make_default, dataset_sha256=dataset_sha256,
                       metrics=row.metrics, calibration=row.calibration, info=info)
    if out is not None:
        registry.export(new, out)
    shipped = domainfit.ship_refit(detector, row.sha256, data, command) if ship else None
    return artifact_dict(new), shipped


@models_group.command("refit-domain")
@click.argument("ref")
@click.option("--dataset", type=click.Path(path_type=Path, file_okay=False), required=True,
              help="The dataset the model was trained on (its train split fits the novelty model, val the thresholds).")
@click.option("--keep", type=float, default=NOVELTY_KEEP, show_default=True,
              help="Share of in-distribution validation images the novelty threshold keeps inside the domain.")
@click.option("--accusation-rate", type=float, default=ACCUSATION_RATE, show_default=True,
              help="Largest share of real validation images the detector may call synthetic.")
@_registers_artifact
@json_option
@pass_state
def models_refit_domain(state: State, ref: str, dataset: Path, keep: float, accusation_rate: float,
                        make_default: bool, out: Path | None, ship: bool, as_json: bool) -> None:
    """Fit the validated domain of artifact REF (id, SHA-256 prefix or artifact file) on DATASET without
    retraining it (docs/verdicts.md).

    A new artifact is registered: the same network, with the domain (input
    sizes, JPEG history, novelty model, accusation threshold and the rates
    measured on held-out generators) in its header.
    """
    from vestige.models import domainfit
    from vestige.models.datasets import open_dataset

    workspace = state.workspace
    detectors = trainable_detectors(state)
    began = time.monotonic()
    with workspace.db.session() as session:
        registry = Registry(session, workspace.store)
        registry.sync_shipped(detectors.values())
        if Path(ref).is_file():
            row = registry.import_file(Path(ref), known_detectors=detectors)
        else:
            row = registry.get(ref)
        artifact = registry.read(row)
        detector = detectors.get(row.detector)
        if detector is None:
            raise InvalidInputError(f"artifact {row.sha256[:12]} is for detector {row.detector}, which is not installed")
        opened = open_dataset(dataset)
        if row.dataset_sha256 and artifact.info.get("dataset_sha256") not in (None, opened.sha256):
            raise InvalidInputError(f"artifact {row.sha256[:12]} was trained on dataset "
                                    f"{artifact.info['dataset_sha256'][:12]}, not {dataset} ({opened.sha256[:12]})")
        command = (f"vestige models refit-domain {row.sha256[:12]} --dataset {dataset} --keep {keep} "
                   f"--accusation-rate {accusation_rate}")
        refitted = domainfit.refit(
            detector, artifact, opened.training_set(augment=False, pm=state.pm), keep=keep,
            accusation_rate=accusation_rate, command=command,
            progress=lambda line: click.echo(f"[{time.monotonic() - began:7.1f}s] {row.detector}: {line}", err=True))
        data, shipped = _register_derived(registry, detector, row, refitted.data, dataset_sha256=opened.sha256,
                                          info={"refit_of": row.sha256, "refit_command": command}, command=command,
                                          make_default=make_default, out=out, ship=ship)
    if as_json:
        echo_json({**data, "shipped_as": None if shipped is None else str(shipped)})
        return
    domain = refitted.domain or {}
    click.echo(f"registered model artifact {data['id']} for {row.detector}: {data['sha256']} (domain of {row.sha256[:12]})"
               + (" (default)" if data["default"] else ""))
    click.echo(domainfit.summary(domain))
    if shipped is not None:
        click.echo(f"shipped as {shipped}")


@models_group.command("calibrate-tiles")
@click.argument("ref")
@click.option("--images", type=click.Path(path_type=Path, file_okay=False, exists=True), required=True,
              help="Full-size reference images, one sub-folder per source (real/, <generator>/): the fit.")
@click.option("--test", "test_images", type=click.Path(path_type=Path, file_okay=False, exists=True), default=None,
              help="Other full-size images, same layout: measured with the calibration and recorded with it.")
@click.option("--accusation-rate", type=float, default=ACCUSATION_RATE, show_default=True,
              help="Largest share of the fit folder's tiled real images the detector may call synthetic.")
@_registers_artifact
@json_option
@pass_state
def models_calibrate_tiles(state: State, ref: str, images: Path, test_images: Path | None, accusation_rate: float,
                           make_default: bool, out: Path | None, ship: bool, as_json: bool) -> None:
    """Fit the image-level calibration of tiled findings of artifact REF on full-size images (docs/tiles.md).

    A new artifact is registered: the same network and domain, with the
    calibration (and what it did on --test) under the domain's `tiles`.
    """
    from vestige.evidence.imagefile import ImageLimits
    from vestige.models import domainfit
    from vestige.models.tilecal import calibrate_tiles, read_folder

    workspace = state.workspace
    detectors = trainable_detectors(state)
    began = time.monotonic()
    limits = ImageLimits.from_config(state.config.ingest)
    fit, test = read_folder(images, limits), (read_folder(test_images, limits) if test_images else None)
    with workspace.db.session() as session:
        registry = Registry(session, workspace.store)
        registry.sync_shipped(detectors.values())
        row = registry.import_file(Path(ref), known_detectors=detectors) if Path(ref).is_file() else registry.get(ref)
        artifact = registry.read(row)
        detector = detectors.get(row.detector)
        if detector is None:
            raise InvalidInputError(f"artifact {row.sha256[:12]} is for detector {row.detector}, which is not installed")
        command = (f"vestige models calibrate-tiles {row.sha256[:12]} --images {images}"
                   + (f" --test {test_images}" if test_images else "") + f" --accusation-rate {accusation_rate}")
        calibrated = calibrate_tiles(
            detector, artifact, fit, test, accusation_rate=accusation_rate, max_tiles=state.config.tiles.max_tiles,
            command=command,
            progress=lambda line: click.echo(f"[{time.monotonic() - began:7.1f}s] {row.detector}: {line}", err=True))
        data, shipped = _register_derived(registry, detector, row, calibrated.data, dataset_sha256=row.dataset_sha256,
                                          info={"tiles_calibration_of": row.sha256, "tiles_command": command},
                                          command=command, make_default=make_default, out=out, ship=ship)
    record = (calibrated.domain or {})["tiles"]
    if as_json:
        echo_json({**data, "tiles": record, "shipped_as": None if shipped is None else str(shipped)})
        return
    click.echo(f"registered model artifact {data['id']} for {row.detector}: {data['sha256']} (tiles calibration of "
               f"{row.sha256[:12]})" + (" (default)" if data["default"] else ""))
    click.echo(f"  accusation threshold {record['accusation_threshold']}, from "
               f"{record['fit']['real_tiled_inside']} tiled real images inside the domain")
    result = record.get("test")
    if result:
        click.echo(f"  test: attribution {result['attribution']}, real accused {result['real_accused']}")
    if shipped is not None:
        click.echo(f"shipped as {shipped}")


class TrainGroup(click.Group):
    """One sub-command per installed trainable detector, with the options it declares."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        state = ctx.find_object(State)
        return sorted(trainable_detectors(state)) if state else []

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        state = ctx.find_object(State)
        if state is None:
            return None
        detector = trainable_detectors(state).get(name)
        return None if detector is None else _train_command(detector)


def _train_command(detector: TrainableDetector) -> click.Command:
    params: list[click.Parameter] = [
        click.Option(["--dataset"], type=click.Path(path_type=Path, file_okay=False), required=True,
                     help="A dataset built by `vestige bench build`."),
        click.Option(["--seed"], type=int, default=0, show_default=True),
        click.Option(["--device"], type=click.Choice(["auto", "cpu", "cuda"]), default="auto", show_default=True),
        click.Option(["--default", "make_default"], is_flag=True, help="Make the trained artifact the default."),
        click.Option(["--out"], type=click.Path(path_type=Path), default=None,
                     help="Also write the artifact file here (a file name or a folder)."),
        click.Option(["--json", "as_json"], is_flag=True, help="Print the registered artifact as JSON."),
        click.Option(["--threads"], type=click.IntRange(1), default=DEFAULT_THREADS, show_default=True,
                     help="Torch CPU threads (more than the free cores slows training down; one replays byte for byte)."),
    ]
    for option in detector.train_options:
        flag = "--" + option.name.replace("_", "-")
        if option.type is bool:
            params.append(click.Option([flag, option.name], is_flag=True, default=bool(option.default), help=option.help))
        else:
            kind = click.Choice(list(option.choices)) if option.choices else option.type
            params.append(click.Option([flag, option.name], type=kind, default=option.default,
                                       show_default=True, help=option.help))
    names = {o.name for o in detector.train_options}

    @click.pass_obj
    def run(state: State, dataset: Path, seed: int, device: str, make_default: bool, out: Path | None,
            as_json: bool, threads: int, **options: Any) -> None:
        _train(state, detector, dataset, seed=seed, device=device, make_default=make_default, out=out,
               as_json=as_json, threads=threads, options={k: v for k, v in options.items() if k in names})

    return click.Command(detector.name, params=params, callback=run,
                         help=f"Train {detector.name} ({detector.description}) and register the artifact.")


def _resolve_device(device: str) -> str:
    if device != "auto":
        return device
    try:
        import torch
    except ImportError:
        return "cpu"
    return "cuda" if torch.cuda.is_available() else "cpu"


def _train(state: State, detector: TrainableDetector, dataset_path: Path, *, seed: int, device: str,
           make_default: bool, out: Path | None, as_json: bool, options: dict[str, Any],
           threads: int = DEFAULT_THREADS) -> None:
    from vestige.models import domainfit
    from vestige.models.datasets import open_dataset

    workspace = state.workspace  # fail before hours of training, not after
    dataset = open_dataset(dataset_path)
    began = time.monotonic()

    def progress(message: str) -> None:
        click.echo(f"[{time.monotonic() - began:7.1f}s] {detector.name}: {message}", err=True)

    use_threads(threads)
    progress(f"training on {dataset_path} ({dataset.sha256[:12]}), seed {seed}, {threads} thread(s)")
    replay = [f"vestige train {detector.name} --dataset {dataset_path} --seed {seed} --threads {threads}"]
    for key, value in sorted(options.items()):
        flag = "--" + key.replace("_", "-")
        replay.append(flag if value is True else "" if value is False or value is None else f"{flag} {value}")
    model = domainfit.train(detector, dataset.training_set(pm=state.pm), seed=seed, options=options, progress=progress,
                            device=_resolve_device(device), command=" ".join(part for part in replay if part))
    tiled = _tile_and_image_accuracy(detector, model, dataset)
    if tiled is not None:
        model = dataclasses.replace(model, metrics={**model.metrics, "validation_tiles": tiled})
    minutes = (time.monotonic() - began) / 60
    info = {"train_command": " ".join(part for part in replay if part), "train_minutes": round(minutes, 2), "seed": seed,
            "options": options, "dataset": str(dataset_path), "threads": threads,
            "under_trained": bool(model.metrics.get("under_trained"))}
    with workspace.db.session() as session:
        registry = Registry(session, workspace.store)
        row = registry.register_trained(detector, model, dataset_sha256=dataset.sha256, info=info,
                                        make_default=make_default)
        data = artifact_dict(row)
        if out is not None:
            registry.export(row, out)
    if model.metrics.get("under_trained"):
        click.echo(f"warning: {detector.name}: its time budget stopped training before early stopping; the model "
                   "may be under-trained (models show and reports say so)", err=True)
    if as_json:
        echo_json(data)
    else:
        click.echo(f"registered model artifact {data['id']} for {detector.name}: {data['sha256']}"
                   + (" (default)" if data["default"] else "") + f", {minutes:.1f} min")
        for key, value in sorted(model.metrics.items()):
            click.echo(f"  {key}: {value}")


def _tile_and_image_accuracy(detector: TrainableDetector, model: Any, dataset: Any) -> dict[str, Any] | None:
    """For a dataset of tiles (`bench build folders --tiles`): the trained model's tile- and image-level accuracy
    on the validation split, images whole (their tiles grouped by the manifest's mapping)."""
    from vestige.analysis.detect import run_detector
    from vestige.models.tilemetrics import image_level_metrics, source_image
    from vestige.plugin.training import ArtifactFile

    records = dataset.records(split="val", condition="clean")
    by_path = {r.path: r for r in dataset.records()}
    if not records or source_image(records[0], by_path) is None:
        return None
    detector.use_artifact(ArtifactFile.from_bytes(model.data))
    detector.load("cpu")
    return image_level_metrics(records, run_detector(detector, dataset.inputs(records)), dataset.sources, by_path)


cli.add_command(TrainGroup("train", help="Train a detector on a dataset and register the artifact in the model registry."))
