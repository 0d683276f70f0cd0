"""Ingest as a user runs it: files, folders, zips, duplicates, near-duplicates, refusals."""

from __future__ import annotations

import json
import os
import struct
import zipfile
import zlib
from pathlib import Path

import pytest
import sqlalchemy as sa

from conftest import encode, photo
from vestige.db import Base

CASE = "LAB-2026-0042"


@pytest.fixture
def case(vestige):
    assert vestige("init").exit_code == 0
    assert vestige("case", "new", "--ref", CASE, "--title", "Forum post images").exit_code == 0
    return CASE


def snapshot(config) -> tuple:
    """Every row of every table, and every file of the store."""
    from vestige.db import Database

    db = Database.from_url(config.database_url)
    with db.engine.connect() as conn:
        rows = {t: sorted(map(tuple, conn.execute(sa.select(Base.metadata.tables[t])).all()), key=repr)
                for t in Base.metadata.tables}
    db.dispose()
    files = sorted(str(p) for p in config.store_path.rglob("*") if p.is_file())
    return rows, files


def images_json(vestige) -> list[dict]:
    result = vestige("images", CASE, "--json")
    assert result.exit_code == 0, result.stderr
    return json.loads(result.stdout)


def huge_png(path: Path, side: int = 60_000) -> None:
    """A valid 1-bit PNG of side×side pixels, a few hundred kB on disk (a decompression bomb)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    compressor = zlib.compressobj(9)
    row = b"\x00" * (1 + side // 8)
    body = b"".join(compressor.compress(row) for _ in range(side)) + compressor.flush()
    header = struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", body) + chunk(b"IEND", b""))


def hostile_zip(path: Path) -> None:
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("fine.jpg", encode(photo(3)))
        archive.writestr("../../etc/cron.d/evil.jpg", encode(photo(4)))


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def _made(path: Path, make) -> Path:
    make(path)
    return path


BAD_INPUTS = {
    "truncated JPEG": lambda p: _write(p / "cut.jpg", encode(photo(5, 128))[:1500]),
    "60,000×60,000 PNG": lambda p: _made(p / "bomb.png", huge_png),
    "zip with ../ members": lambda p: _made(p / "evil.zip", hostile_zip),
    "text file named .jpg": lambda p: _write(p / "notes.jpg", b"these are my notes\n"),
    "nonexistent path": lambda p: p / "missing.jpg",
    "broken symbolic link": lambda p: _made(p / "link.jpg", lambda link: os.symlink(p / "gone.jpg", link)),
}
EXPECTED = {
    "truncated JPEG": "cut.jpg is truncated or corrupt",
    "60,000×60,000 PNG": "bomb.png is 60000x60000 (3,600,000,000 pixels), more than the limit",
    "zip with ../ members": "escapes the archive with '..'",
    "text file named .jpg": "it looks like text, not an image",
    "nonexistent path": "missing.jpg does not exist",
    "broken symbolic link": "link.jpg is a broken symbolic link",
}


@pytest.mark.parametrize("kind", list(BAD_INPUTS))
def test_bad_input_gives_one_line_and_changes_nothing(vestige, case, config, tmp_path, kind):
    vestige("ingest", CASE, photo_file(tmp_path, "first.jpg", 1))  # something already in the case
    before = snapshot(config)
    path = BAD_INPUTS[kind](tmp_path)
    result = vestige("ingest", CASE, path)
    assert result.exit_code == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, lines
    assert EXPECTED[kind] in lines[0]
    assert "Traceback" not in result.stderr
    assert snapshot(config) == before


def test_unknown_case_gives_one_line_and_changes_nothing(vestige, case, config, tmp_path):
    before = snapshot(config)
    result = vestige("ingest", "LAB-NOPE", photo_file(tmp_path, "a.jpg", 1))
    assert result.exit_code == 1
    assert result.stderr.strip() == "error: no case 'LAB-NOPE'; `vestige case list` shows the cases"
    assert snapshot(config) == before


def test_an_unreadable_argument_stops_before_anything_is_written(vestige, case, config, tmp_path):
    good = photo_file(tmp_path, "good.jpg", 1)
    before = snapshot(config)
    result = vestige("ingest", CASE, good, tmp_path / "nope")
    assert result.exit_code == 1 and "nope does not exist" in result.stderr
    assert snapshot(config) == before


def photo_file(folder: Path, name: str, seed: int, fmt: str = "JPEG", size: int = 96, **kwargs) -> Path:
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(encode(photo(seed, size), fmt, **kwargs))
    return path


def test_files_folders_and_zips_are_ingested_with_their_records(vestige, case, tmp_path):
    folder = tmp_path / "photos"
    photo_file(folder, "one.jpg", 1, quality=70)
    photo_file(folder / "nested" / "deeper", "two.png", 2, fmt="PNG")
    photo_file(folder, "three.webp", 3, fmt="WEBP")
    archive = tmp_path / "suspicious.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("inside/four.bmp", encode(photo(4, 96), "BMP"))
        zf.writestr("inside/five.tiff", encode(photo(5, 96), "TIFF"))
        zf.writestr("inside/six.gif", encode(photo(6, 96), "GIF"))
    single = photo_file(tmp_path, "img.png", 7, fmt="PNG")

    result = vestige("ingest", CASE, folder, archive, single, "--source", "forum thread 118", "--by", "A. Examiner")
    assert result.exit_code == 0, result.stderr
    assert result.stdout.strip().startswith("ingested 7, duplicates 0, rejected 0")

    rows = images_json(vestige)
    assert sorted(r["format"] for r in rows) == ["BMP", "GIF", "JPEG", "PNG", "PNG", "TIFF", "WEBP"]
    assert {r["filename"] for r in rows} >= {"inside/four.bmp", str(folder / "nested" / "deeper" / "two.png")}
    assert all(r["width"] == 96 and r["height"] == 96 and len(r["sha256"]) == 64 for r in rows)

    jpeg = next(r for r in rows if r["format"] == "JPEG")
    record = json.loads(vestige("image", "show", str(jpeg["id"]), "--json").stdout)
    assert record["source"] == "forum thread 118" and record["acquired_by"] == "A. Examiner"
    assert set(record["hashes"]) == {"phash", "dhash", "whash", "colorhash"}
    estimated = [s for s in record["perturbations"]["history"] if s["basis"] == "estimated"]
    assert estimated[0]["operations"][0]["op"] == "jpeg"
    assert estimated[0]["operations"][0]["params"] == {"quality": 70}

    zipped = next(r for r in rows if r["format"] == "BMP")
    record = json.loads(vestige("image", "show", str(zipped["id"]), "--json").stdout)
    assert record["occurrences"][0]["container"] == str(archive)


def test_exact_duplicates_are_linked_not_stored_twice(vestige, case, config, tmp_path):
    first = photo_file(tmp_path, "a.jpg", 1)
    copy = tmp_path / "copy-of-a.jpg"
    copy.write_bytes(first.read_bytes())
    result = vestige("ingest", CASE, first, copy)
    assert result.stdout.startswith("ingested 1, duplicates 1, rejected 0")
    again = vestige("ingest", CASE, first, "--source", "second visit")
    assert again.stdout.startswith("ingested 0, duplicates 1")
    rows = images_json(vestige)
    assert len(rows) == 1 and rows[0]["duplicates"] == 2
    record = json.loads(vestige("image", "show", str(rows[0]["id"]), "--json").stdout)
    assert [o["source"] for o in record["occurrences"]] == ["", "", "second visit"]
    blobs = [p for p in config.store_path.rglob("*") if p.is_file()]
    assert len(blobs) == 1


def test_near_duplicates_across_cases_are_observed_links(vestige, case, tmp_path):
    original = photo_file(tmp_path, "orig.png", 11, fmt="PNG", size=128)
    assert vestige("ingest", CASE, original).exit_code == 0
    assert vestige("case", "new", "--ref", "LAB-OTHER", "--title", "another case").exit_code == 0
    from PIL import Image

    reshared = tmp_path / "reshared.jpg"
    Image.open(original).convert("RGB").save(reshared, quality=60)
    unrelated = photo_file(tmp_path, "unrelated.jpg", 99, size=128)
    assert vestige("ingest", "LAB-OTHER", reshared, unrelated).exit_code == 0

    other = {Path(r["filename"]).name: r for r in json.loads(vestige("images", "LAB-OTHER", "--json").stdout)}
    record = json.loads(vestige("image", "show", str(other["reshared.jpg"]["id"]), "--json").stdout)
    observed = [s for s in record["perturbations"]["history"] if s["basis"] == "observed"]
    assert len(observed) == 1
    assert observed[0]["parent"]["case"] == CASE and observed[0]["distance"] <= 8
    assert other["unrelated.jpg"]["near_duplicates"] == 0
    # The original sees its re-shared copy as a derivative.
    original_row = images_json(vestige)[0]
    assert original_row["near_duplicates"] == 1
    text = vestige("image", "show", str(original_row["id"])).stdout
    assert "observed: near-duplicate image" in text and "LAB-OTHER" in text


def test_a_batch_reports_each_rejection_and_keeps_the_good_files(vestige, case, tmp_path):
    good = photo_file(tmp_path, "good.jpg", 1)
    bad = tmp_path / "bad.jpg"
    bad.write_text("not an image")
    result = vestige("ingest", CASE, good, bad, "--json")
    assert result.exit_code == 1
    summary = json.loads(result.stdout)
    assert len(summary["ingested"]) == 1
    assert summary["rejected"] == [{"file": str(bad), "reason": f"{bad} is not a supported image type (JPEG, PNG, WebP, TIFF, BMP, GIF, AVIF); it looks like text, not an image."}]
    assert result.stderr.strip().startswith("rejected: ")


@pytest.mark.parametrize(
    ("setting", "builder", "message"),
    [
        ("VESTIGE_INGEST__ARCHIVE_MAX_MEMBERS", lambda z: [z.writestr(f"m{i}.txt", "x") for i in range(5)], "5 members, more than the limit of 3"),
        ("VESTIGE_INGEST__ARCHIVE_MAX_TOTAL_BYTES", lambda z: [z.writestr(f"m{i}.bin", b"\0" * 2000) for i in range(2)], "expands to 4000 bytes"),
        ("VESTIGE_INGEST__ARCHIVE_MAX_MEMBER_BYTES", lambda z: z.writestr("big.bin", b"\0" * 5000), "declares 5000 bytes"),
    ],
)
def test_archive_limits(vestige, case, tmp_path, monkeypatch, env, setting, builder, message):
    env[setting] = "3" if "MEMBERS" in setting else "3000"
    path = tmp_path / "many.zip"
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        builder(archive)
    result = vestige("ingest", CASE, path)
    assert result.exit_code == 1 and message in result.stderr


def test_symlink_members_are_refused(vestige, case, tmp_path):
    path = tmp_path / "links.zip"
    with zipfile.ZipFile(path, "w") as archive:
        info = zipfile.ZipInfo("link.jpg")
        info.external_attr = (0o120777 << 16)
        archive.writestr(info, "/etc/passwd")
    result = vestige("ingest", CASE, path)
    assert result.exit_code == 1 and "is a symbolic link" in result.stderr


def test_a_closed_case_takes_no_evidence(vestige, case, tmp_path):
    assert vestige("case", "close", CASE).exit_code == 0
    result = vestige("ingest", CASE, photo_file(tmp_path, "a.jpg", 1))
    assert result.exit_code == 1 and "is closed" in result.stderr


def test_ingest_is_in_the_custody_chain(vestige, case, tmp_path):
    vestige("ingest", CASE, photo_file(tmp_path, "a.jpg", 1), photo_file(tmp_path, "b.jpg", 2))
    verify = vestige("custody", "verify", CASE)
    assert verify.exit_code == 0 and verify.stdout.startswith("chain intact: 3 events; ")
    actions = [e["action"] for e in json.loads(vestige("custody", "log", CASE, "--json").stdout)]
    assert actions == ["case.opened", "image.ingested", "image.ingested"]


def test_images_table_lists_the_columns(vestige, case, tmp_path):
    vestige("ingest", CASE, photo_file(tmp_path, "a.jpg", 1))
    header = vestige("images", CASE).stdout.splitlines()[0].split()
    assert header == ["id", "sha256", "size", "format", "dimensions", "duplicates", "near-dups", "file"]


def test_unknown_image_id(vestige, case):
    result = vestige("image", "show", "4242")
    assert result.exit_code == 1 and result.stderr.strip().startswith("error: no image with id 4242")
