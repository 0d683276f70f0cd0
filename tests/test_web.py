"""The web app's pages through Flask's test client: login, CSRF, cases, uploads, images, custody.

The fixtures here (``app``, ``client``, ``lab``, ``browser``) are shared with
the other ``test_web_*.py`` modules, which import them.
"""

from __future__ import annotations

import json
import stat
from dataclasses import dataclass
from urllib.parse import unquote

import pytest
import sqlalchemy as sa
from conftest import encode, photo

from vestige.access.accounts import add_member, add_user, authenticate, create_token
from vestige.db.models import Case, CustodyEvent
from vestige.evidence.cases import create_case
from vestige.evidence.custody import verify_chain
from vestige.evidence.ingest import Acquisition, Ingester
from vestige_web import create_app

PASSWORD = "correct horse battery"
CSRF = "test-csrf-token"


@pytest.fixture
def app(workspace):
    """The app on this test's workspace."""
    return create_app({"TESTING": True, "VESTIGE": workspace.config})


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def runner(vestige):
    """The ``vestige`` command line (conftest's runner), for the commands the web app adds."""
    return vestige


@dataclass
class Lab:
    """Two cases with evidence and the people who work on them.

    Case A: alice (lead), vera (viewer). Case B: bob (lead). admin sees all;
    outsider is an examiner on no case.
    """

    users: dict[str, int]
    tokens: dict[str, str]
    images: dict[str, list[int]]


def ingest_bytes(workspace, reference: str, files: dict[str, bytes], tmp_path) -> list[int]:
    folder = tmp_path / f"in-{reference}"
    folder.mkdir()
    for name, data in files.items():
        (folder / name).write_bytes(data)
    with workspace.db.session() as session:
        case = session.execute(sa.select(Case).where(Case.reference == reference)).scalar_one()
        summary = Ingester(workspace, session, case, Acquisition(source="test", actor="tester")).ingest_paths([folder])
    return [row["image_id"] for row in summary.ingested]


@pytest.fixture
def lab(workspace, tmp_path) -> Lab:
    with workspace.db.session() as session:
        # No passwords here (scrypt is slow on purpose): tests log in through the session; see with_password.
        users = {name: add_user(session, username=name, role=role, password=None)
                 for name, role in [("admin", "admin"), ("alice", "examiner"), ("bob", "examiner"),
                                    ("vera", "viewer"), ("outsider", "examiner")]}
        a = create_case(session, reference="CASE-A", title="Forum images", actor="tester")
        b = create_case(session, reference="CASE-B", title="Press photos", actor="tester")
        add_member(session, a, users["alice"], role="lead", actor="tester")
        add_member(session, a, users["vera"], role="viewer", actor="tester")
        add_member(session, b, users["bob"], role="lead", actor="tester")
        tokens = {name: create_token(session, user) for name, user in users.items()}
        ids = {name: user.id for name, user in users.items()}
    images = {
        "CASE-A": ingest_bytes(workspace, "CASE-A", {"a1.jpg": encode(photo(1)), "a2.png": encode(photo(2), "PNG")}, tmp_path),
        # b1 is a re-encoded copy of a1: a near-duplicate across cases
        "CASE-B": ingest_bytes(workspace, "CASE-B", {"b1.jpg": encode(photo(1), quality=60)}, tmp_path),
    }
    return Lab(users=ids, tokens=tokens, images=images)


@pytest.fixture
def with_password(workspace, lab):
    """Give alice the password PASSWORD, for the tests of the login form."""
    from vestige.access.accounts import hash_password
    from vestige.db.models import User

    with workspace.db.session() as session:
        session.get(User, lab.users["alice"]).password_hash = hash_password(PASSWORD)


