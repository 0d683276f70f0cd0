"""``vestige store verify``: re-hash what the evidence store holds."""

from __future__ import annotations

import sys

import click

from vestige.cli.app import State, cli, echo_json, json_option, pass_state
from vestige.evidence.storeverify import verify_store


@cli.group("store")
def store_group() -> None:
    """The evidence store."""


@store_group.command("verify")
@click.argument("reference", required=False)
@click.option("--by", "actor", default=None, help="Who runs the check (default: VESTIGE_ACTOR, else [vestige] default_actor).")
@json_option
@pass_state
def store_verify(state: State, reference: str | None, actor: str | None, as_json: bool) -> None:
    """Re-hash every blob, derived image, report and picture of case REFERENCE (all cases and model artifacts
    without it); exit 1 naming each one that is missing or corrupted. The check is recorded in each case's custody."""
    check = verify_store(state.workspace, reference, actor=state.actor(actor))
    if as_json:
        echo_json(check.to_dict())
    else:
        for line in check.lines():
            click.echo(line, err=True)
        click.echo(check.sentence(), err=not check.intact)
    if not check.intact:
        sys.exit(1)
