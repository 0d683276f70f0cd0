"""``vestige ingest``, ``vestige images`` and ``vestige image show``."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from vestige.cli.app import State, cli, echo_json, echo_table, json_option, pass_state
from vestige.evidence.cases import get_case
from vestige.evidence.catalog import get_image, image_record, list_images
from vestige.evidence.ingest import Acquisition, Ingester


@cli.command()
@click.argument("reference")
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--source", default="", help="Where the files came from (URL, device, forum thread...).")
@click.option("--by", "actor", default=None, help="Who acquired them (default: VESTIGE_ACTOR, else [vestige] default_actor).")
@json_option
@pass_state
def ingest(state: State, reference: str, paths: tuple[Path, ...], source: str, actor: str | None, as_json: bool) -> None:
    """Take files, folders (recursively) and zip archives into case REFERENCE.

    Exits 1 when any file was rejected; each rejection is one line on stderr.
    """
    workspace = state.workspace
    with workspace.db.session() as session:
        case = get_case(session, reference)
        ingester = Ingester(workspace, session, case, Acquisition(source=source, actor=state.actor(actor)))
        show_bar = sys.stderr.isatty() and not as_json
        if show_bar:
            with click.progressbar(length=1, label="ingesting", file=sys.stderr) as bar:

                def progress(done: int, total: int, name: str) -> None:
                    bar.length = total
                    bar.update(done - bar.pos)

                summary = ingester.ingest_paths(paths, progress)
        else:
            summary = ingester.ingest_paths(paths)
    if as_json:
        echo_json(summary.to_dict())
    else:
        click.echo(summary.sentence())
    for rejection in summary.rejected:
        click.echo(f"rejected: {rejection['reason']}", err=True)
    if summary.rejected:
        sys.exit(1)


@cli.command()
@click.argument("reference")
@json_option
@pass_state
def images(state: State, reference: str, as_json: bool) -> None:
    """List the images of a case with their hashes and duplicate counts."""
    with state.workspace.db.session() as session:
        rows = list_images(session, get_case(session, reference))
    if as_json:
        echo_json(rows)
        return
    echo_table(
        [[r["id"], r["sha256"][:16], r["size"], r["format"], f"{r['width']}x{r['height']}", r["duplicates"],
          r["near_duplicates"], r["filename"]] for r in rows],
        ["id", "sha256", "size", "format", "dimensions", "duplicates", "near-dups", "file"],
    )


@cli.group("image")
def image_group() -> None:
    """One image's record."""


@image_group.command("show")
@click.argument("image_id", type=int)
@json_option
@pass_state
def image_show(state: State, image_id: int, as_json: bool) -> None:
    """Show an image's whole record: metadata, hashes, perturbation history."""
    with state.workspace.db.session() as session:
        record = image_record(session, get_image(session, image_id))
    if as_json:
        echo_json(record)
        return
    for key in ("id", "case", "origin", "sha256", "size", "media_type", "format", "mode", "width", "height",
                "original_filename", "source", "acquired_by", "acquired_at"):
        click.echo(f"{key:18} {record[key]}")
    click.echo("hashes             " + "  ".join(f"{k}={v}" for k, v in record["hashes"].items()))
    click.echo(f"occurrences        {len(record['occurrences'])}")
    for occ in record["occurrences"]:
        where = f"{occ['container']}:{occ['filename']}" if occ["container"] else occ["filename"]
        click.echo(f"  - {where} from {occ['source'] or '-'} by {occ['acquired_by']} at {occ['acquired_at'][:19]}")
    click.echo("perturbation history")
    history = record["perturbations"]
    if not history["history"] and not history["derivatives"]:
        click.echo("  (none known)")
    for step in history["history"]:
        click.echo("  " + _describe(step, "parent", "of"))
    for step in history["derivatives"]:
        click.echo("  " + _describe(step, "image", "has"))
    click.echo("metadata")
    click.echo("  " + json.dumps(record["metadata"], ensure_ascii=False, sort_keys=True)[:2000])


def _describe(step: dict, key: str, verb: str) -> str:
    ops = ", ".join(f"{o['op']}({', '.join(f'{k}={v}' for k, v in o.get('params', {}).items())})" for o in step["operations"])
    related = step[key]
    other = f"image {related['id']} in {related['case']}" if related else ""
    if step["basis"] == "observed":
        relation = "near-duplicate of" if verb == "of" else "near-duplicate"
        return f"observed: {relation} {other} (pHash distance {step['distance']})"
    if step["basis"] == "estimated":
        return f"estimated: {ops}"
    return f"applied: {ops} {'from' if verb == 'of' else 'to make'} {other}".rstrip()