class Browser:
    """The test client logged in as one user, sending the CSRF token with every form."""

    def __init__(self, client, user_id: int | None) -> None:
        self.client = client
        sid = None
        if user_id is not None:  # a real server-side session, as a login makes
            from vestige.access.websessions import start_session
            from vestige.db.models import User

            with client.application.app_context():
                from vestige_web.extensions import vestige as ext

                sid = start_session(ext.session, ext.session.get(User, user_id))
                ext.session.commit()
        with client.session_transaction() as session:
            session["csrf"] = CSRF
            if sid is not None:
                session["sid"] = sid

    def get(self, url: str, **kwargs):
        return self.client.get(url, **kwargs)

    def post(self, url: str, data: dict | None = None, **kwargs):
        return self.client.post(url, data={"csrf_token": CSRF, **(data or {})}, **kwargs)


@pytest.fixture
def browser(client, lab):
    """``browser("alice")``: the client logged in as alice."""
    return lambda name: Browser(client, lab.users[name] if name else None)


def custody_actions(workspace, reference: str) -> list[tuple[str, str]]:
    with workspace.db.session() as session:
        case = session.execute(sa.select(Case).where(Case.reference == reference)).scalar_one()
        assert verify_chain(session, case).intact
        rows = session.execute(sa.select(CustodyEvent.actor, CustodyEvent.action)
                               .where(CustodyEvent.case_id == case.id).order_by(CustodyEvent.seq)).all()
    return [(actor, action) for actor, action in rows]


# --- logging in --------------------------------------------------------------


PAGES = ["/", "/cases", "/cases/CASE-A", "/cases/CASE-A/upload", "/cases/CASE-A/custody", "/images/1",
         "/images/1/file", "/images/1/thumbnail", "/images/1/download", "/plugins"]


def test_pages_send_strangers_to_the_login_form(client):
    for url in PAGES:
        response = client.get(url)
        assert response.status_code == 302, url
        assert unquote(response.headers["Location"]) == f"/login?next={url}", url


def test_login_with_password_then_logout(client, lab, with_password):
    Browser(client, None)
    response = client.post("/login", data={"username": "alice", "password": PASSWORD, "csrf_token": CSRF,
                                           "next": "/cases/CASE-A"})
    assert response.status_code == 302 and response.headers["Location"] == "/cases/CASE-A"
    cookie = response.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "Secure" in cookie and "SameSite=Lax" in cookie
    assert "CASE-A" in client.get("/cases").text
    with client.session_transaction() as session:
        token = session["csrf"]
    assert token != CSRF  # login starts a fresh session
    client.post("/logout", data={"csrf_token": token})
    assert client.get("/cases").status_code == 302


FAILED_LOGINS = [("alice", "wrong password"), ("nobody", PASSWORD), ("bob", PASSWORD), ("", "")]


def test_a_failed_login_says_so_without_saying_which_part(client, lab, with_password):
    Browser(client, None)
    for username, password in FAILED_LOGINS:
        response = client.post("/login", data={"username": username, "password": password, "csrf_token": CSRF})
        assert response.status_code == 401, username
        assert "do not match an active account" in response.text


def test_login_is_rate_limited_per_user_name(client, lab, app, with_password):
    Browser(client, None)
    for _ in range(app.config["LOGIN_MAX_FAILURES"]):
        client.post("/login", data={"username": "alice", "password": "nope", "csrf_token": CSRF})
    response = client.post("/login", data={"username": "alice", "password": PASSWORD, "csrf_token": CSRF})
    assert response.status_code == 429
    assert "Too many failed logins" in response.text and int(response.headers["Retry-After"]) > 0


def test_login_never_redirects_off_site(client, lab, with_password):
    for target in ["https://evil.example/", "//evil.example/x", "javascript:alert(1)"]:
        Browser(client, None)
        response = client.post("/login", data={"username": "alice", "password": PASSWORD, "csrf_token": CSRF,
                                               "next": target})
        assert response.headers["Location"] == "/cases", target


