"""``vestige bench ...``: benchmark commands whose results go to docs/benchmarks.md."""

from __future__ import annotations

from pathlib import Path

import click

from vestige.cli.app import State, echo_json, echo_table, pass_state
from vestige_bench.dataset_commands import replay_command, say_progress, build_group


@click.group("bench")
def bench_group() -> None:
    """Benchmarks: print a table and write JSON."""


bench_group.add_command(build_group)


@bench_group.command("ingest")
@click.option("--n", "count", default=2000, show_default=True, help="Number of JPEGs.")
@click.option("--size", default=256, show_default=True, help="Side of the square images.")
@click.option("--out", type=click.Path(path_type=Path), default=Path("bench-results/ingest.json"), show_default=True)
@pass_state
def bench_ingest(state: State, count: int, size: int, out: Path) -> None:
    """Ingest N generated SIZE×SIZE JPEGs into a fresh SQLite workspace; images/s and peak memory."""
    from vestige_bench.benchmarks import run_ingest_benchmark, write_result

    result = run_ingest_benchmark(count=count, size=size)
    write_result(out, result)
    echo_json(result)


@bench_group.command("neardup")
@click.option("--n", "count", default=10_000_000, show_default=True, help="Stored pHashes.")
@click.option("--queries", default=1000, show_default=True)
@click.option("--radius", default=8, show_default=True)
@click.option("--out", type=click.Path(path_type=Path), default=Path("bench-results/neardup.json"), show_default=True)
@pass_state
def bench_neardup(state: State, count: int, queries: int, radius: int, out: Path) -> None:
    """Near-duplicate queries against N pHashes stored in a SQLite database."""
    from vestige_bench.benchmarks import run_neardup_benchmark, write_result

    result = run_neardup_benchmark(count=count, queries=queries, radius=radius)
    write_result(out, result)
    echo_json(result)


@bench_group.command("analyze")
@click.option("--n", "count", default=1000, show_default=True, help="Number of JPEGs.")
@click.option("--size", default=256, show_default=True, help="Side of the square images.")
@click.option("--redis", "redis_url", default="redis://127.0.0.1:6379/0", show_default=True,
              help="Redis to measure too (skipped when unreachable).")
@click.option("--workers", type=int, default=None, help="Worker processes for the throughput runs (default: CPUs).")
@click.option("--out", type=click.Path(path_type=Path), default=Path("bench-results/analyze.json"), show_default=True)
@pass_state
def bench_analyze(state: State, count: int, size: int, redis_url: str, workers: int | None, out: Path) -> None:
    """Analyse N generated JPEGs with the CPU detectors: in-process, embedded broker, Redis; queue overhead per image."""
    from vestige_bench.analysis_benchmark import run_analysis_benchmark
    from vestige_bench.benchmarks import write_result

    result = run_analysis_benchmark(count=count, size=size, redis_url=redis_url, workers=workers)
    write_result(out, result)
    echo_json(result)


@bench_group.command("perturb")
@click.option("--n", "count", default=2000, show_default=True, help="Images through the training chain, per run.")
@click.option("--per-op", default=200, show_default=True, help="Images through each operation alone, per run.")
@click.option("--size", default=32, show_default=True, help="Side of the square images.")
@click.option("--repeats", default=3, show_default=True, help="Runs of each measurement; the median is kept.")
@click.option("--out", type=click.Path(path_type=Path), default=Path("bench-results/perturb.json"), show_default=True)
@pass_state
def bench_perturb(state: State, count: int, per_op: int, size: int, repeats: int, out: Path) -> None:
    """Perturbation throughput on SIZE×SIZE images: RepMix's training chain, then each operation alone."""
    from vestige_bench.benchmarks import write_result
    from vestige_bench.perturb_benchmark import run_perturb_benchmark

    result = run_perturb_benchmark(count=count, per_op=per_op, size=size, repeats=repeats)
    write_result(out, result)
    rows = [["training chain (augment)", result["training_chain"]["images_per_s"],
             result["training_chain"]["ms_per_image"]]]
    rows += [[name, r["images_per_s"], r["ms_per_image"]] for name, r in result["operations"].items()]
    echo_table(rows, ["operation", "images/s", "ms/image"])
    click.echo(f"written to {out}")


# ---------------------------------------------------------------------------
# benchmark datasets and the harness (docs/benchmarks.md, "Building datasets and running the harness")


