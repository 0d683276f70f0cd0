"""``vestige perturb``: apply a chain of perturbation operations to an image and keep the result in its case."""

from __future__ import annotations

import click

from vestige.cli.app import State, cli, echo_json, echo_table, json_option, pass_state
from vestige.evidence.catalog import get_image
from vestige.evidence.derivatives import derive_image, describe_chain, get_perturbations, parse_operation


@cli.command()
@click.argument("image_id", type=int, required=False)
@click.option("--op", "ops", multiple=True, metavar="NAME[:KEY=VALUE,...]",
              help="An operation and its parameters, e.g. jpeg:quality=70; repeat for a chain, applied in order.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the operations that draw at random.")
@click.option("--list", "list_ops", is_flag=True, help="List the operations, their parameters and defaults.")
@click.option("--by", "actor", default=None, help="Who is acting (default: VESTIGE_ACTOR, else [vestige] default_actor).")
@json_option
@pass_state
def perturb(state: State, image_id: int | None, ops: tuple[str, ...], seed: int, list_ops: bool, actor: str | None,
            as_json: bool) -> None:
    """Apply operations to image IMAGE_ID and add the result to its case as a derived image.

    The derived image's history records the whole chain, every parameter
    included, as one applied perturbation; the evidence image is not touched.
    The same chain with the same seed gives the same image: asked again, the
    command reports the image it made before.
    """
    available = get_perturbations(state.pm)
    if list_ops:
        _list(available, as_json)
        return
    if image_id is None or not ops:
        raise click.UsageError("give an IMAGE_ID and at least one --op (or --list to see the operations)")
    operations = [parse_operation(text, available) for text in ops]
    workspace = state.workspace
    with workspace.db.session() as session:
        parent = get_image(session, image_id)
        made = derive_image(workspace, session, parent, operations, available, seed=seed, actor=state.actor(actor))
        session.commit()
        image = made.image
        result = {"image_id": image.id, "sha256": image.blob_sha256, "parent_id": parent.id,
                  "case": parent.case.reference, "operations": operations, "seed": seed, "created": made.created,
                  "format": image.format, "width": image.width, "height": image.height}
    if as_json:
        echo_json(result)
        return
    verb = "made" if made.created else "already made"
    click.echo(f"image {result['image_id']} ({verb}) from image {parent.id} in {result['case']} by "
               f"{describe_chain(operations)}, seed {seed}")
    click.echo(f"sha256 {result['sha256']}")


def _list(available: dict, as_json: bool) -> None:
    rows = [{"name": name, "parameters": dict(op.parameters), "description": op.description}
            for name, op in sorted(available.items())]
    if as_json:
        echo_json(rows)
        return
    echo_table([[r["name"], ",".join(f"{k}={v}" for k, v in r["parameters"].items()), r["description"]] for r in rows],
               ["operation", "parameters (defaults)", "description"])
