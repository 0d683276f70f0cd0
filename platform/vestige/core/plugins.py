"""Building the plugin manager and looking up what plugins provide.

Plugins are found through the ``vestige`` entry-point group, built-ins
included. The manager is built by :func:`get_plugin_manager`, never at import
time. A plugin that fails to import is recorded by name and skipped, so one
broken plugin cannot take the others down.
"""

from __future__ import annotations

import logging
import inspect
import traceback
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from importlib.metadata import EntryPoint, entry_points
from types import ModuleType
from typing import Any

import pluggy

from vestige.core.errors import PluginError
from vestige.plugin import DETECTOR_KINDS, Detector, hookspecs

log = logging.getLogger(__name__)

ENTRY_POINT_GROUP = hookspecs.PROJECT


@dataclass(frozen=True)
class PluginLoadError:
    name: str
    error: str


@dataclass
class PluginInfo:
    name: str
    version: str
    hooks: list[str]
    module: str
    distribution: str | None = None
    detectors: list[dict[str, Any]] = field(default_factory=list)
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "version": self.version,
            "hooks": self.hooks,
            "module": self.module,
            "distribution": self.distribution,
            "detectors": self.detectors,
            "error": self.error,
        }


class VestigePluginManager(pluggy.PluginManager):
    """A pluggy manager that also remembers which plugins failed to load, and from where each came."""

    def __init__(self) -> None:
        super().__init__(hookspecs.PROJECT)
        self.load_errors: list[PluginLoadError] = []
        self.origins: dict[str, EntryPoint] = {}


def _vestige_entry_points() -> Iterable[EntryPoint]:
    seen: set[str] = set()
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        if ep.name not in seen:  # the same distribution can be visible twice on sys.path
            seen.add(ep.name)
            yield ep


def get_plugin_manager(allow: Sequence[str] = ()) -> VestigePluginManager:
    """Load the installed plugins (only those in ``allow`` when it is not empty)."""
    pm = VestigePluginManager()
    pm.add_hookspecs(hookspecs)
    available = list(_vestige_entry_points())
    if allow:
        missing = sorted(set(allow) - {ep.name for ep in available})
        if missing:
            installed = ", ".join(sorted(ep.name for ep in available)) or "none"
            raise PluginError(
                f"the plugin allow-list names {', '.join(missing)}, which is not installed; installed plugins: {installed}"
            )
    for ep in available:
        if allow and ep.name not in allow:
            continue
        try:
            plugin = ep.load()
        except Exception as exc:  # a broken plugin is reported, not fatal
            log.warning("plugin %s cannot be loaded", ep.name, exc_info=True)
            pm.load_errors.append(PluginLoadError(ep.name, f"{type(exc).__name__}: {exc}"))
            continue
        register_plugin(pm, plugin, name=ep.name)
        pm.origins[ep.name] = ep
    pm.check_pending()
    return pm


def register_plugin(pm: VestigePluginManager, plugin: ModuleType | object, *, name: str) -> None:
    """Register ``plugin`` under ``name``; a misspelt hook fails here, naming it."""
    try:
        pm.register(plugin, name=name)
        pm.check_pending()
    except (pluggy.PluginValidationError, ValueError) as exc:
        pm.unregister(name=name) if pm.has_plugin(name) else None
        raise PluginError(f"plugin {name!r} cannot be registered: {exc}") from None


def _plugin_version(plugin: Any, ep: EntryPoint | None) -> tuple[str, str | None]:
    if ep is not None and ep.dist is not None:
        return ep.dist.version, ep.dist.name
    return str(getattr(plugin, "__version__", "unknown")), None


def _detector_row(detector: Detector) -> dict[str, Any]:
    return {
        "name": detector.name,
        "version": detector.version,
        "kind": detector.kind,
        "device": detector.device,
        "labels": list(detector.labels),
        "model_sha256": detector.model_sha256,
        "description": detector.description,
    }


def plugin_infos(pm: VestigePluginManager) -> list[PluginInfo]:
    """What ``vestige plugins`` shows: every plugin, its hooks and detectors, and load failures."""
    infos = []
    for name, plugin in sorted(pm.list_name_plugin(), key=lambda item: item[0]):
        hooks = sorted(caller.name for caller in pm.get_hookcallers(plugin) or [])
        version, dist = _plugin_version(plugin, pm.origins.get(name))
        info = PluginInfo(name=name, version=version, hooks=hooks, module=getattr(plugin, "__name__", repr(plugin)), distribution=dist)
        if "vestige_detectors" in hooks:
            try:
                impl = next(i for i in pm.hook.vestige_detectors.get_hookimpls() if i.plugin is plugin)
                info.detectors = [_detector_row(d) for d in impl.function() or []]
            except Exception as exc:
                log.warning("plugin %s: vestige_detectors raised", name, exc_info=True)
                info.error = f"vestige_detectors raised {type(exc).__name__}: {exc}"
        infos.append(info)
    for failure in pm.load_errors:
        infos.append(PluginInfo(name=failure.name, version="?", hooks=[], module="?", error=failure.error))
    return infos


def get_detectors(pm: VestigePluginManager) -> dict[str, Detector]:
    """All detectors by name; two plugins offering the same name is an error."""
    detectors: dict[str, Detector] = {}
    for impl in pm.hook.vestige_detectors.get_hookimpls():
        plugin_name = pm.get_name(impl.plugin)
        try:
            provided = impl.function() or []
        except Exception as exc:
            log.warning("plugin %s: vestige_detectors raised; its detectors are left out", plugin_name, exc_info=True)
            pm.load_errors.append(PluginLoadError(str(plugin_name), f"vestige_detectors raised {type(exc).__name__}: {exc}"))
            continue
        for detector in provided:
            _check_detector(detector, plugin_name)
            if detector.name in detectors:
                raise PluginError(f"two plugins provide a detector named {detector.name!r}; uninstall one of them")
            detectors[detector.name] = detector
    return dict(sorted(detectors.items()))


def _check_detector(detector: Any, plugin_name: str | None) -> None:
    if not isinstance(detector, Detector) or inspect.isabstract(type(detector)):
        raise PluginError(f"plugin {plugin_name!r} returned {detector!r}, which is not a vestige.plugin.Detector")
    if getattr(detector, "kind", None) not in DETECTOR_KINDS:
        raise PluginError(
            f"detector {getattr(detector, 'name', '?')!r} of plugin {plugin_name!r} has kind "
            f"{getattr(detector, 'kind', None)!r}; kinds are {', '.join(DETECTOR_KINDS)}"
        )


def select_detectors(pm: VestigePluginManager, names: Sequence[str] = ()) -> list[Detector]:
    """The named detectors (when ``names`` is empty, all that run by default); an unknown name lists the valid ones."""
    detectors = get_detectors(pm)
    if not names:
        chosen = [d for d in detectors.values() if d.runs_by_default]
        if not chosen:
            raise PluginError("no detector is installed; `vestige plugins` lists what is loaded")
        return chosen
    chosen = []
    for name in names:
        if name not in detectors:
            valid = ", ".join(detectors) or "none"
            raise PluginError(f"no detector named {name!r}; installed detectors: {valid}")
        chosen.append(detectors[name])
    return chosen


def format_exception_line(exc: BaseException) -> str:
    """One line that says what a plugin raised, with the innermost frame."""
    frames = traceback.extract_tb(exc.__traceback__)
    where = f" ({frames[-1].filename.rsplit('/', 1)[-1]}:{frames[-1].lineno})" if frames else ""
    return f"{type(exc).__name__}: {exc}{where}".replace("\n", " ")