@bench_group.command("run")
@click.option("--dataset", "dataset_path", type=click.Path(path_type=Path, exists=True, file_okay=False), required=True)
@click.option("--detectors", required=True, help="Comma-separated detector names.")
@click.option("--out", type=click.Path(path_type=Path), required=True, help="Folder for results.json, results.md and pictures.")
@click.option("--seed", type=int, default=0, show_default=True, help="Training seed (and the --limit draw).")
@click.option("--model", "models", multiple=True,
              help="DET=REF: evaluate this artifact instead of training (registry id or SHA-256 prefix, or a file).")
@click.option("--option", "options", multiple=True, help="DET.KEY=VALUE: a training option of detector DET.")
@click.option("--limit", type=click.IntRange(1), default=None, help="At most N test images per condition.")
@click.option("--device", default="cpu", show_default=True, help="Where detectors train and run.")
@click.option("--record", is_flag=True, help="Append the table to docs/benchmarks.md with the command and the commit.")
@click.option("--threads", type=click.IntRange(1), default=1, show_default=True,
              help="Torch CPU threads for training and evaluation (more than the free cores slows it down).")
@click.option("--single-conditions/--no-single-conditions", default=True, show_default=True,
              help="Also JPEG 90/75/50, resize 0.75/0.5, blur σ 1, crop 0.9 and resize 0.75 then JPEG 75, one at a "
                   "time on the clean test images.")
@click.pass_context
def bench_run(ctx: click.Context, dataset_path: Path, detectors: str, out: Path, seed: int, models: tuple[str, ...],
              options: tuple[str, ...], limit: int | None, device: str, record: bool, threads: int,
              single_conditions: bool) -> None:
    """Train where needed, evaluate every test condition, write a Markdown table, JSON and confusion pictures."""
    from vestige.core.errors import InvalidInputError
    from vestige.core.plugins import select_detectors
    from vestige.models.datasets import open_dataset
    from vestige.plugin.training import use_threads
    from vestige_bench.harness import parse_options, record_results, run_benchmark

    state: State = ctx.find_object(State)
    use_threads(threads)
    names = [n.strip() for n in detectors.split(",") if n.strip()]
    if not names:
        raise InvalidInputError("--detectors names no detector; give a comma-separated list (`vestige plugins` shows them)")
    chosen = select_detectors(state.pm, names)
    fit_options = parse_options(options, chosen)
    docs = Path("docs/benchmarks.md")
    if record and not docs.is_file():
        raise InvalidInputError("--record appends to docs/benchmarks.md: run it from the repository root")
    artifacts = _given_artifacts(state, chosen, models)
    say_progress(f"opening {dataset_path} (checking every file's SHA-256)")
    dataset = open_dataset(dataset_path)
    summary = run_benchmark(dataset, chosen, out, seed=seed, artifacts=artifacts, options=fit_options, limit=limit,
                            device=device, command=replay_command(ctx), register=_registrar(state, dataset),
                            progress=say_progress, pm=state.pm, single_conditions=single_conditions)
    click.echo((out / "results.md").read_text(), nl=False)
    say_progress(f"wrote {out / 'results.json'}, {out / 'results.md'} and the confusion pictures")
    if record:
        record_results(summary, docs)
        say_progress(f"appended the table to {docs}")


def _given_artifacts(state: State, detectors, values: tuple[str, ...]) -> dict:  # noqa: ANN001
    """``--model DET=REF`` as verified artifacts: REF is a file, or an artifact of the workspace's registry."""
    from vestige.core.errors import InvalidInputError
    from vestige.plugin.training import TrainableDetector, read_artifact_file

    by_name = {d.name: d for d in detectors}
    out = {}
    for value in values:
        name, sep, ref = value.partition("=")
        if not sep or not name.strip() or not ref.strip():
            raise InvalidInputError(f"--model takes DETECTOR=ARTIFACT (a registry id, a SHA-256 prefix or a file), not {value!r}")
        name, ref = name.strip(), ref.strip()
        if not isinstance(by_name.get(name), TrainableDetector):
            raise InvalidInputError(f"--model names {name!r}, which is not a trainable detector among --detectors")
        if Path(ref).is_file():
            artifact = read_artifact_file(Path(ref), origin="imported")
        else:
            from vestige.models.artifacts import Registry

            with state.workspace.db.session() as session:
                registry = Registry(session, state.workspace.store)
                artifact = registry.read(registry.get(ref))
        if artifact.detector != name:
            raise InvalidInputError(f"model artifact {artifact.sha256[:12]}… is for detector {artifact.detector}, not {name}")
        out[name] = artifact
    return out


