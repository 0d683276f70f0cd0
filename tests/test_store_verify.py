"""``vestige store verify`` and the store check of reports (issue 21, item 6): corrupted evidence is found."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from conftest import encode, photo

CASE = "LAB-2026-0066"


@pytest.fixture
def case(vestige, tmp_path):
    assert vestige("init").exit_code == 0
    assert vestige("case", "new", "--ref", CASE, "--title", "Store check").exit_code == 0
    for seed, name in [(1, "a.jpg"), (2, "b.jpg")]:
        (tmp_path / name).write_bytes(encode(photo(seed, 96)))
    assert vestige("ingest", CASE, tmp_path / "a.jpg", tmp_path / "b.jpg").exit_code == 0
    return CASE


def image_ids(vestige) -> dict[str, dict]:
    return {Path(r["filename"]).name: r for r in json.loads(vestige("images", CASE, "--json").stdout)}


def flip_a_byte(config, sha256: str) -> Path:
    path = config.store_path / sha256[:2] / sha256[2:4] / sha256
    os.chmod(path, 0o644)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))
    return path


def actions(vestige) -> list[dict]:
    return json.loads(vestige("custody", "log", CASE, "--json").stdout)


def test_an_intact_store_verifies_and_the_check_is_in_custody(vestige, case):
    result = vestige("store", "verify", CASE)
    assert result.exit_code == 0, result.stderr
    assert result.stdout.strip() == "store intact: 2 stored files re-hashed, all match"
    last = actions(vestige)[-1]
    assert last["action"] == "store.verified" and last["details"] == {"checked": 2, "intact": True, "bad": []}
    assert vestige("custody", "verify", CASE).exit_code == 0


def test_a_flipped_byte_in_an_image_is_named_and_recorded(vestige, case, config):
    images = image_ids(vestige)
    flip_a_byte(config, images["a.jpg"]["sha256"])
    result = vestige("store", "verify", CASE)
    assert result.exit_code == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 2 and "Traceback" not in result.stderr
    assert lines[0].startswith(f"BAD image {images['a.jpg']['id']} ") and "a.jpg" in lines[0] and "corrupted" in lines[0]
    assert lines[1] == "store DAMAGED: 1 of 2 stored files are missing or corrupted"
    last = actions(vestige)[-1]
    assert last["action"] == "store.verified" and last["details"]["intact"] is False
    assert last["details"]["bad"][0]["sha256"] == images["a.jpg"]["sha256"]


def test_missing_reports_and_derived_images_are_checked_too(vestige, case, config, tmp_path):
    images = image_ids(vestige)
    assert vestige("perturb", str(images["b.jpg"]["id"]), "--op", "jpeg:quality=70").exit_code == 0
    derived = next(r for r in json.loads(vestige("images", CASE, "--json").stdout) if r["id"] not in
                   {i["id"] for i in images.values()})
    assert vestige("report", CASE, "--format", "json", "--out", tmp_path / "r.json").exit_code == 0
    report_sha = json.loads(vestige("custody", "log", CASE, "--json").stdout)[-1]["details"]["sha256"]
    flip_a_byte(config, derived["sha256"])
    flip_a_byte(config, report_sha)
    missing = config.store_path / images["a.jpg"]["sha256"][:2] / images["a.jpg"]["sha256"][2:4] / images["a.jpg"]["sha256"]
    missing.unlink()
    result = vestige("store", "verify")  # every case
    assert result.exit_code == 1
    bad = [line for line in result.stderr.splitlines() if line.startswith("BAD ")]
    assert len(bad) == 3
    assert any(line.startswith("BAD derived image ") for line in bad)
    assert any(line.startswith("BAD report ") and "(json)" in line for line in bad)
    assert any("missing" in line and "a.jpg" in line for line in bad)


def test_a_report_refuses_to_list_evidence_whose_bytes_changed(vestige, case, config, tmp_path):
    images = image_ids(vestige)
    flip_a_byte(config, images["b.jpg"]["sha256"])
    before = actions(vestige)
    for fmt in ("json", "html", "bundle"):
        if fmt == "bundle":
            assert vestige("keys", "init").exit_code == 0
        out = tmp_path / f"report.{fmt}"
        result = vestige("report", CASE, "--format", fmt, "--out", out)
        assert result.exit_code == 1, (fmt, result.stdout)
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and "Traceback" not in result.stderr
        assert f"image {images['b.jpg']['id']}" in lines[0] and "store verify" in lines[0]
        assert not out.exists()
    assert actions(vestige) == before
