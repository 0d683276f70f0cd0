"""Evidence integrity under hostile input and faults (issue 21): nothing lost, nothing silently corrupt."""

from __future__ import annotations

import json
import warnings
import zipfile
from pathlib import Path

import pytest

from conftest import encode, photo

CASE = "LAB-2026-0021"


@pytest.fixture
def case(vestige):
    assert vestige("init").exit_code == 0
    assert vestige("case", "new", "--ref", CASE, "--title", "Hostile input").exit_code == 0
    return CASE


def images_json(vestige) -> list[dict]:
    result = vestige("images", CASE, "--json")
    assert result.exit_code == 0, result.stderr
    return json.loads(result.stdout)


def zip_with_same_names(path: Path) -> tuple[bytes, bytes]:
    first, second = encode(photo(11, 96)), encode(photo(12, 96))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # zipfile warns about the duplicate name, and writes it anyway
        with zipfile.ZipFile(path, "w") as archive:
            archive.writestr("same.jpg", first)
            archive.writestr("same.jpg", second)
    return first, second


def test_zip_members_with_the_same_name_are_all_ingested(vestige, case, tmp_path):
    archive = tmp_path / "twins.zip"
    zip_with_same_names(archive)
    result = vestige("ingest", CASE, archive)
    assert result.exit_code == 0, result.stderr
    assert result.stdout.startswith("ingested 2, duplicates 0, rejected 0")
    rows = images_json(vestige)
    assert len(rows) == 2 and len({r["sha256"] for r in rows}) == 2
    members = []
    for row in rows:
        record = json.loads(vestige("image", "show", str(row["id"]), "--json").stdout)
        (occurrence,) = record["occurrences"]
        assert occurrence["filename"] == "same.jpg" and occurrence["container"] == str(archive)
        members.append(occurrence["member_index"])
    assert sorted(members) == [0, 1]


def test_a_bundle_with_a_member_added_under_a_signed_name_fails(vestige, case, tmp_path):
    (tmp_path / "x.jpg").write_bytes(encode(photo(13, 96)))
    assert vestige("ingest", CASE, tmp_path / "x.jpg").exit_code == 0
    assert vestige("keys", "init").exit_code == 0
    bundle = tmp_path / "case.zip"
    assert vestige("report", CASE, "--format", "bundle", "--out", bundle).exit_code == 0
    with zipfile.ZipFile(bundle) as archive:
        name = next(n for n in archive.namelist() if n.startswith("originals/"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with zipfile.ZipFile(bundle, "a") as archive:
            archive.writestr(name, b"forged")
    result = vestige("verify", bundle)
    assert result.exit_code == 1
    assert "appears twice in the bundle" in result.stdout + result.stderr
