"""The click group, its shared state, and output helpers."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from typing import Any

import click

from vestige import __version__
from vestige.core.config import Config, load_config
from vestige.core.errors import InvalidInputError
from vestige.core.plugins import VestigePluginManager, get_plugin_manager
from vestige.core.workspace import Workspace


class State:
    """What commands share: the configuration, and the workspace and plugins opened on first use."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self._workspace: Workspace | None = None
        self._pm: VestigePluginManager | None = None
        #: How many times ``-v`` was given; long-running commands (worker, serve) log at the configured
        #: level without it, the others log warnings only.
        self.verbosity = 0

    def service_log_level(self) -> str:
        """The level a long-running command logs at: ``-v``/``-vv`` if given, else ``[logging] level``."""
        from vestige.core.logs import verbosity_level

        return verbosity_level(self.verbosity, self.config.logging.level)

    def configure_logging(self, level: str) -> None:
        from vestige.core.logs import configure_logging

        configure_logging(level, self.config.logging.format)

    @classmethod
    def from_environment(cls) -> State:
        return cls(load_config())

    @property
    def workspace(self) -> Workspace:
        if self._workspace is None:
            self._workspace = Workspace.open(self.config)
        return self._workspace

    @property
    def pm(self) -> VestigePluginManager:
        if self._pm is None:
            self._pm = get_plugin_manager(self.config.plugins.allow)
        return self._pm

    def actor(self, given: str | None) -> str:
        """Who the custody log names: ``--by``, else ``VESTIGE_ACTOR``, else ``[vestige] default_actor``.

        Never the operating-system user: on a shared or automated host that is
        "root" or a service account, which names no person.
        """
        for candidate in (given, os.environ.get("VESTIGE_ACTOR"), self.config.vestige.default_actor):
            if candidate and candidate.strip():
                return candidate.strip()
        raise InvalidInputError("who is acting? Give --by NAME or set VESTIGE_ACTOR; for automation, set "
                                "[vestige] default_actor in the configuration (VESTIGE_VESTIGE__DEFAULT_ACTOR)")

    def add_plugin_commands(self, group: click.Group) -> None:
        self.pm.hook.vestige_commands(cli=group)


pass_state = click.make_pass_decorator(State)




def echo_json(value: Any) -> None:
    click.echo(json.dumps(value, indent=2, sort_keys=False, default=str, ensure_ascii=False))


def echo_table(rows: Sequence[Sequence[Any]], headers: Sequence[str]) -> None:
    """A plain aligned table; ``-`` for missing values."""
    cells = [[("-" if v is None else str(v)) for v in row] for row in rows]
    widths = [max([len(h)] + [len(r[i]) for r in cells]) for i, h in enumerate(headers)]
    click.echo("  ".join(h.ljust(w) for h, w in zip(headers, widths)).rstrip())
    for row in cells:
        click.echo("  ".join(v.ljust(w) for v, w in zip(row, widths)).rstrip())


json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="vestige")
@click.option("-v", "--verbose", count=True,
              help="Log what happens on stderr: -v for INFO, -vv for DEBUG (format: [logging] format).")
@pass_state
def cli(state: State, verbose: int) -> None:
    """Vestige: where did this image come from?"""
    state.verbosity = verbose
    state.configure_logging("WARNING" if verbose == 0 else state.service_log_level())
