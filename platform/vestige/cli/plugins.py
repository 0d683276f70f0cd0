"""``vestige plugins``: what is installed and loaded."""

from __future__ import annotations

import click

from vestige.cli.app import State, cli, echo_json, echo_table, json_option, pass_state
from vestige.core.plugins import plugin_infos


@cli.command()
@json_option
@pass_state
def plugins(state: State, as_json: bool) -> None:
    """List plugins with their version, hooks and detectors (and any that failed to load)."""
    infos = plugin_infos(state.pm)
    if as_json:
        echo_json([info.to_dict() for info in infos])
        return
    echo_table(
        [[i.name, i.version, ", ".join(h.removeprefix("vestige_") for h in i.hooks) or "-",
          ", ".join(d["name"] for d in i.detectors) or "-", i.error or "ok"] for i in infos],
        ["plugin", "version", "hooks", "detectors", "status"],
    )
    for info in infos:
        for d in info.detectors:
            weights = (d["model_sha256"] or "")[:16] or "no weights"
            click.echo(f"  {d['name']} {d['version']} ({d['kind']}, {d['device']}; {weights}): {d['description']}")
