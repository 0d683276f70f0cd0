"""The JSON API, the authorisation matrix over pages and API, findings on pages, and schemathesis."""

from __future__ import annotations

import io
import re

import numpy as np
import pytest
import schemathesis
import sqlalchemy as sa
from conftest import encode, photo
from hypothesis import HealthCheck, given, settings
from PIL import Image as PILImage
from test_web import Browser, app, browser, client, lab  # noqa: F401  (shared fixtures)

from vestige.db.models import Analysis, Blob, Case, Verdict, utcnow
from vestige.plugin.pixels import PIXELS_MEDIA_TYPE, pack_pixels, render_png


def bearer(lab, name: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {lab.tokens[name]}"}


# --- the API ------------------------------------------------------------------


def test_create_list_and_read_cases_through_the_api(client, lab):
    created = client.post("/api/v1/cases", json={"reference": "API-1", "title": "Scripted"}, headers=bearer(lab, "bob"))
    assert created.status_code == 201
    assert created.json["case"]["reference"] == "API-1" and created.json["case"]["created_by"] == "bob"
    listed = client.get("/api/v1/cases", headers=bearer(lab, "bob")).json
    assert [c["reference"] for c in listed["cases"]] == ["API-1", "CASE-B"]
    assert [c["reference"] for c in client.get("/api/v1/cases?q=scri", headers=bearer(lab, "bob")).json["cases"]] == ["API-1"]
    shown = client.get("/api/v1/cases/API-1", headers=bearer(lab, "bob")).json
    assert shown["members"] == [{"user": "bob", "role": "lead"}]


def test_images_image_record_and_custody_through_the_api(client, lab):
    images = client.get("/api/v1/cases/CASE-A/images", headers=bearer(lab, "vera")).json["images"]
    assert [row["filename"].rsplit("/", 1)[-1] for row in images] == ["a1.jpg", "a2.png"]
    assert images[0]["verdict"] is None and images[0]["near_duplicates"] == 0
    record = client.get(f"/api/v1/images/{images[0]['id']}", headers=bearer(lab, "vera")).json["image"]
    assert record["sha256"] == images[0]["sha256"] and record["findings"] == [] and record["verdict"] is None
    assert all(row.get("parent") is None for row in record["perturbations"]["history"])  # CASE-B's copy is hidden
    custody = client.get("/api/v1/cases/CASE-A/custody", headers=bearer(lab, "vera")).json["custody"]
    assert custody["intact"] is True
    assert [e["action"] for e in custody["log"]][-3:] == ["case.viewed", "image.viewed", "custody.viewed"]
    assert custody["log"][-3]["details"] == {"part": "images", "via": "api"}
    assert custody["log"][-2]["details"]["via"] == "api" and custody["log"][-2]["actor"] == "vera"


def test_upload_through_the_api(client, lab):
    files = [(io.BytesIO(encode(photo(30))), "api.jpg"), (io.BytesIO(b"%PDF-1.4"), "doc.pdf")]
    response = client.post("/api/v1/cases/CASE-A/images", data={"files": files}, headers=bearer(lab, "alice"),
                           content_type="multipart/form-data")
    assert response.status_code == 200
    assert [r["file"] for r in response.json["ingested"]] == ["api.jpg"]
    assert response.json["rejected"][0]["file"] == "doc.pdf"


def test_the_api_never_accepts_the_session_cookie(client, lab):
    Browser(client, lab.users["admin"])
    assert client.get("/api/v1/cases").status_code == 401


ERRORS = [
    ("get", "/api/v1/cases", {}, None, 401),
    ("get", "/api/v1/cases", {"Authorization": "Bearer vst_not-a-token"}, None, 401),
    ("get", "/api/v1/cases/NOPE", "alice", None, 404),
    ("get", "/api/v1/images/999999", "alice", None, 404),
    ("get", "/api/v1/nothing-here", "alice", None, 404),
    ("delete", "/api/v1/cases", "alice", None, 405),
    ("post", "/api/v1/cases", "alice", "not json", 400),
    ("post", "/api/v1/cases", "alice", {"reference": 5, "title": "x"}, 422),
    ("post", "/api/v1/cases", "alice", {"reference": "bad ref", "title": "x"}, 422),
    ("post", "/api/v1/cases", "alice", {"reference": "CASE-A", "title": "x"}, 409),
    ("post", "/api/v1/cases", "vera", {"reference": "V-1", "title": "x"}, 403),
    ("post", "/api/v1/cases/CASE-A/images", "vera", None, 403),
    ("post", "/api/v1/cases/CASE-A/images", "alice", None, 422),
]


def test_every_api_error_has_one_shape(client, lab):
    for method, url, who, body, status in ERRORS:
        headers = bearer(lab, who) if isinstance(who, str) else who
        kwargs = {"json": body} if isinstance(body, dict) else {"data": body} if body else {}
        response = getattr(client, method)(url, headers=headers, **kwargs)
        assert response.status_code == status, (method, url)
        assert response.mimetype == "application/json"
        assert set(response.json) == {"ok", "error", "status"} and response.json["ok"] is False
        assert response.json["status"] == status and response.json["error"].strip() and "\n" not in response.json["error"]
    assert client.get("/api/v1/cases").headers["WWW-Authenticate"].startswith("Bearer")
    assert client.delete("/api/v1/cases", headers=bearer(lab, "alice")).headers["Allow"]


# --- the authorisation matrix ---------------------------------------------------

PAGE_ROUTES = ["/cases/{case}", "/cases/{case}/upload", "/cases/{case}/custody", "/cases/{case}/analyses.json",
               "/images/{image}", "/images/{image}/file", "/images/{image}/thumbnail", "/images/{image}/download",
               "/images/{image}/pictures/" + "0" * 64]
API_ROUTES = ["/api/v1/cases/{case}", "/api/v1/cases/{case}/images", "/api/v1/cases/{case}/verdicts",
              "/api/v1/cases/{case}/analyses", "/api/v1/cases/{case}/reports", "/api/v1/cases/{case}/custody",
              "/api/v1/images/{image}", "/api/v1/images/{image}/verdicts"]
POSTS = ["/cases/{case}/upload", "/cases/{case}/members", "/cases/{case}/analyses", "/cases/{case}/reports"]
API_POSTS = ["/api/v1/cases/{case}/images", "/api/v1/cases/{case}/analyses", "/api/v1/cases/{case}/reports"]


def message(response) -> str:
    if response.is_json:
        return response.json["error"]
    return re.search(r'<p class="lead">(.*?)</p>', response.text).group(1)


@pytest.mark.parametrize(("user", "case", "visible"), [
    ("alice", "CASE-A", True), ("vera", "CASE-A", True), ("admin", "CASE-A", True), ("bob", "CASE-B", True),
    ("alice", "CASE-B", False), ("vera", "CASE-B", False), ("bob", "CASE-A", False), ("outsider", "CASE-A", False),
])
def test_authorisation_matrix(client, lab, user, case, visible):
    """A user who is not on a case gets 404 for all of it, exactly as for a case that does not exist."""
    image = lab.images[case][0]
    b = Browser(client, lab.users[user])
    for route in PAGE_ROUTES + API_ROUTES:
        url = route.format(case=case, image=image)
        response = b.get(url, headers=bearer(lab, user) if url.startswith("/api/") else {})
        if visible:
            assert response.status_code in (200, 403, 404) and (response.status_code != 404 or "pictures" in url), url
        else:
            assert response.status_code == 404, url
            missing = b.get(route.format(case="NO-SUCH-CASE", image=999999),
                            headers=bearer(lab, user) if url.startswith("/api/") else {})
            assert message(response).replace(case, "?").replace(f"image {image} ", "image ? ") == \
                message(missing).replace("NO-SUCH-CASE", "?").replace("image 999999 ", "image ? "), url
    if not visible:
        for route in POSTS:
            assert b.post(route.format(case=case), {"username": user, "role": "lead", "format": "json"}).status_code == 404
        for route in API_POSTS:
            assert client.post(route.format(case=case), json={"format": "json"}, headers=bearer(lab, user)).status_code == 404


# --- findings ---------------------------------------------------------------------


@pytest.fixture
def judged(workspace, lab):
    """A finished analysis of CASE-A: two detectors on a1 (one with a picture), one on a2."""
    picture = encode(photo(99, size=32), "PNG")
    sha = workspace.store.put(picture)
    # The same picture deferred, as detectors store it: raw pixels, rendered as that very PNG when shown.
    stored = pack_pixels(np.asarray(PILImage.open(io.BytesIO(picture)).convert("RGB")))
    assert render_png(stored) == picture
    pixels_sha = workspace.store.put(stored)
    a1, a2 = lab.images["CASE-A"]
    with workspace.db.session() as session:
        case = session.execute(sa.select(Case).where(Case.reference == "CASE-A")).scalar_one()
        session.add(Blob(sha256=sha, size=len(picture), media_type="image/png"))
        session.add(Blob(sha256=pixels_sha, size=len(stored), media_type=PIXELS_MEDIA_TYPE))
        analysis = Analysis(case_id=case.id, status="done", detectors=["metadata", "fingerprint"], progress_done=3,
                            progress_total=3, requested_by="alice", finished_at=utcnow(), summary={"robustness": {
                                str(a1): {"probes": {"jpeg-q70": a2},
                                          "merged": {"label": "synthetic", "source": "stylegan2", "under": {
                                              "jpeg-q70": {"image_id": a2, "label": "real", "outcome": "single", "holds": False}}},
                                          "detectors": {"fingerprint": {"label": "synthetic", "source": "stylegan2", "under": {
                                              "jpeg-q70": {"image_id": a2, "label": "real", "source": None, "holds": False}}}}}}})
        session.add(analysis)
        session.flush()
        session.add_all([
            Verdict(analysis_id=analysis.id, image_id=a1, detector="metadata", detector_version="1", label="unknown"),
            Verdict(analysis_id=analysis.id, image_id=a1, detector="fingerprint", detector_version="2", label="synthetic",
                    source="stylegan2", scores={"stylegan2": 0.91, "real": 0.09}, confidence=0.9,
                    evidence={"residual_energy": 0.42},
                    pictures=[{"name": "residual", "caption": "Noise residual", "media_type": "image/png", "sha256": sha},
                              {"name": "residual-deferred", "caption": "Noise residual, deferred",
                               "media_type": PIXELS_MEDIA_TYPE, "sha256": pixels_sha}]),
            Verdict(analysis_id=analysis.id, image_id=a2, detector="fingerprint", detector_version="2", label="real",
                    scores={"real": 0.8}, confidence=0.8),
        ])
    return {"a1": a1, "a2": a2, "picture": sha, "pixels": pixels_sha, "stored": stored}


def test_findings_pictures_and_merged_verdicts_on_pages(browser, judged):
    b = browser("alice")
    case_page = b.get("/cases/CASE-A").text
    assert "synthetic · stylegan2" in case_page and "real</span>" in case_page
    page = b.get(f"/images/{judged['a1']}").text
    assert "Noise residual" in page and "residual_energy" in page and "Rule 6" in page
    robustness = page.split("<h2>Robustness</h2>")[1].split("</section>")[0]
    assert f'href="/images/{judged["a2"]}">jpeg-q70</a>' in robustness and robustness.count('class="contradicts">✗ real') == 2
    picture = b.get(f"/images/{judged['a1']}/pictures/{judged['picture']}")
    assert picture.status_code == 200 and picture.mimetype == "image/png"
    assert picture.data == b.get(f"/images/{judged['a1']}/pictures/{judged['pixels']}").data == render_png(judged["stored"])
    # a picture is served only through an image whose finding made it
    assert b.get(f"/images/{judged['a2']}/pictures/{judged['picture']}").status_code == 404


def test_verdicts_through_the_api(client, lab, judged):
    data = client.get("/api/v1/cases/CASE-A/verdicts", headers=bearer(lab, "vera")).json["verdicts"]
    merged = {row["image_id"]: row["verdict"] for row in data}
    assert merged[judged["a1"]]["label"] == "synthetic" and merged[judged["a1"]]["source"] == "stylegan2"
    assert merged[judged["a2"]]["label"] == "real"
    one = client.get(f"/api/v1/images/{judged['a1']}/verdicts", headers=bearer(lab, "vera")).json
    assert [f["detector"] for f in one["findings"]] == ["fingerprint", "metadata"]


# --- the OpenAPI document, checked by schemathesis ------------------------------------


def test_the_openapi_document_is_served_and_covers_every_api_route(client, app):
    doc = client.get("/api/v1/openapi.json").json
    assert doc["openapi"].startswith("3.") and doc["components"]["schemas"]["Error"]["required"] == ["ok", "error", "status"]
    routes = {rule.rule.replace("/api/v1", "").replace("<path:reference>", "{reference}")
              .replace("<int:image_id>", "{image_id}").replace("<int:report_id>", "{report_id}") for rule in app.url_map.iter_rules() if rule.endpoint.startswith("api.") and rule.endpoint != "api.openapi"}
    assert routes == set(doc["paths"])


def test_api_conforms_to_its_openapi_document(app, lab):
    """schemathesis generates requests from the document for every operation and checks each answer against it."""
    schema = schemathesis.openapi.from_wsgi("/api/v1/openapi.json", app)
    headers = {"Authorization": f"Bearer {lab.tokens['alice']}"}
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) == 14
    # Launching analyses and making reports are tested on their own (test_web_work.py): generated
    # requests would start background analyses and render PDFs, which is slow and proves nothing more.
    operations = [op for op in operations if not (op.method.upper() == "POST" and op.path.endswith(("/analyses", "/reports")))]

    for operation in operations:
        @given(case=operation.as_strategy())
        @settings(max_examples=8, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True, database=None)
        def check(case):  # type: ignore[no-untyped-def]
            case.call_and_validate(headers=headers)

        check()


def test_concurrent_views_each_extend_the_custody_chain(app, lab, workspace):
    """Views from many threads at once: every one answered and recorded, the chain intact."""
    import threading

    from test_web import custody_actions

    image = lab.images["CASE-A"][0]
    statuses: list[int] = []

    def view() -> None:
        client = app.test_client()
        for _ in range(5):
            statuses.append(client.get(f"/api/v1/images/{image}", headers=bearer(lab, "alice")).status_code)

    threads = [threading.Thread(target=view) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert statuses == [200] * 40
    assert [a for _, a in custody_actions(workspace, "CASE-A")].count("image.viewed") == 40
