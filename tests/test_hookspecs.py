"""Every hook is documented with its exact signature, and every hook is exercised."""

from __future__ import annotations

import inspect
import re
import types
from pathlib import Path

import pytest

from vestige.core.plugins import get_plugin_manager, register_plugin
from vestige.plugin import hookspecs

ROOT = Path(__file__).resolve().parents[1]
HOOKS = sorted(name for name, fn in inspect.getmembers(hookspecs, inspect.isfunction) if name.startswith("vestige_"))
DOCUMENTED = re.findall(r"^### `(vestige_\w+)\(([^)]*)\)`$", (ROOT / "docs" / "plugins.md").read_text(), re.M)


def test_documentation_lists_exactly_the_hooks():
    assert sorted(name for name, _ in DOCUMENTED) == HOOKS


@pytest.mark.parametrize(("name", "arguments"), DOCUMENTED)
def test_documented_signature_matches_the_spec(name, arguments):
    spec = getattr(hookspecs, name)
    documented = [a.strip() for a in arguments.split(",") if a.strip()]
    assert documented == list(inspect.signature(spec).parameters)
    assert spec.__doc__ and spec.__doc__.strip()


@pytest.mark.parametrize("name", HOOKS)
def test_each_hook_is_called_through_the_manager(name):
    """A plugin implementing the hook with its full signature gets called and its result returned."""
    spec = getattr(hookspecs, name)
    params = list(inspect.signature(spec).parameters)
    received: dict = {}
    # pluggy reads an implementation's argument names from its code, so build a real function.
    namespace: dict = {"received": received}
    exec(
        f"def implementation({', '.join(params)}):\n"
        f"    received.update({{{', '.join(f'{p!r}: {p}' for p in params)}}})\n"
        f"    return ['from-test-plugin']\n",
        namespace,
    )
    implementation = namespace["implementation"]
    plugin = types.ModuleType(f"plugin_for_{name}")
    setattr(plugin, name, hookspecs.hookimpl(specname=name)(implementation))
    pm = get_plugin_manager(allow=["metadata"])
    register_plugin(pm, plugin, name="under-test")
    arguments = {p: f"value-of-{p}" for p in params}
    results = getattr(pm.hook, name)(**arguments)
    assert ["from-test-plugin"] in results
    assert received == arguments
