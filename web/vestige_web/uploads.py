"""Uploading evidence: files and zip archives from the browser or the API, through the same ``Ingester``.

Each upload is written to a private temporary folder (werkzeug has already
spooled it; the archive checks need a seekable file), then handed to the
ingest pipeline as a candidate named by its original file name, so the image
records say ``IMG_0042.jpg``, not a temporary path. Validation is the
Ingester's: content sniffing, size and pixel limits, archive checks.
"""

from __future__ import annotations

import dataclasses
import tempfile
from collections.abc import Sequence
from pathlib import Path, PurePath

from flask import Blueprint, g, jsonify, render_template, request
from werkzeug.datastructures import FileStorage

from vestige.core.errors import InvalidInputError
from vestige.core.workspace import Workspace
from vestige.evidence.archives import Candidate, expand
from vestige.evidence.ingest import Acquisition, IngestSummary, Ingester
from vestige_web.access import find_case, require_act
from vestige_web.auth import require_login
from vestige_web.extensions import vestige

bp = Blueprint("uploads", __name__)
bp.before_request(require_login)


def upload_name(storage: FileStorage, position: int) -> str:
    """The uploaded file's own name without any folder part, or ``upload-N``."""
    name = PurePath((storage.filename or "").replace("\\", "/")).name.strip()
    return name or f"upload-{position}"


class UploadIngester(Ingester):
    """An :class:`Ingester` fed with uploaded files instead of paths given on a command line."""

    def ingest_uploads(self, uploads: Sequence[FileStorage]) -> IngestSummary:
        if not uploads:
            raise InvalidInputError("Choose at least one file or zip archive to upload.")
        with tempfile.TemporaryDirectory(prefix="upload-", dir=self.workspace.config.data_dir) as folder:
            candidates: list[Candidate] = []
            for position, storage in enumerate(uploads, start=1):
                name = upload_name(storage, position)
                path = Path(folder) / str(position)
                path.mkdir()
                path = path / "file"
                storage.save(path)
                for candidate in expand([path], self.archive_limits):
                    if candidate.member is not None:  # a zip member: the archive is named as uploaded
                        candidate = dataclasses.replace(candidate, container=name)
                    else:
                        error = candidate.error.replace(str(path), name) if candidate.error else None
                        candidate = dataclasses.replace(candidate, name=name, error=error)
                    candidates.append(candidate)
            return self.ingest_candidates(candidates)


def ingest_uploads(workspace: Workspace, case_reference: str, uploads: Sequence[FileStorage], *, source: str) -> IngestSummary:
    """Take the uploaded files into the user's case; rejected files are listed, never stored."""
    session = vestige.session
    case = find_case(session, g.user, case_reference)
    require_act(session, g.user, case, "add evidence to it")
    ingester = UploadIngester(workspace, session, case, Acquisition(source=source, actor=g.user.username))
    return ingester.ingest_uploads(uploads)


@bp.route("/cases/<path:reference>/upload", methods=["GET", "POST"])
def upload(reference: str) -> object:
    case = find_case(vestige.session, g.user, reference)
    if request.method == "GET":
        require_act(vestige.session, g.user, case, "add evidence to it")
        return render_template("upload.html", case=case, summary=None)
    summary = ingest_uploads(vestige.workspace, reference, request.files.getlist("files"),
                             source=request.form.get("source", "").strip()[:1000] or "web upload")
    if request.accept_mimetypes.best == "application/json":
        return jsonify({"ok": True, **summary.to_dict()})
    return render_template("upload.html", case=case, summary=summary)
