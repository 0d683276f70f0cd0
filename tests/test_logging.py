"""Log lines: formats, context (case, request, task), the CLI's --verbose, the web's request id, worker tasks."""

from __future__ import annotations

import io
import json
import logging

import pytest
from conftest import encode, photo
from test_web import app, client, lab  # noqa: F401  (shared fixtures)

from vestige.core.logs import configure_logging, log_context


@pytest.fixture
def log_lines():
    """Vestige's logging into a buffer at INFO, JSON format; the lines logged so far, parsed."""
    stream = io.StringIO()
    configure_logging("INFO", "json", stream=stream)
    yield lambda: [json.loads(line) for line in stream.getvalue().splitlines() if line.startswith("{")]
    configure_logging("WARNING", "text")


def test_json_lines_carry_the_bound_context_and_tracebacks(log_lines):
    log = logging.getLogger("vestige.evidence.ingest")
    with log_context(case="LAB-1", request="r1"):
        log.info("ingested %d", 3)
        with log_context(task=7, missing=None):
            try:
                raise ValueError("bad pixels")
            except ValueError:
                log.exception("failed")
    log.info("outside")
    first, second, third = log_lines()
    assert first["message"] == "ingested 3" and first["level"] == "INFO" and first["logger"] == "vestige.evidence.ingest"
    assert first["case"] == "LAB-1" and first["request"] == "r1" and "task" not in first
    assert second["task"] == 7 and "missing" not in second and "ValueError: bad pixels" in second["exception"]
    assert "case" not in third and third["time"].endswith("Z")


def test_other_libraries_log_from_warning_vestige_from_its_level(log_lines):
    logging.getLogger("urllib3.connectionpool").info("chatter")
    logging.getLogger("urllib3.connectionpool").warning("worth knowing")
    logging.getLogger("vestige_fingerprint.detector").info("a plugin's line")
    logging.getLogger("vestige").debug("below the level")
    assert [line["message"] for line in log_lines()] == ["worth knowing", "a plugin's line"]


def test_text_format_names_the_context():
    stream = io.StringIO()
    configure_logging("DEBUG", "text", stream=stream)
    try:
        with log_context(case="LAB-2"):
            logging.getLogger("vestige.x").debug("hello")
    finally:
        configure_logging("WARNING", "text")
    assert stream.getvalue().rstrip().endswith("DEBUG vestige.x [case=LAB-2] hello")


def test_wrong_logging_configuration_is_refused_with_a_sentence(tmp_path):
    from vestige.core.config import load_config
    from vestige.core.errors import ConfigError

    with pytest.raises(ConfigError, match="logging.format must be one of"):
        load_config(environ={"VESTIGE_LOGGING__FORMAT": "xml"})
    with pytest.raises(ValueError, match="log level 'LOUD'"):
        configure_logging("LOUD")


def test_the_cli_logs_only_when_asked(vestige, tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "a.jpg").write_bytes(encode(photo(1)))
    (folder / "b.txt").write_bytes(b"not an image")
    vestige("init")
    vestige("case new --ref LOG-1 --title logging --by alice")
    quiet = vestige("ingest", "LOG-1", folder, "--by", "alice")
    assert " INFO " not in quiet.stderr
    loud = vestige("-v", "analyze", "LOG-1", "--detectors", "metadata", "--wait", "--by", "alice")
    lines = [line for line in loud.stderr.splitlines() if " INFO vestige" in line]
    assert any("vestige.jobs.execution [task=" in line and "analysis=" in line and "detector=metadata" in line
               and "running on 1 image(s)" in line for line in lines), loud.stderr
    again = vestige("-v", "ingest", "LOG-1", folder, "--by", "alice")
    assert any("[case=LOG-1] refused" in line and "b.txt" in line for line in again.stderr.splitlines()), again.stderr


def test_the_web_names_each_request_and_quotes_it_on_a_server_error(app, client, lab, log_lines):
    from test_web_api import bearer

    def broken():  # type: ignore[no-untyped-def]
        logging.getLogger("vestige.test").info("about to fail")
        raise RuntimeError("a bug")

    app.add_url_rule("/api/v1/broken", "broken", broken)
    given = client.get("/api/v1/cases", headers={**bearer(lab, "bob"), "X-Request-ID": "proxy-42"})
    assert given.headers["X-Request-ID"] == "proxy-42"
    made = client.get("/api/v1/cases", headers={**bearer(lab, "bob"), "X-Request-ID": "no spaces allowed"})
    assert made.headers["X-Request-ID"] != "no spaces allowed" and len(made.headers["X-Request-ID"]) == 16
    app.config["PROPAGATE_EXCEPTIONS"] = False
    failed = client.get("/api/v1/broken", headers={**bearer(lab, "bob"), "X-Request-ID": "req-7"})
    assert failed.status_code == 500 and "request req-7" in failed.json["error"]
    lines = [line for line in log_lines() if line.get("request") == "req-7"]
    assert [line["message"] for line in lines][0] == "about to fail" and lines[0]["user"] == "bob"
    assert any("RuntimeError: a bug" in line.get("exception", "") for line in lines)
