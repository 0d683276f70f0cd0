"""What one worker process keeps between tasks: its workspace and its loaded detectors.

Workers fork. Everything here is created lazily in the process that uses it,
so a child never shares its parent's database connections, and weights are
loaded (``Detector.load``) once per process, after the fork. The parent never
touches CUDA: the device is chosen here, in the child, on first use.
"""

from __future__ import annotations

from celery.signals import worker_process_init

from vestige.analysis.detect import device_for
from vestige.core.config import Config
from vestige.core.errors import PluginError
from vestige.core.plugins import get_detectors, get_plugin_manager
from vestige.core.workspace import Workspace
from vestige.models.artifacts import Registry, attach
from vestige.plugin import Detector


class ProcessState:
    """The workspace and the detectors (loaded on first use) of this process."""

    def __init__(self, config: Config, *, workspace: Workspace | None = None) -> None:
        self.config = config
        self._workspace = workspace
        self._available: dict[str, Detector] | None = None
        self._loaded: dict[str, Detector] = {}

    @property
    def workspace(self) -> Workspace:
        if self._workspace is None:
            # `vestige worker` checked the schema before forking; checking
            # again in every child would load Alembic once per process.
            self._workspace = Workspace.open(self.config, check_schema=False)
        return self._workspace

    def detector(self, name: str, model_sha256: str | None = None) -> Detector:
        """The detector ``name``, its weights loaded in this process.

        ``model_sha256`` names the artifact a trainable detector must run with
        (an analysis pins it when requested); without it, the lab's default or
        the plugin's shipped artifact.
        """
        if name in self._loaded and model_sha256 is not None and self._loaded[name].model_sha256 != model_sha256:
            detector = self._loaded[name]
            self._attach(detector, model_sha256)
            detector.load(device_for(detector))
        if name not in self._loaded:
            if self._available is None:
                self._available = get_detectors(get_plugin_manager(self.config.plugins.allow))
            if name not in self._available:
                raise PluginError(f"detector {name!r} is not installed on this worker; install its plugin here")
            detector = self._available[name]
            self._attach(detector, model_sha256)
            detector.load(device_for(detector))
            self._loaded[name] = detector
        return self._loaded[name]

    def _attach(self, detector: Detector, model_sha256: str | None) -> None:
        with self.workspace.db.session() as session:
            attach(detector, Registry(session, self.workspace.store), model_sha256)

    def close(self) -> None:
        if self._workspace is not None:
            self._workspace.close()


_state: ProcessState | None = None


def process_state(config: Config) -> ProcessState:
    """This process's state, created on first use."""
    global _state
    if _state is None or _state.config is not config:
        _state = ProcessState(config)
    return _state


@worker_process_init.connect
def _forget_parent_state(**_: object) -> None:
    # A forked child must not reuse the parent's connections or loaded models.
    global _state
    if _state is not None and _state._workspace is not None:
        _state._workspace.db.engine.dispose(close=False)
    _state = None
