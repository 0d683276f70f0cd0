"""``vestige detect``: run detectors on files in this process; nothing is stored."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from vestige.analysis.detect import detect_files
from vestige.cli.app import State, cli, echo_table, pass_state
from vestige.cli.models import optional_registry, parse_model_options
from vestige.core.plugins import select_detectors
from vestige.evidence.imagefile import ImageLimits
from vestige.models.artifacts import runnable


@cli.command()
@click.argument("files", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--detector", "names", multiple=True, help="Run only this detector (repeatable; default: all).")
@click.option("--model", "models", multiple=True, metavar="DETECTOR=ARTIFACT",
              help="Run a trainable detector with this registry artifact (id or SHA-256 prefix; repeatable).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object per line for each (file, detector).")
@pass_state
def detect(state: State, files: tuple[Path, ...], names: tuple[str, ...], models: tuple[str, ...], as_json: bool) -> None:
    """Run detectors on FILES and print their findings.

    Exits 1 when a file could not be read or a detector failed on it.
    """
    detectors = select_detectors(state.pm, names)
    cfg = state.config.ingest
    chosen = parse_model_options(models)
    limits = ImageLimits.from_config(cfg)
    with optional_registry(state, required=bool(chosen)) as registry:
        if registry is not None:
            chosen = {name: registry.get(ref).sha256 for name, ref in chosen.items()}
        # With no --detector, trainable detectors that have no model are left out (`vestige models list`).
        ready, _ = runnable([d for d in detectors if d.name not in chosen], registry, named=bool(names))
        detectors = [d for d in detectors if d in ready or d.name in chosen]
        results = detect_files(list(files), detectors, limits, registry=registry, models=chosen,
                               max_tiles=state.config.tiles.max_tiles)
    failed = False
    rows = [row for result in results for row in result.rows()]
    if as_json:
        for row in rows:
            click.echo(json.dumps(row, ensure_ascii=False, sort_keys=True))
    else:
        table = [r for r in rows if "detector" in r]
        echo_table(
            [[r["file"], r["detector"], r["outcome"], r["source"],
              None if r["confidence"] is None else f"{r['confidence']:.3f}", r["error"] or r["reason"]] for r in table],
            ["file", "detector", "outcome", "source", "confidence", "error or reason"],
        )
    for row in rows:
        if row.get("error"):
            failed = True
            if "detector" not in row:
                click.echo(f"error: {row['error']}", err=True)
    if failed:
        sys.exit(1)
