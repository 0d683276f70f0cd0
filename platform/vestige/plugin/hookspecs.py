"""Vestige's plugin hooks: one typed function and one docstring per hook.

Hooks are called with keyword arguments only, and an implementation may take
any subset of a hook's arguments, so a hook can gain arguments without
breaking plugins. Every hook here is documented in ``docs/plugins.md`` (a test
keeps the two in step). Built-in plugins implement these exactly as a
third-party plugin does.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    import click
    import flask

    from vestige.plugin import Detector, GeneratorSpec, NetworkSpec, Perturbation, ReportSection

PROJECT = "vestige"

hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


@hookspec
def vestige_detectors() -> list[Detector]:
    """Return the detectors this plugin provides.

    Each is an instance of :class:`vestige.plugin.Detector`. Construction must
    be cheap: load weights in ``Detector.load``, which a worker calls once per
    process after forking.
    """


@hookspec
def vestige_generators() -> list[GeneratorSpec]:
    """Return the generative models the lab holds, for verification by inversion.

    Each is a :class:`vestige.plugin.GeneratorSpec`: how to build the torch
    module, its input specification, and an encoder where the model has one.
    """


@hookspec
def vestige_networks() -> list[NetworkSpec]:
    """Return trained networks this plugin lends to other plugins by name.

    Each is a :class:`vestige.plugin.NetworkSpec`; another plugin gets the
    module with :func:`vestige.plugin.services.load_network` instead of
    importing this plugin.
    """


@hookspec
def vestige_perturbations() -> list[Perturbation]:
    """Return image perturbation operations (JPEG, resize, crop, ...).

    Each is a :class:`vestige.plugin.Perturbation`; its name and parameters are
    what perturbation history records.
    """


@hookspec
def vestige_report_sections(case: Any, verdicts: list[Any]) -> list[ReportSection]:
    """Return extra sections for a case report.

    ``case`` is the case being reported and ``verdicts`` its verdicts; return
    :class:`vestige.plugin.ReportSection` objects, or an empty list.
    """


@hookspec
def vestige_commands(cli: click.Group) -> None:
    """Add commands to the ``vestige`` command line.

    ``cli`` is the top-level click group: call ``cli.add_command(...)`` or
    decorate functions with ``@cli.command()``.
    """


@hookspec
def vestige_blueprints() -> list[flask.Blueprint]:
    """Return Flask blueprints to mount in the web app."""
