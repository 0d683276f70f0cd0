"""``vestige fingerprint ...``: pictures of model fingerprints, and shipping artifacts into the plugin."""

from __future__ import annotations

import json
from pathlib import Path

import click

from vestige.plugin import InvalidInputError
from vestige.plugin.training import ArtifactFile


@click.group("fingerprint")
def fingerprint() -> None:
    """The fingerprint detector's maintenance commands (docs/fingerprint.md)."""


@fingerprint.command("grid")
@click.option("--artifact", "artifact_path", type=click.Path(path_type=Path, dir_okay=False), default=None,
              help="An auto-encoder artifact file (default: the shipped fingerprint-autoencoder).")
@click.option("--columns", default=4, show_default=True)
@click.option("--out", type=click.Path(path_type=Path, dir_okay=False), required=True, help="The PNG to write.")
def grid(artifact_path: Path | None, columns: int, out: Path) -> None:
    """Draw every model fingerprint of an auto-encoder artifact in one labelled PNG."""
    from vestige_fingerprint.pictures import model_fingerprint_grid
    from vestige_fingerprint.weights import shipped

    if artifact_path is None:
        artifact = shipped("fingerprint-autoencoder")
    else:
        try:
            artifact = ArtifactFile.from_bytes(artifact_path.read_bytes(), origin="imported", name=str(artifact_path))
        except OSError as exc:
            raise InvalidInputError(f"cannot read {artifact_path}: {exc.strerror}") from None
    assert artifact is not None
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(model_fingerprint_grid(artifact, columns=columns))
    click.echo(f"{out}: {len(artifact.info.get('sources', []))} model fingerprints of artifact {artifact.sha256[:12]}")


@fingerprint.command("ship")
@click.argument("artifact", type=click.Path(path_type=Path, dir_okay=False, exists=True))
@click.option("--as", "name", required=True, help="Entry name, e.g. fingerprint-image.")
@click.option("--record", type=click.Path(path_type=Path, dir_okay=False, exists=True), required=True,
              help="What `vestige train fingerprint ... --json` printed for this artifact.")
@click.option("--default", "make_default", is_flag=True, help="Make it the artifact the detector runs with by default.")
def ship(artifact: Path, name: str, record: Path, make_default: bool) -> None:
    """Maintainers: copy a trained ARTIFACT into the plugin's weights and manifest."""
    from vestige_fingerprint.weights import ship as ship_artifact

    try:
        described = json.loads(record.read_text())
    except ValueError:
        raise InvalidInputError(f"{record} is not the JSON `vestige train ... --json` prints") from None
    entry = ship_artifact(artifact, name, described, make_default=make_default)
    click.echo(f"shipped {entry['file']} ({entry['size']} bytes) as {name}")
