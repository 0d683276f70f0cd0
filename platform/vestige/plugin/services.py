"""What a plugin may call of the running platform: the plugin manager, detectors run on images the way an
analysis runs them, and registered perturbations applied as perturbation history records them.

Use these rather than another plugin's modules: a plugin that needs another
plugin's perturbations or generators asks the plugin manager for what the
hooks registered, by name.
"""

from __future__ import annotations

from vestige.analysis.detect import make_input, run_detector
from vestige.core.plugins import VestigePluginManager, format_exception_line, get_detectors, get_plugin_manager
from vestige.evidence.derivatives import apply_chain, get_perturbations

__all__ = ["VestigePluginManager", "apply_chain", "format_exception_line", "get_detectors", "get_perturbations",
           "get_plugin_manager", "make_input", "run_detector"]