def _registrar(state: State, dataset):  # noqa: ANN001, ANN202
    """Register each model the harness trains in the workspace's model registry (skipped without a workspace)."""
    from vestige.core.errors import VestigeError

    def register(detector, model, path: Path):  # noqa: ANN001, ANN202
        try:
            from vestige.models.artifacts import Registry
        except ImportError:  # a checkout without the registry: the file in OUT/models is the record
            return None
        try:
            workspace = state.workspace
        except VestigeError as exc:
            say_progress(f"{detector.name}: not registered ({exc}); `vestige models import {path}` registers it later")
            return None
        with workspace.db.session() as session:
            row = Registry(session, workspace.store).register_trained(
                detector, model, dataset_sha256=dataset.sha256,
                info={"trained_by": "vestige bench run", "dataset": str(dataset.path), "file": path.name})
            return {"id": row.id, "sha256": row.sha256}

    return register


@bench_group.command("openset")
@click.option("--dataset", "dataset_path", type=click.Path(path_type=Path, exists=True, file_okay=False), required=True)
@click.option("--detector", "detector_name", required=True, help="A trainable detector.")
@click.option("--holdout", required=True, help="The generator kept out of training (a source of the dataset).")
@click.option("--option", "options", multiple=True, help="KEY=VALUE: a training option of the detector.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--limit", type=click.IntRange(1), default=None, help="At most N clean test images per source.")
@click.option("--device", default="cpu", show_default=True)
@click.option("--model", "model_ref", default=None,
              help="Evaluate this artifact (trained without the held-out source) instead of training one.")
@click.option("--out", type=click.Path(path_type=Path), default=None,
              help="Folder for openset.json, openset.md and the model (default: bench-results/openset-DETECTOR-HOLDOUT).")
@click.pass_context
def bench_openset(ctx: click.Context, dataset_path: Path, detector_name: str, holdout: str, options: tuple[str, ...],
                  seed: int, limit: int | None, device: str, model_ref: str | None, out: Path | None) -> None:
    """Train without one generator; AUROC of `unknown` on its test images against the known sources' (docs/benchmarks.md)."""
    from vestige.core.plugins import select_detectors
    from vestige.models.datasets import open_dataset
    from vestige_bench.harness import parse_options
    from vestige_bench.openset import markdown_report, run_openset

    state: State = ctx.find_object(State)
    detector = select_detectors(state.pm, [detector_name])[0]
    fit_options = parse_options([f"{detector_name}.{value}" for value in options], [detector]).get(detector_name, {})
    artifact = _given_artifacts(state, [detector], (f"{detector_name}={model_ref}",))[detector_name] if model_ref else None
    dataset = open_dataset(dataset_path)
    out = out or Path("bench-results") / f"openset-{detector_name}-{holdout}"
    result = run_openset(dataset, detector, holdout, seed=seed, options=fit_options, device=device, limit=limit,
                         out=out, command=replay_command(ctx), progress=say_progress, artifact=artifact)
    click.echo(markdown_report(result), nl=False)
    say_progress(f"wrote {out / 'openset.json'} and {out / 'openset.md'}")


@bench_group.command("detector")
@click.option("--detector", "detector_name", required=True)
@click.option("--dataset", "dataset_path", type=click.Path(path_type=Path, exists=True, file_okay=False), default=None,
              help="Time this dataset's clean test images.")
@click.option("--images", "images_path", type=click.Path(path_type=Path, exists=True, file_okay=False), default=None,
              help="Or the images of this folder.")
@click.option("--n", "count", type=click.IntRange(1), default=2048, show_default=True)
@click.option("--batch-size", type=click.IntRange(1), default=256, show_default=True)
@click.option("--device", type=click.Choice(["cpu", "cuda"]), default="cpu", show_default=True)
@click.option("--precision", type=click.Choice(["fp32", "bf16"]), default="fp32", show_default=True)
@click.option("--model", "model_ref", default=None, help="An artifact (file, registry id or SHA-256 prefix); default: as `vestige detect`.")
@click.option("--threads", type=click.IntRange(1), default=None, help="torch CPU threads (default: torch's).")
@click.option("--decode-threads", type=click.IntRange(1), default=1, show_default=True,
              help="Threads decoding the images (a worker uses jobs.decode_threads).")
@click.option("--out", type=click.Path(path_type=Path), default=None,
              help="JSON file (default: bench-results/detector-DETECTOR.json).")
