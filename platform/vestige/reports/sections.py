"""Extra report sections from plugins (the ``vestige_report_sections`` hook), each plugin isolated."""

from __future__ import annotations

import logging
from typing import Any

from vestige.core.plugins import VestigePluginManager, format_exception_line
from vestige.plugin import ReportSection

log = logging.getLogger(__name__)


def plugin_sections(pm: VestigePluginManager, *, case: Any, verdicts: list[Any]) -> list[dict[str, Any]]:
    """Every plugin's sections, in plugin order; a plugin that raises gives a section saying so."""
    sections = []
    arguments = {"case": case, "verdicts": verdicts}
    for impl in reversed(pm.hook.vestige_report_sections.get_hookimpls()):
        plugin = str(pm.get_name(impl.plugin))
        try:
            provided = impl.function(**{name: arguments[name] for name in impl.argnames}) or []
            for section in provided:
                if not isinstance(section, ReportSection):
                    raise TypeError(f"returned {type(section).__name__}, not a vestige.plugin.ReportSection")
                sections.append({"plugin": plugin, "title": section.title, "html": section.html,
                                 "data": dict(section.data), "error": None})
        except Exception as exc:  # one plugin's failure must not lose the report
            log.warning("plugin %s: its report section failed; the report says so", plugin, exc_info=True)
            sections.append({"plugin": plugin, "title": f"{plugin}: section unavailable", "html": "",
                             "data": {}, "error": format_exception_line(exc)})
    return sections