FORMS = [
    ("/login", {"username": "alice", "password": PASSWORD}),
    ("/logout", {}),
    ("/cases", {"reference": "NEW-1", "title": "x"}),
    ("/cases/CASE-A/upload", {}),
    ("/cases/CASE-A/members", {"username": "bob", "role": "viewer"}),
]


def test_every_form_needs_its_csrf_token(client, lab):
    Browser(client, lab.users["alice"])
    for url, data in FORMS:
        for sent in ({}, {"csrf_token": "forged"}):
            response = client.post(url, data={**data, **sent})
            assert response.status_code == 400, url
            assert "did not come from this site" in response.text


def test_the_secret_key_is_made_once_with_owner_only_permissions(workspace, app):
    path = workspace.config.data_dir / "web-secret-key"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    again = create_app({"TESTING": True, "VESTIGE": workspace.config})
    assert again.secret_key == app.secret_key


def test_the_secret_key_from_the_environment_wins(workspace, config):
    import dataclasses

    cfg = dataclasses.replace(config, web=dataclasses.replace(config.web, secret_key="s" * 40))
    assert create_app({"VESTIGE": cfg}).secret_key == "s" * 40


# --- cases ----------------------------------------------------------------------


CASE_LISTS = [
    ("alice", "", ["CASE-A"], ["CASE-B"]),
    ("bob", "", ["CASE-B"], ["CASE-A"]),
    ("admin", "", ["CASE-A", "CASE-B"], []),
    ("admin", "press", ["CASE-B"], ["CASE-A"]),
    ("outsider", "", [], ["CASE-A", "CASE-B"]),
]


def test_the_case_list_shows_only_the_users_cases(browser):
    for user, query, shown, hidden in CASE_LISTS:
        page = browser(user).get(f"/cases?q={query}").text
        assert all(ref in page for ref in shown) and not any(ref in page for ref in hidden), (user, query)


def test_opening_a_case_makes_its_creator_the_lead(browser, workspace):
    response = browser("bob").post("/cases", {"reference": "LAB-2026-0042", "title": "Forum post"})
    assert response.status_code == 302 and response.headers["Location"] == "/cases/LAB-2026-0042"
    page = browser("bob").get("/cases/LAB-2026-0042").text
    assert "Forum post" in page and "bob <span class=\"muted\">— lead</span>" in page
    assert custody_actions(workspace, "LAB-2026-0042") == [("bob", "case.opened"), ("bob", "case.member_added"),
                                                            ("bob", "case.viewed")]


REFUSED_CASES = [
    ({"reference": "bad ref", "title": "x"}, "is not valid"),
    ({"reference": "CASE-A", "title": "again"}, "already exists"),
    ({"reference": "OK-1", "title": " "}, "a case needs a title"),
]


def test_a_case_that_cannot_be_opened_says_why(browser):
    b = browser("alice")
    for data, message in REFUSED_CASES:
        assert b.post("/cases", data).status_code == 302
        assert message in b.get("/cases").text


def test_viewers_cannot_open_cases(browser):
    response = browser("vera").post("/cases", {"reference": "V-1", "title": "x"})
    assert response.status_code == 403 and "Viewers cannot open cases" in response.text


def test_the_case_page_shows_thumbnails_verdict_state_and_records_the_view(browser, lab, workspace):
    page = browser("alice").get("/cases/CASE-A").text
    for image_id in lab.images["CASE-A"]:
        assert f'src="/images/{image_id}/thumbnail"' in page
    assert "not analysed" in page and "No analysis has been run" in page
    assert custody_actions(workspace, "CASE-A")[-1] == ("alice", "case.viewed")


def test_near_duplicate_counts_only_count_visible_cases(browser, lab):
    assert "near-dup." not in browser("alice").get("/cases/CASE-A").text
    assert "1 near-dup." in browser("admin").get("/cases/CASE-A").text


