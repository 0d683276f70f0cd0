"""Hostile uploads through the web app (issue 21): names, duplicate zip members."""

from __future__ import annotations

import io
import warnings
import zipfile

import sqlalchemy as sa
from conftest import encode, photo
from test_web import Browser, app, browser, client, custody_actions, lab  # noqa: F401  (shared fixtures)

from vestige.db.models import Case, Image, ImageOccurrence


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


HOSTILE_NAMES = {
    "nul\x00byte.jpg": "nul\\x00byte.jpg",
    "invoice\u202egpj.exe": "invoice\\u202egpj.exe",
    "bell\x07and\x1b[31mred.jpg": "bell\\x07and\\x1b[31mred.jpg",
}


def test_control_and_bidi_characters_in_upload_names_are_escaped_and_the_bytes_kept(browser, workspace):
    files = [(io.BytesIO(encode(photo(40 + i))), name) for i, name in enumerate(HOSTILE_NAMES)]
    summary = _upload_json(browser, files)
    assert len(summary["ingested"]) == 3 and summary["rejected"] == []
    assert sorted(row["file"] for row in summary["ingested"]) == sorted(HOSTILE_NAMES.values())
    with workspace.db.session() as session:
        rows = session.execute(sa.select(ImageOccurrence.image_id, ImageOccurrence.original_filename,
                                         ImageOccurrence.original_filename_bytes)
                               .where(ImageOccurrence.original_filename.in_(list(HOSTILE_NAMES.values())))).all()
    kept = {shown: raw for _, shown, raw in rows}
    assert kept == {shown: given.encode() for given, shown in HOSTILE_NAMES.items()}
    for image_id, shown, _ in rows:
        page = browser("alice").get(f"/images/{image_id}").get_data(as_text=True)
        assert "\u202e" not in page and "\x00" not in page and "\x1b" not in page
        assert shown.replace("\\", "\\") in page
    assert ("alice", "image.ingested") in custody_actions(workspace, "CASE-A")


def test_a_nul_byte_in_the_source_field_is_escaped_not_a_server_error(browser, workspace):
    response = browser("alice").post("/cases/CASE-A/upload", {"files": [(io.BytesIO(encode(photo(50))), "s.jpg")],
                                                              "source": "forum\x00thread"},
                                     content_type="multipart/form-data", headers={"Accept": "application/json"})
    assert response.status_code == 200
    with workspace.db.session() as session:
        source = session.scalar(sa.select(ImageOccurrence.source).where(ImageOccurrence.original_filename == "s.jpg"))
    assert source == "forum\\x00thread"


def test_the_custody_page_shows_the_last_store_check(browser, workspace):
    import os

    from vestige.evidence.storeverify import verify_store

    page = browser("alice").get("/cases/CASE-A/custody").get_data(as_text=True)
    assert "The evidence store has not been checked for this case yet" in page
    verify_store(workspace, "CASE-A", actor="tester")
    page = browser("alice").get("/cases/CASE-A/custody").get_data(as_text=True)
    assert "The evidence store was last checked" in page and "by tester: all 2 stored files match their hashes" in page
    with workspace.db.session() as session:
        sha = session.scalars(sa.select(Image.blob_sha256).join(Case, Case.id == Image.case_id)
                              .where(Case.reference == "CASE-A").order_by(Image.id)).first()
    path = workspace.config.store_path / sha[:2] / sha[2:4] / sha
    os.chmod(path, 0o644)
    path.write_bytes(path.read_bytes() + b"tampered")
    verify_store(workspace, "CASE-A", actor="tester")
    page = browser("alice").get("/cases/CASE-A/custody").get_data(as_text=True)
    assert "1 of 2 stored files missing or corrupted" in page
    state = browser("alice").client.get("/api/v1/cases/CASE-A/custody")  # no token: the API refuses
    assert state.status_code == 401
