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


def _ingest_at_once(workspace, references: list[str], path: Path, monkeypatch) -> list[object]:
    """Ingest ``path`` into each case from its own thread and session, both past the duplicate check at once.

    The store's ``put`` runs after an ingest has looked for an existing image and
    before it records the blob: a barrier there makes the two ingests meet in the
    window a real race hits by chance. An ingest that must wait for the other
    (the fix serialises them) gives up on the barrier after two seconds.
    """
    import threading

    import sqlalchemy as sa

    from vestige.db.models import Case
    from vestige.evidence.ingest import Acquisition, Ingester

    barrier = threading.Barrier(len(references))
    put = type(workspace.store).put

    def put_together(store, data):
        try:
            barrier.wait(timeout=2)
        except threading.BrokenBarrierError:
            pass
        return put(store, data)

    monkeypatch.setattr(type(workspace.store), "put", put_together)
    outcomes: list[object] = [None] * len(references)

    def run(position: int, reference: str) -> None:
        try:
            with workspace.db.session() as session:
                case = session.execute(sa.select(Case).where(Case.reference == reference)).scalar_one()
                acquisition = Acquisition(source=f"thread {position}", actor=f"examiner {position}")
                outcomes[position] = Ingester(workspace, session, case, acquisition).ingest_paths([path]).to_dict()
        except Exception as exc:  # the failure under test: reported, not raised in the thread
            outcomes[position] = exc

    threads = [threading.Thread(target=run, args=(i, ref)) for i, ref in enumerate(references)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return outcomes


def test_two_ingests_of_one_file_at_once_record_both_acquisitions(workspace, tmp_path, monkeypatch):
    import sqlalchemy as sa

    from vestige.db.models import Case, Image, ImageOccurrence
    from vestige.evidence.cases import create_case
    from vestige.evidence.custody import verify_chain

    with workspace.db.session() as session:
        create_case(session, reference=CASE, title="Race", actor="tester")
    path = tmp_path / "same.jpg"
    path.write_bytes(encode(photo(21, 96)))
    outcomes = _ingest_at_once(workspace, [CASE, CASE], path, monkeypatch)
    assert not [o for o in outcomes if isinstance(o, Exception)], outcomes
    assert sorted((len(o["ingested"]), len(o["duplicates"])) for o in outcomes) == [(0, 1), (1, 0)]
    with workspace.db.session() as session:
        assert session.scalar(sa.select(sa.func.count()).select_from(Image)) == 1
        sources = session.scalars(sa.select(ImageOccurrence.source).order_by(ImageOccurrence.source)).all()
        assert sources == ["thread 0", "thread 1"]
        case = session.execute(sa.select(Case).where(Case.reference == CASE)).scalar_one()
        assert verify_chain(session, case).intact


def test_one_file_ingested_into_two_cases_at_once_shares_its_blob(workspace, tmp_path, monkeypatch):
    import sqlalchemy as sa

    from vestige.db.models import Blob, Image
    from vestige.evidence.cases import create_case

    with workspace.db.session() as session:
        create_case(session, reference="RACE-1", title="Race one", actor="tester")
        create_case(session, reference="RACE-2", title="Race two", actor="tester")
    path = tmp_path / "same.jpg"
    path.write_bytes(encode(photo(22, 96)))
    outcomes = _ingest_at_once(workspace, ["RACE-1", "RACE-2"], path, monkeypatch)
    assert not [o for o in outcomes if isinstance(o, Exception)], outcomes
    assert [len(o["ingested"]) for o in outcomes] == [1, 1]
    with workspace.db.session() as session:
        assert session.scalar(sa.select(sa.func.count()).select_from(Image)) == 2
        assert session.scalar(sa.select(sa.func.count()).select_from(Blob)) == 1


def deep_png(path: Path, side: int, *, bit_depth: int = 16, colour_type: int = 6) -> None:
    """A valid PNG of side×side pixels at ``bit_depth`` per channel (6: RGBA), all zero: small on disk, huge decoded."""
    import struct
    import zlib

    channels = {0: 1, 2: 3, 4: 2, 6: 4}[colour_type]

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    compressor = zlib.compressobj(9)
    row = b"\x00" * (1 + side * channels * bit_depth // 8)
    body = b"".join(compressor.compress(row) for _ in range(side)) + compressor.flush()
    header = struct.pack(">IIBBBBB", side, side, bit_depth, colour_type, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", body) + chunk(b"IEND", b""))


def test_a_deep_png_under_the_pixel_limit_is_refused_quickly_by_its_decoded_bytes(vestige, case, tmp_path):
    import time

    path = tmp_path / "deep.png"
    deep_png(path, 9990)  # 99.8 M pixels, under ingest.max_pixels; 16-bit RGBA: 8 bytes each
    assert path.stat().st_size < 2 * 2**20
    started = time.monotonic()
    result = vestige("ingest", CASE, path)
    elapsed = time.monotonic() - started
    assert result.exit_code == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr
    assert "deep.png is 9990x9990 at 64 bits per pixel" in lines[0] and "(ingest.max_decoded_bytes)" in lines[0]
    assert elapsed < 5, elapsed
    assert images_json(vestige) == []


def test_the_decoded_size_counts_bit_depth_and_channels(tmp_path):
    from vestige.core.errors import InvalidImageError
    from vestige.evidence.imagefile import ImageLimits, inspect_image

    path = tmp_path / "small.png"
    deep_png(path, 64)  # 64×64 16-bit RGBA: 32 KiB decoded
    limits = ImageLimits(max_pixels=64 * 64, max_decoded_bytes=64 * 64 * 8)
    assert inspect_image(path.read_bytes(), name="small.png", limits=limits).width == 64
    with pytest.raises(InvalidImageError, match=r"small.png is 64x64 at 64 bits per pixel \(32 KiB decoded\)"):
        inspect_image(path.read_bytes(), name="small.png", limits=ImageLimits(max_decoded_bytes=64 * 64 * 8 - 1))
    deep_png(path, 64, bit_depth=8, colour_type=2)  # 8-bit RGB: counted as Pillow holds it, 4 bytes a pixel
    assert inspect_image(path.read_bytes(), name="small.png", limits=ImageLimits(max_decoded_bytes=64 * 64 * 4)).width == 64
    with pytest.raises(InvalidImageError, match="at 32 bits per pixel"):
        inspect_image(path.read_bytes(), name="small.png", limits=ImageLimits(max_decoded_bytes=64 * 64 * 4 - 1))


def test_control_bidi_and_undecodable_bytes_in_a_file_name_are_escaped_and_kept(vestige, case, tmp_path):
    import os

    raw = os.fsencode(tmp_path) + b"/odd\x01\xff-\xe2\x80\xaegpj.jpg"
    with open(raw, "wb") as fh:
        fh.write(encode(photo(23, 96)))
    result = vestige("ingest", CASE, os.fsdecode(raw))
    assert result.exit_code == 0, result.stderr
    (row,) = images_json(vestige)
    record = json.loads(vestige("image", "show", str(row["id"]), "--json").stdout)
    (occurrence,) = record["occurrences"]
    assert occurrence["filename"] == f"{tmp_path}/odd\\x01\\xff-\\u202egpj.jpg"
    assert bytes.fromhex(occurrence["filename_bytes_hex"]) == raw
    event = json.loads(vestige("custody", "log", CASE, "--json").stdout)[-1]
    assert event["details"]["file"] == occurrence["filename"] and event["details"]["file_bytes_hex"] == raw.hex()


def test_thumbnails_of_large_jpegs_are_decoded_at_a_reduced_scale():
    from vestige.evidence.imagefile import open_image
    from vestige.reports.pictures import thumbnail_jpeg

    data = encode(photo(24, 2048), quality=90)
    whole = open_image(data, name="big.jpg")
    assert whole.size == (2048, 2048)
    reduced = open_image(data, name="big.jpg", max_side=256)
    assert reduced.size == (256, 256)  # the JPEG decoder's 1/8 scale: 1/64 of the pixels decoded
    from PIL import Image
    import io

    assert Image.open(io.BytesIO(thumbnail_jpeg(data, side=256))).size == (256, 256)
