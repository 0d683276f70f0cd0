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


def test_the_in_process_measurement_reports_cpu_per_request_of_both_endpoints():
    from vestige_bench.web import run_in_process_benchmark

    result = run_in_process_benchmark(blocks=1, requests=3)
    assert result["benchmark"] == "web-in-process" and result["requests_per_block"] == 3
    for endpoint in ("case_list", "image_json"):
        row = result["cpu_ms_per_request"][endpoint]
        assert 0 < row["min"] <= row["median"] <= row["max"]