def test_a_lead_adds_members_and_others_cannot(browser, lab, workspace):
    assert browser("vera").post("/cases/CASE-A/members", {"username": "bob", "role": "viewer"}).status_code == 403
    response = browser("alice").post("/cases/CASE-A/members", {"username": "bob", "role": "viewer"})
    assert response.status_code == 302
    assert "CASE-A" in browser("bob").get("/cases").text
    assert ("alice", "case.member_added") in custody_actions(workspace, "CASE-A")


# --- custody, plugins, analyses -------------------------------------------------


def test_the_custody_page_shows_the_chain_and_its_state(browser, workspace):
    page = browser("alice").get("/cases/CASE-A/custody").text
    assert "The hash chain is intact" in page and "custody.viewed" in page and "image.ingested" in page
    with workspace.db.session() as session:
        event = session.execute(sa.select(CustodyEvent).order_by(CustodyEvent.id)).scalars().first()
        event.actor = "someone else"
    page = browser("alice").get("/cases/CASE-A/custody").text
    assert "The hash chain is broken" in page and "was altered" in page


def test_the_plugins_page_lists_plugins_and_artifacts(browser):
    page = browser("vera").get("/plugins").text
    assert "metadata" in page and "Model artifacts" in page


def test_analysis_progress_is_polled_as_json(browser, workspace):
    from vestige.db.models import Analysis

    with workspace.db.session() as session:
        case = session.execute(sa.select(Case).where(Case.reference == "CASE-A")).scalar_one()
        session.add(Analysis(case_id=case.id, status="running", detectors=["metadata"], progress_done=3,
                             progress_total=8, requested_by="alice"))
    b = browser("vera")
    assert 'data-analysis="1"' in b.get("/cases/CASE-A").text
    data = b.get("/cases/CASE-A/analyses.json").json
    assert data["ok"] is True and data["analyses"][0]["progress_done"] == 3
    assert browser("bob").get("/cases/CASE-A/analyses.json").json == {
        "ok": False, "error": "There is no case CASE-A that you can see.", "status": 404}


# --- the command line the web app adds ----------------------------------------


def test_user_token_and_member_commands(runner, workspace, client, tmp_path):
    password_file = tmp_path / "pw"
    password_file.write_text(PASSWORD + "\n")
    assert runner("user", "add", "erin", "--role", "examiner", "--password-file", password_file).stdout == \
        "user erin added (examiner)\n"
    prompted = runner("user", "add", "gina", "--role", "viewer", input=f"{PASSWORD}\n{PASSWORD}\n")
    assert prompted.exit_code == 0 and prompted.stdout.endswith("user gina added (viewer)\n")
    with workspace.db.session() as session:
        assert authenticate(session, "gina", PASSWORD).role == "viewer"
        assert authenticate(session, "gina", "not the password") is None
    short = tmp_path / "short"
    short.write_text("abc")
    refused = runner("user", "add", "fred", "--role", "examiner", "--password-file", short)
    assert refused.exit_code == 1 and "too short" in refused.stderr
    assert runner("case", "new", "--ref", "CLI-1", "--title", "t").exit_code == 0
    assert runner("case", "member", "add", "CLI-1", "erin", "--role", "lead").stdout == "erin is lead on case CLI-1\n"
    token = runner("token", "create", "erin").stdout.strip()
    listed = client.get("/api/v1/cases", headers={"Authorization": f"Bearer {token}"}).json
    assert [c["reference"] for c in listed["cases"]] == ["CLI-1"]
    assert json.loads(runner("case", "member", "list", "CLI-1", "--json").stdout) == [{"user": "erin", "role": "lead"}]
    assert runner("token", "revoke", "erin").stdout == "1 token(s) of erin revoked\n"
    assert client.get("/api/v1/cases", headers={"Authorization": f"Bearer {token}"}).status_code == 401
    assert runner("case", "member", "add", "CLI-1", "ghost").stderr.startswith("error: no user 'ghost'")
