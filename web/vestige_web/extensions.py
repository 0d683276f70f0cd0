"""The Vestige extension: the workspace, plugins and one database session per request.

Created unbound (``vestige = VestigeExtension()``) and bound in the factory,
like any Flask extension.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from flask import Flask, current_app, g
from sqlalchemy.orm import Session

from vestige.core.config import Config, load_config
from vestige.core.plugins import VestigePluginManager, get_plugin_manager
from vestige.core.workspace import Workspace
from vestige.evidence.custody import GroupCommit


@dataclass
class _Bound:
    workspace: Workspace
    pm: VestigePluginManager | None = None
    custody: GroupCommit = field(default_factory=GroupCommit)


class VestigeExtension:
    def __init__(self, app: Flask | None = None) -> None:
        if app is not None:
            self.init_app(app)

    def init_app(self, app: Flask, config: Config | None = None) -> None:
        """Open the workspace named by ``app.config["VESTIGE"]`` (a Config), else the environment's."""
        config = config or app.config.get("VESTIGE") or load_config()
        app.config["VESTIGE"] = config
        app.extensions["vestige"] = _Bound(Workspace.open(config))
        app.teardown_appcontext(self._close_session)

    @property
    def _bound(self) -> _Bound:
        return current_app.extensions["vestige"]

    @property
    def workspace(self) -> Workspace:
        return self._bound.workspace

    @property
    def pm(self) -> VestigePluginManager:
        """The plugin manager, built once per app on first use."""
        bound = self._bound
        if bound.pm is None:
            bound.pm = get_plugin_manager(bound.workspace.config.plugins.allow)
        return bound.pm

    @property
    def custody(self) -> GroupCommit:
        """Where this process's requests append their custody events (several per commit under load)."""
        return self._bound.custody

    @property
    def session(self) -> Session:
        """This request's database session; closed (and rolled back if uncommitted) at teardown."""
        if "db_session" not in g:
            g.db_session = self.workspace.db.sessionmaker()
        return g.db_session

    @staticmethod
    def _close_session(_exc: BaseException | None) -> None:
        session = g.pop("db_session", None)
        if session is not None:
            session.rollback()
            session.close()


vestige = VestigeExtension()
