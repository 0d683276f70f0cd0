"""`vestige bench web` runs end to end on a small scale: a real server, real clients, numbers that add up."""

import importlib.util
import json

import pytest


@pytest.mark.skipif(importlib.util.find_spec("gunicorn") is None, reason="gunicorn is installed with the dev extras")
def test_bench_web_measures_a_real_server(vestige, tmp_path):
    out = tmp_path / "web.json"
    result = vestige("bench", "web", "--clients", "4", "--seconds", "2", "--workers", "2", "--out", str(out))
    data = json.loads(out.read_text())
    assert json.loads(result.stdout)["overall"] == data["overall"]
    assert data["server"] == "gunicorn gthread, 2 workers x 8 threads, --reuse-port"
    overall, cases, images = data["overall"], data["case_list"], data["image_json"]
    assert overall["errors"] == 0 and not data["first_failures"] and not data["server_errors"]
    assert overall["requests"] == cases["requests"] + images["requests"] > 4
    assert 0 < overall["p50_ms"] <= overall["p95_ms"] <= overall["p99_ms"] <= overall["max_ms"]
    spread = data["client_mean_ms"]
    assert 0 < spread["min"] <= spread["median"] <= spread["max"]
