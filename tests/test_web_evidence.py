"""Evidence through the pages: uploads (files, zips, limits, roles) and the image page and its bytes."""

from __future__ import annotations

import io
import os
import zipfile

import sqlalchemy as sa
from conftest import encode, photo
from test_web import Browser, app, browser, client, custody_actions, lab  # noqa: F401  (shared fixtures)

from vestige.db.models import Image, Perturbation
from vestige_web import create_app


# --- uploads -------------------------------------------------------------------


def _zip(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return buf.getvalue()


def test_upload_files_and_a_zip_with_a_result_per_refused_file(browser, workspace):
    files = [(io.BytesIO(encode(photo(10))), "IMG_0010.jpg"), (io.BytesIO(encode(photo(1))), "again.jpg"),
             (io.BytesIO(b"just some text, not a picture"), "looks-like.jpg"),
             (io.BytesIO(_zip({"x/z1.png": encode(photo(11), "PNG"), "readme.txt": b"hello"})), "seized.zip")]
    page = browser("alice").post("/cases/CASE-A/upload", {"files": files, "source": "forum thread 118"},
                                 content_type="multipart/form-data").text
    assert "2 added, 1 already in the case, 2 refused." in page
    assert "looks-like.jpg is not a supported image type" in page
    assert "seized.zip:readme.txt is not a supported image type" in page
    with workspace.db.session() as session:
        names = set(session.execute(sa.select(Image.original_filename)).scalars())
    assert {"IMG_0010.jpg", "x/z1.png"} <= names  # the uploaded names, never a temporary path
    actions = [a for _, a in custody_actions(workspace, "CASE-A")]
    assert actions.count("image.ingested") == 4 and "image.duplicate" in actions


def test_a_hostile_zip_is_refused_whole_under_its_uploaded_name(browser):
    bad = _zip({"../escape.png": encode(photo(3), "PNG"), "ok.png": encode(photo(4), "PNG")})
    page = browser("alice").post("/cases/CASE-A/upload", {"files": [(io.BytesIO(bad), "evil.zip")]},
                                 content_type="multipart/form-data").text
    assert "0 added" in page and "evil.zip refused: member &#39;../escape.png&#39; escapes the archive" in page
    assert "upload-" not in page and "/file" not in page.split("Refused file")[1].split("</table>")[0]


def test_drag_and_drop_uploads_get_json(browser):
    response = browser("alice").post("/cases/CASE-A/upload", {"files": [(io.BytesIO(encode(photo(20))), "drop.jpg")]},
                                     content_type="multipart/form-data", headers={"Accept": "application/json"})
    assert response.json["ok"] is True and response.json["ingested"][0]["file"] == "drop.jpg"


def test_uploads_are_limited_by_max_upload_bytes(workspace, lab):
    import dataclasses

    cfg = workspace.config
    small = dataclasses.replace(cfg, web=dataclasses.replace(cfg.web, max_upload_bytes=2000))
    client = create_app({"TESTING": True, "VESTIGE": small}).test_client()
    b = Browser(client, lab.users["alice"])
    response = b.post("/cases/CASE-A/upload", {"files": [(io.BytesIO(encode(photo(5, size=256))), "big.jpg")]},
                      content_type="multipart/form-data")
    assert response.status_code == 413


def test_only_examiners_of_the_case_upload(browser):
    for user, status in [("vera", 403), ("outsider", 404), ("admin", 200)]:
        response = browser(user).post("/cases/CASE-A/upload", {"files": [(io.BytesIO(encode(photo(6))), "v.jpg")]},
                                      content_type="multipart/form-data")
        assert response.status_code == status, user


def test_nothing_to_upload_is_a_sentence(browser):
    response = browser("alice").post("/cases/CASE-A/upload", {}, content_type="multipart/form-data")
    assert response.status_code == 422 and "Choose at least one file" in response.text


# --- images --------------------------------------------------------------------


def test_the_image_page_shows_the_record_and_records_the_view(browser, lab, workspace):
    image_id = lab.images["CASE-A"][0]
    page = browser("alice").get(f"/images/{image_id}").text
    with workspace.db.session() as session:
        image = session.get(Image, image_id)
        sha = image.blob_sha256
    for text in (sha, "phash", "a1.jpg", "No analysis has judged this image yet", "estimated"):
        assert text in page
    assert custody_actions(workspace, "CASE-A")[-1] == ("alice", "image.viewed")


def test_near_duplicates_in_cases_the_user_cannot_see_are_hidden(browser, lab, workspace):
    a1, b1 = lab.images["CASE-A"][0], lab.images["CASE-B"][0]
    with workspace.db.session() as session:
        assert session.execute(sa.select(Perturbation).where(Perturbation.image_id == b1,
                                                             Perturbation.parent_id == a1)).first()
    assert f"/images/{b1}" not in browser("alice").get(f"/images/{a1}").text
    assert f"/images/{b1}" in browser("admin").get(f"/images/{a1}").text
    assert f"/images/{a1}" not in browser("bob").get(f"/images/{b1}").text


def test_image_bytes_come_from_the_store_and_downloads_are_exports(browser, lab, workspace):
    image_id = lab.images["CASE-A"][0]
    b = browser("alice")
    with workspace.db.session() as session:
        sha = session.get(Image, image_id).blob_sha256
    shown = b.get(f"/images/{image_id}/file")
    assert shown.data == workspace.store.get(sha) and shown.mimetype == "image/jpeg"
    assert shown.headers["X-Content-Type-Options"] == "nosniff"
    thumb = b.get(f"/images/{image_id}/thumbnail")
    assert thumb.mimetype == "image/jpeg" and thumb.data[:2] == b"\xff\xd8"
    download = b.get(f"/images/{image_id}/download")
    assert download.data == shown.data and 'attachment; filename=a1.jpg' == download.headers["Content-Disposition"]
    assert custody_actions(workspace, "CASE-A")[-1] == ("alice", "image.exported")


def test_a_corrupted_blob_is_an_error_never_a_picture(browser, lab, workspace):
    image_id = lab.images["CASE-A"][1]
    with workspace.db.session() as session:
        sha = session.get(Image, image_id).blob_sha256
    path = workspace.store.path_for(sha)
    os.chmod(path, 0o644)
    path.write_bytes(path.read_bytes()[:-10] + b"0123456789")
    response = browser("alice").get(f"/images/{image_id}/file")
    assert response.status_code == 500 and "is corrupted" in response.text
