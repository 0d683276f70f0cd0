"""``vestige serve``, ``vestige user ...``, ``vestige token ...`` and ``vestige case member ...``."""

from __future__ import annotations

from pathlib import Path

import click

from vestige.cli.app import State, cli, echo_json, echo_table, json_option, pass_state
from vestige.cli.cases import by_option, case_group
from vestige.core.errors import InvalidInputError
from vestige.db.models import CASE_ROLES, ROLES
from vestige.evidence.cases import get_case


@cli.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=8000, show_default=True, type=click.IntRange(0, 65535))
@pass_state
def serve(state: State, host: str, port: int) -> None:
    """Run the web app with werkzeug's threaded server (one machine; production: see docs/web.md)."""
    from werkzeug.serving import run_simple

    from vestige_web import create_app

    state.configure_logging(state.service_log_level())
    app = create_app({"VESTIGE": state.config})
    if host not in ("127.0.0.1", "localhost", "::1"):
        click.echo("note: session cookies are Secure, so browsers send them only over HTTPS (or to localhost); "
                   "put an HTTPS proxy in front (docs/web.md)", err=True)
    click.echo(f"Vestige on http://{host}:{port}/ (data in {state.config.data_dir}); Ctrl-C stops it", err=True)
    run_simple(host, port, app, threaded=True, use_reloader=False, use_debugger=False)


@cli.group("user")
def user_group() -> None:
    """Accounts of the web app and the API."""


def _read_password(password_file: Path | None) -> str:
    if password_file is None:
        return click.prompt("Password", hide_input=True, confirmation_prompt=True)
    try:
        text = click.get_text_stream("stdin").read() if str(password_file) == "-" else password_file.read_text()
    except OSError as exc:
        raise InvalidInputError(f"cannot read the password file {password_file}: {exc.strerror}") from None
    lines = text.splitlines()
    return lines[0] if lines else ""


@user_group.command("add")
@click.argument("username")
@click.option("--role", type=click.Choice(ROLES), required=True, help="admin sees every case; viewer only reads.")
@click.option("--password-file", type=click.Path(path_type=Path), default=None,
              help="Read the password from the first line of this file ('-': standard input) instead of prompting.")
@pass_state
def user_add(state: State, username: str, role: str, password_file: Path | None) -> None:
    """Create a user who logs in with a password."""
    from vestige.access.accounts import add_user

    password = _read_password(password_file)
    with state.workspace.db.session() as session:
        user = add_user(session, username=username, role=role, password=password)
        click.echo(f"user {user.username} added ({user.role})")


@user_group.command("password")
@click.argument("username")
@click.option("--password-file", type=click.Path(path_type=Path), default=None,
              help="Read the new password from the first line of this file ('-': standard input) instead of prompting.")
@pass_state
def user_password(state: State, username: str, password_file: Path | None) -> None:
    """Set USERNAME's password; every web session of theirs ends (API tokens are kept: `vestige token revoke`)."""
    from vestige.access.accounts import get_user
    from vestige.access.websessions import change_password

    password = _read_password(password_file)
    with state.workspace.db.session() as session:
        ended = change_password(session, get_user(session, username), password)
    click.echo(f"password of {username} changed; {ended} session(s) ended")


@user_group.command("remove")
@click.argument("username")
@pass_state
def user_remove(state: State, username: str) -> None:
    """Remove USERNAME: they can no longer log in, their sessions end and their tokens are revoked.

    The account is kept, inactive, because the custody log names its actions."""
    from vestige.access.accounts import get_user
    from vestige.access.websessions import remove_user

    with state.workspace.db.session() as session:
        sessions, tokens = remove_user(session, get_user(session, username))
    click.echo(f"user {username} removed: {sessions} session(s) ended, {tokens} token(s) revoked")


@user_group.command("list")
@json_option
@pass_state
def user_list(state: State, as_json: bool) -> None:
    """List users and their roles."""
    from vestige.access.accounts import list_users

    with state.workspace.db.session() as session:
        rows = [{"username": u.username, "role": u.role, "active": u.is_active, "created_at": u.created_at.isoformat(),
                 "cases": len(u.memberships)} for u in list_users(session)]
    if as_json:
        echo_json(rows)
    else:
        echo_table([[r["username"], r["role"], "yes" if r["active"] else "no", r["cases"]] for r in rows],
                   ["user", "role", "active", "cases"])


@cli.group("token")
def token_group() -> None:
    """API tokens (``Authorization: Bearer TOKEN``)."""


@token_group.command("create")
@click.argument("username")
@click.option("--name", default="", help="What the token is for, e.g. the script that uses it.")
@pass_state
def token_create(state: State, username: str, name: str) -> None:
    """Print a new API token for USERNAME. It is shown once; only its hash is stored."""
    from vestige.access.accounts import create_token, get_user

    with state.workspace.db.session() as session:
        token = create_token(session, get_user(session, username), name=name)
    click.echo(token)


@token_group.command("revoke")
@click.argument("username")
@pass_state
def token_revoke(state: State, username: str) -> None:
    """Revoke every token of USERNAME."""
    from vestige.access.accounts import get_user, revoke_tokens

    with state.workspace.db.session() as session:
        count = revoke_tokens(session, get_user(session, username))
    click.echo(f"{count} token(s) of {username} revoked")


@case_group.group("member")
def member_group() -> None:
    """Who works on a case: only members (and admins) see it."""


@member_group.command("add")
@click.argument("reference")
@click.argument("username")
@click.option("--role", type=click.Choice(CASE_ROLES), default="examiner", show_default=True)
@by_option
@pass_state
def member_add(state: State, reference: str, username: str, role: str, actor: str | None) -> None:
    """Give USERNAME a role on case REFERENCE (a custody event)."""
    from vestige.access.accounts import add_member, get_user

    with state.workspace.db.session() as session:
        add_member(session, get_case(session, reference), get_user(session, username), role=role,
                   actor=state.actor(actor))
    click.echo(f"{username} is {role} on case {reference}")


@member_group.command("remove")
@click.argument("reference")
@click.argument("username")
@by_option
@pass_state
def member_remove(state: State, reference: str, username: str, actor: str | None) -> None:
    """Take USERNAME off case REFERENCE (a custody event)."""
    from vestige.access.accounts import get_user, remove_member

    with state.workspace.db.session() as session:
        remove_member(session, get_case(session, reference), get_user(session, username), actor=state.actor(actor))
    click.echo(f"{username} no longer works on case {reference}")


@member_group.command("list")
@click.argument("reference")
@json_option
@pass_state
def member_list(state: State, reference: str, as_json: bool) -> None:
    """List the members of case REFERENCE."""
    from vestige.access.accounts import case_members

    with state.workspace.db.session() as session:
        rows = case_members(session, get_case(session, reference))
    if as_json:
        echo_json([{"user": name, "role": role} for name, role in rows])
    else:
        echo_table(rows, ["user", "role"])
