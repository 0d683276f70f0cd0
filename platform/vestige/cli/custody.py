"""``vestige custody ...``: the chain of custody of a case."""

from __future__ import annotations

import json
import sys

import click

from vestige.analysis.serialise import custody_event_dict
from vestige.cli.app import State, cli, echo_json, echo_table, json_option, pass_state
from vestige.evidence.cases import get_case, list_cases
from vestige.evidence.checkpoints import append_checkpoints, check_against_checkpoint
from vestige.evidence.custody import list_events, verify_chain


@cli.group("custody")
def custody_group() -> None:
    """The hash-chained log of everything done to a case."""


@custody_group.command("verify")
@click.argument("reference")
@json_option
@pass_state
def custody_verify(state: State, reference: str, as_json: bool) -> None:
    """Check every event of the chain, then the chain against its latest signed checkpoint; exit 1 naming what broke."""
    with state.workspace.db.session() as session:
        case = get_case(session, reference)
        report = verify_chain(session, case)
        checkpoint = check_against_checkpoint(state.config, case.reference, list_events(session, case)) \
            if report.intact else None
    intact = report.intact and checkpoint is not None and checkpoint.ok
    if as_json:
        echo_json({"case": reference, "intact": intact, "events": report.events,
                   "problem": report.problem if not report.intact else (None if intact else checkpoint.sentence),
                   "checkpoint": checkpoint.sentence if checkpoint else None})
    elif not report.intact:
        click.echo(report.sentence(), err=True)
    elif not intact:
        click.echo(f"chain broken: {checkpoint.sentence}", err=True)
    else:
        click.echo(f"{report.sentence()}; {checkpoint.sentence}")
    if not intact:
        sys.exit(1)


@custody_group.command("checkpoint")
@click.argument("reference", required=False)
@pass_state
def custody_checkpoint(state: State, reference: str | None) -> None:
    """Sign the head of case REFERENCE's chain (every case's without it) with the lab key and append it to
    <data_dir>/custody-checkpoints.jsonl, outside the database. Run it on a schedule (cron, a systemd timer)."""
    with state.workspace.db.session() as session:
        cases = [get_case(session, reference)] if reference else [case for case, _ in list_cases(session)]
        heads = [(case.reference, case.custody_count, case.custody_head) for case in cases]
    for line in append_checkpoints(state.config, heads):
        click.echo(f"checkpoint of {line['case']}: event {line['count']}, head {line['head'][:12]}…, "
                   f"signed by key {line['key'][:12]}…")


@custody_group.command("log")
@click.argument("reference")
@json_option
@pass_state
def custody_log(state: State, reference: str, as_json: bool) -> None:
    """Print the events of a case in order."""
    with state.workspace.db.session() as session:
        events = list_events(session, get_case(session, reference))
        rows = [custody_event_dict(e) for e in events]
    if as_json:
        echo_json(rows)
    else:
        echo_table([[r["seq"], r["at"], r["actor"], r["action"], json.dumps(r["details"], ensure_ascii=False)[:80]] for r in rows],
                   ["seq", "at", "actor", "action", "details"])
