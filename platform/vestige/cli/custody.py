"""``vestige custody ...``: the chain of custody of a case."""

from __future__ import annotations

import json
import sys

import click

from vestige.cases import get_case
from vestige.cli.app import State, cli, echo_json, echo_table, json_option, pass_state
from vestige.custody import list_events, verify_chain


@cli.group("custody")
def custody_group() -> None:
    """The hash-chained log of everything done to a case."""


@custody_group.command("verify")
@click.argument("reference")
@json_option
@pass_state
def custody_verify(state: State, reference: str, as_json: bool) -> None:
    """Check every event of the chain; exit 1 naming the first broken event."""
    with state.workspace.db.session() as session:
        report = verify_chain(session, get_case(session, reference))
    if as_json:
        echo_json({"case": reference, "intact": report.intact, "events": report.events, "problem": report.problem})
    else:
        click.echo(report.sentence(), err=not report.intact)
    if not report.intact:
        sys.exit(1)


@custody_group.command("log")
@click.argument("reference")
@json_option
@pass_state
def custody_log(state: State, reference: str, as_json: bool) -> None:
    """Print the events of a case in order."""
    with state.workspace.db.session() as session:
        events = list_events(session, get_case(session, reference))
        rows = [
            {"seq": e.seq, "at": e.at, "actor": e.actor, "action": e.action, "details": json.loads(e.details), "hash": e.hash}
            for e in events
        ]
    if as_json:
        echo_json(rows)
    else:
        echo_table([[r["seq"], r["at"], r["actor"], r["action"], json.dumps(r["details"], ensure_ascii=False)[:80]] for r in rows],
                   ["seq", "at", "actor", "action", "details"])
