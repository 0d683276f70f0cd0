"""``vestige case ...``: open, list, show, close and reopen cases."""

from __future__ import annotations

import click

from vestige.analysis.serialise import case_dict
from vestige.cli.app import State, cli, echo_json, echo_table, json_option, pass_state
from vestige.evidence.cases import create_case, evidence_count, get_case, list_cases, set_case_status

by_option = click.option("--by", "actor", default=None, help="Who is acting (default: VESTIGE_ACTOR, else [vestige] default_actor).")


@cli.group("case")
def case_group() -> None:
    """Cases: the unit of work of the lab."""


@case_group.command("new")
@click.option("--ref", "reference", required=True, help="The lab's reference, e.g. LAB-2026-0042.")
@click.option("--title", required=True)
@by_option
@json_option
@pass_state
def case_new(state: State, reference: str, title: str, actor: str | None, as_json: bool) -> None:
    """Open a new case."""
    with state.workspace.db.session() as session:
        case = create_case(session, reference=reference, title=title, actor=state.actor(actor))
        data = case_dict(case, 0)
    echo_json(data) if as_json else click.echo(f"case {data['reference']} opened: {data['title']}")


@case_group.command("list")
@click.option("--search", default=None, help="Match reference or title.")
@json_option
@pass_state
def case_list(state: State, search: str | None, as_json: bool) -> None:
    """List cases, newest first."""
    with state.workspace.db.session() as session:
        rows = [case_dict(case, n) for case, n in list_cases(session, search=search)]
    if as_json:
        echo_json(rows)
    else:
        echo_table([[r["reference"], r["status"], r["images"], r["created_at"][:19], r["title"]] for r in rows],
                   ["reference", "status", "images", "created", "title"])


@case_group.command("show")
@click.argument("reference")
@json_option
@pass_state
def case_show(state: State, reference: str, as_json: bool) -> None:
    """Show one case."""
    with state.workspace.db.session() as session:
        case = get_case(session, reference)
        data = case_dict(case, evidence_count(case))
    if as_json:
        echo_json(data)
    else:
        for key, value in data.items():
            click.echo(f"{key:15} {value}")


def _set_status(state: State, reference: str, status: str, actor: str | None) -> None:
    with state.workspace.db.session() as session:
        set_case_status(session, get_case(session, reference), status, actor=state.actor(actor))
    click.echo(f"case {reference} is {status}")


@case_group.command("close")
@click.argument("reference")
@by_option
@pass_state
def case_close(state: State, reference: str, actor: str | None) -> None:
    """Close a case: no more evidence can be added."""
    _set_status(state, reference, "closed", actor)


@case_group.command("reopen")
@click.argument("reference")
@by_option
@pass_state
def case_reopen(state: State, reference: str, actor: str | None) -> None:
    """Reopen a closed case."""
    _set_status(state, reference, "open", actor)
