"""The ``vestige`` command line.

Every command is a thin layer: parse, call a service function, print. Errors a
user can cause are printed as one sentence on stderr with a non-zero exit,
never a traceback.
"""

from __future__ import annotations

import sys

import click

from vestige.cli.app import State, cli
from vestige.core.errors import VestigeError

# Importing the command modules attaches their commands to ``cli``.
from vestige.cli import analyze, cases, custody, db, detect, images, perturb, plugins  # noqa: E402,F401
from vestige.cli import keys, reports  # noqa: E402,F401  (keys, report, verify)
from vestige.cli import models  # noqa: E402,F401  (models, train)
from vestige.cli import store  # noqa: E402,F401  (store verify)
from vestige.cli import web  # noqa: E402,F401  (serve, user, token, case member)

__all__ = ["cli", "main"]


def main(argv: list[str] | None = None) -> None:
    """Entry point of the ``vestige`` script."""
    try:
        state = State.from_environment()
        state.add_plugin_commands(cli)
        cli.main(args=argv, obj=state, standalone_mode=False, prog_name="vestige")
    except VestigeError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(1)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        click.echo("interrupted", err=True)
        sys.exit(130)
    except BrokenPipeError:
        sys.exit(0)