@click.pass_context
def bench_detector(ctx: click.Context, detector_name: str, dataset_path: Path | None, images_path: Path | None,
                   count: int, batch_size: int, device: str, precision: str, model_ref: str | None,
                   threads: int | None, decode_threads: int, out: Path | None) -> None:
    """Inference images/s of one detector from encoded image bytes: decoding, detector, end to end, network alone."""
    from vestige.core.plugins import select_detectors
    from vestige.models.datasets import open_dataset
    from vestige_bench.benchmarks import write_result
    from vestige_bench.throughput import encoded_images, run_throughput

    state: State = ctx.find_object(State)
    detector = select_detectors(state.pm, [detector_name])[0]
    artifact = _given_artifacts(state, [detector], (f"{detector_name}={model_ref}",))[detector_name] if model_ref else None
    if threads is not None:
        import torch

        torch.set_num_threads(threads)
    dataset = open_dataset(dataset_path) if dataset_path is not None else None
    images = encoded_images(dataset=dataset, folder=images_path, n=count)
    result = run_throughput(detector, images, batch_size=batch_size, device=device, precision=precision,
                            artifact=artifact, command=replay_command(ctx), progress=say_progress,
                            max_tiles=state.config.tiles.max_tiles, decode_threads=decode_threads)
    out = out or Path("bench-results") / f"detector-{detector_name}.json"
    write_result(out, result)
    echo_json(result)


@bench_group.command("gpu")
@click.option("--device", type=click.Choice(["cpu", "cuda"]), default="cuda", show_default=True)
@click.option("--n", "count", type=click.IntRange(1), default=8192, show_default=True,
              help="Images per detector (32×32 zoo samples).")
@click.option("--batch-size", type=click.IntRange(1), default=1024, show_default=True)
@click.option("--precision", type=click.Choice(["fp32", "bf16"]), default="fp32", show_default=True,
              help="For the detectors that offer it; the others run fp32.")
@click.option("--detectors", default=",".join(("fingerprint", "repmix", "manifpt", "metadata")), show_default=True)
@click.option("--analysis-images", type=click.IntRange(1), default=10_000, show_default=True,
              help="Images of the analysis one worker drains.")
@click.option("--inversion-batch", type=click.IntRange(1), default=4096, show_default=True)
@click.option("--inversion-steps", type=click.IntRange(1), default=1000, show_default=True)
@click.option("--out", type=click.Path(path_type=Path), default=Path("bench-results/gpu.json"), show_default=True)
@click.pass_context
def bench_gpu(ctx: click.Context, device: str, count: int, batch_size: int, precision: str, detectors: str,
              analysis_images: int, inversion_batch: int, inversion_steps: int, out: Path) -> None:
    """The GPU path in one JSON: every detector end to end, batched inversion, one worker draining an analysis."""
    from vestige_bench.benchmarks import write_result
    from vestige_bench.gpu import run_gpu_benchmark

    state: State = ctx.find_object(State)
    names = [d.strip() for d in detectors.split(",") if d.strip()]
    result = run_gpu_benchmark(device=device, n=count, batch_size=batch_size, detectors=names,
                               analysis_images=analysis_images, inversion_batch=inversion_batch,
                               inversion_steps=inversion_steps, precision=precision,
                               max_tiles=state.config.tiles.max_tiles,
                               decode_threads=state.config.jobs.decode_threads, command=replay_command(ctx),
                               progress=say_progress)
    write_result(out, result)
    echo_json(result)


@bench_group.command("calibration")
@click.option("--dataset", "dataset_path", type=click.Path(path_type=Path, exists=True, file_okay=False), required=True)
@click.option("--detector", "detector_name", required=True)
@click.option("--model", "model_ref", default=None, help="An artifact (file, registry id or SHA-256 prefix); default: as `vestige detect`.")
@click.option("--condition", type=click.Choice(["clean", "seen-perturbations", "unseen-perturbations", "reshared"]),
              default="clean", show_default=True)
@click.option("--limit", type=click.IntRange(1), default=None, help="At most N test images per source and class group.")
@click.option("--out", type=click.Path(path_type=Path), default=None,
              help="JSON file (default: bench-results/calibration-DETECTOR-CONDITION.json).")
@click.pass_context
def bench_calibration(ctx: click.Context, dataset_path: Path, detector_name: str, model_ref: str | None, condition: str,
                      limit: int | None, out: Path | None) -> None:
    """Expected calibration error, NLL and reliability bins of a detector's confidences on a dataset's test images."""
    from vestige.core.plugins import select_detectors
    from vestige.models.artifacts import attach
    from vestige.models.datasets import open_dataset
    from vestige_bench.benchmarks import write_result
    from vestige_bench.reliability import markdown_table, run_calibration

    state: State = ctx.find_object(State)
    detector = select_detectors(state.pm, [detector_name])[0]
    if model_ref:
        detector.use_artifact(_given_artifacts(state, [detector], (f"{detector_name}={model_ref}",))[detector_name])
    else:
        attach(detector, None)
    detector.load("cpu")
    result = run_calibration(open_dataset(dataset_path), detector, condition=condition, limit=limit,
                             command=replay_command(ctx), progress=say_progress)
    write_result(out or Path("bench-results") / f"calibration-{detector_name}-{condition}.json", result)
    click.echo(markdown_table(result), nl=False)


