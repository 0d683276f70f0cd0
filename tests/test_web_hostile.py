"""Hostile uploads through the web app (issue 21): names, duplicate zip members."""

from __future__ import annotations

import io
import warnings
import zipfile

import sqlalchemy as sa
from conftest import encode, photo
from test_web import Browser, app, browser, client, custody_actions, lab  # noqa: F401  (shared fixtures)

from vestige.db.models import ImageOccurrence


def _upload_json(browser, files):
    response = browser("alice").post("/cases/CASE-A/upload", {"files": files}, content_type="multipart/form-data",
                                     headers={"Accept": "application/json"})
    assert response.status_code == 200, response.get_data(as_text=True)
    return response.get_json()


def test_an_uploaded_zip_with_two_members_of_one_name_keeps_both(browser, workspace):
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with zipfile.ZipFile(buf, "w") as archive:
            archive.writestr("same.jpg", encode(photo(31)))
            archive.writestr("same.jpg", encode(photo(32)))
    summary = _upload_json(browser, [(io.BytesIO(buf.getvalue()), "twins.zip")])
    assert len(summary["ingested"]) == 2 and summary["duplicates"] == [] and summary["rejected"] == []
    with workspace.db.session() as session:
        rows = session.execute(sa.select(ImageOccurrence.container, ImageOccurrence.member_index)
                               .where(ImageOccurrence.original_filename == "same.jpg")).all()
    assert sorted(rows) == [("twins.zip", 0), ("twins.zip", 1)]
