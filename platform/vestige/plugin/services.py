"""What a plugin may call of the running platform: the plugin manager, detectors run on images the way an
analysis runs them, and registered perturbations applied as perturbation history records them.

Use these rather than another plugin's modules: a plugin that needs another
plugin's perturbations or generators asks the plugin manager for what the
hooks registered, by name.
"""

from __future__ import annotations

from typing import Any

from vestige.analysis.detect import make_input, run_detector
from vestige.core.errors import NotFoundError
from vestige.core.plugins import VestigePluginManager, format_exception_line, get_detectors, get_plugin_manager
from vestige.evidence.derivatives import apply_chain, get_perturbations
from vestige.plugin import NetworkSpec

__all__ = ["VestigePluginManager", "apply_chain", "format_exception_line", "get_detectors", "get_networks",
           "get_perturbations", "get_plugin_manager", "load_network", "make_input", "run_detector"]


def get_networks(pm: VestigePluginManager | None = None) -> dict[str, NetworkSpec]:
    """Every network the plugins lend (``vestige_networks``), by name; the first registered wins."""
    found: dict[str, NetworkSpec] = {}
    for provided in (pm if pm is not None else get_plugin_manager()).hook.vestige_networks():
        for spec in provided or []:
            found.setdefault(spec.name, spec)
    return found


def load_network(name: str, pm: VestigePluginManager | None = None) -> Any:
    """The torch module of the lent network ``name``, built with its verified weights."""
    networks = get_networks(pm)
    if name not in networks:
        raise NotFoundError(f"no plugin lends a network named {name!r} (lent: {', '.join(sorted(networks)) or 'none'}); "
                            "check `vestige plugins`")
    return networks[name].build()
