"""Helpers for the commands a plugin adds through the ``vestige_commands`` hook.

A command receives the CLI's :class:`State` (configuration, workspace, plugin
manager) with :data:`pass_state`, prints with :func:`echo_json` or
:func:`echo_table`, and finds a registered model artifact with
:func:`optional_registry` and :func:`choose`. Errors a user can cause are
raised as :class:`vestige.plugin.InvalidInputError` (or another
:class:`vestige.plugin.VestigeError`): the CLI prints them as one line.
"""

from __future__ import annotations

from vestige.cli.app import State, echo_json, echo_table, pass_state
from vestige.cli.models import optional_registry
from vestige.core.workspace import Workspace
from vestige.models.artifacts import Registry, choose

__all__ = ["Registry", "State", "Workspace", "choose", "echo_json", "echo_table", "optional_registry", "pass_state"]