@bench_group.command("openworld")
@click.option("--dataset", "dataset_path", type=click.Path(path_type=Path, exists=True, file_okay=False), required=True,
              help="zoo32 (the shipped models' dataset): its test split and its generators.")
@click.option("--detectors", default="fingerprint,repmix,manifpt", show_default=True,
              help="Comma-separated trained attribution detectors.")
@click.option("--model", "models", multiple=True, help="DETECTOR=ARTIFACT (file, id or SHA-256 prefix); default: shipped.")
@click.option("--cifar", "cifar_zip", type=click.Path(path_type=Path, dir_okay=False), default=None,
              help="The CIFAR-10 zip for its test photographs (default: ../shared/data/cifar10-jpeg.zip when there).")
@click.option("--per-class", type=click.IntRange(1), default=100, show_default=True, help="CIFAR test photographs per class.")
@click.option("--upscaled", type=click.IntRange(1), default=50, show_default=True,
              help="Zoo samples per generator upscaled ×2 and ×4.")
@click.option("--out", type=click.Path(path_type=Path), default=Path("bench-results/openworld.json"), show_default=True)
@click.pass_context
def bench_openworld(ctx: click.Context, dataset_path: Path, detectors: str, models: tuple[str, ...],
                    cifar_zip: Path | None, per_class: int, upscaled: int, out: Path) -> None:
    """False accusations on real photographs, generators never seen, and in-domain attribution (docs/benchmarks.md)."""
    from vestige.core.errors import InvalidInputError
    from vestige.core.plugins import select_detectors
    from vestige.models.artifacts import attach
    from vestige.models.datasets import open_dataset
    from vestige.plugin.training import TrainableDetector
    from vestige_bench.benchmarks import write_result
    from vestige_bench.dataset_builders import default_cifar_zip
    from vestige_bench.openworld import markdown, run_openworld

    state: State = ctx.find_object(State)
    chosen = select_detectors(state.pm, [n.strip() for n in detectors.split(",") if n.strip()])
    for detector in chosen:
        if not isinstance(detector, TrainableDetector):
            raise InvalidInputError(f"{detector.name} is not a trained attribution detector; bench openworld judges those")
    given = _given_artifacts(state, chosen, models)
    for detector in chosen:
        if detector.name in given:
            detector.use_artifact(given[detector.name])
        else:
            attach(detector, None)
        if detector.artifact is None or detector.artifact.domain is None or not detector.artifact.domain.get("novelty"):
            raise InvalidInputError(f"{detector.name}'s model has no validated domain with a novelty model; "
                                    "fit one with `vestige models refit-domain`")
    if cifar_zip is None and default_cifar_zip().is_file():
        cifar_zip = default_cifar_zip()
    result = run_openworld(open_dataset(dataset_path), chosen, cifar_zip=cifar_zip, per_class=per_class,
                           upscaled_per_source=upscaled, progress=say_progress)
    result["command"] = replay_command(ctx)
    write_result(out, result)
    click.echo(markdown(result), nl=False)
    say_progress(f"wrote {out}")


@bench_group.command("web")
@click.option("--clients", default=50, show_default=True, type=click.IntRange(1, 200))
@click.option("--seconds", default=60.0, show_default=True, type=click.FloatRange(1, 600))
@click.option("--workers", default=2, show_default=True, type=click.IntRange(1, 32),
              help="gunicorn worker processes (werkzeug's threaded server when gunicorn is not installed).")
@click.option("--in-process", "in_process", is_flag=True,
              help="Instead: CPU per request in this process (Flask's test client, no server), 8 blocks of 250.")
@click.option("--out", type=click.Path(path_type=Path), default=Path("bench-results/web.json"), show_default=True)
def bench_web(clients: int, seconds: float, workers: int, in_process: bool, out: Path) -> None:
    """CLIENTS concurrent API clients on loopback for SECONDS against the case list and the image JSON."""
    from vestige_bench.benchmarks import write_result
    from vestige_bench.web import run_in_process_benchmark, run_web_benchmark

    result = run_in_process_benchmark() if in_process else run_web_benchmark(clients=clients, seconds=seconds, workers=workers)
    write_result(out, result)
    echo_json(result)
