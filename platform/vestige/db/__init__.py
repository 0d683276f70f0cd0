"""The database: typed models of the whole domain, engines and migrations."""

from vestige.db.engine import Database, make_engine
from vestige.db.models import (
    Analysis,
    AnalysisTask,
    ApiToken,
    Base,
    Blob,
    Case,
    CaseMember,
    CustodyEvent,
    Image,
    ImageOccurrence,
    ModelArtifact,
    Perturbation,
    Report,
    User,
    Verdict,
    WebSession,
    WorkerHeartbeat,
)

__all__ = [
    "Analysis",
    "AnalysisTask",
    "ApiToken",
    "Base",
    "Blob",
    "Case",
    "CaseMember",
    "CustodyEvent",
    "Database",
    "Image",
    "ImageOccurrence",
    "ModelArtifact",
    "Perturbation",
    "Report",
    "User",
    "Verdict",
    "WebSession",
    "WorkerHeartbeat",
    "make_engine",
]
