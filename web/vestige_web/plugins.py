"""The plugins page: installed plugins, their detectors, and the model artifacts on record."""

from __future__ import annotations

import sqlalchemy as sa
from flask import Blueprint, render_template

from vestige.core.plugins import plugin_infos
from vestige.db.models import ModelArtifact
from vestige_web.auth import require_login
from vestige_web.extensions import vestige

bp = Blueprint("plugins", __name__)
bp.before_request(require_login)


def model_artifacts() -> list[ModelArtifact]:
    query = sa.select(ModelArtifact).order_by(ModelArtifact.detector, ModelArtifact.created_at.desc())
    return list(vestige.session.execute(query).scalars())


@bp.get("/plugins")
def index() -> str:
    return render_template("plugins.html", plugins=plugin_infos(vestige.pm), artifacts=model_artifacts())
