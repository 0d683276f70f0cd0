"""The lab key and the signed evidence bundle: made, verified offline, and every kind of tampering named."""

from __future__ import annotations

import json
import os
import stat
import zipfile

import pytest

from analysedcase import REFERENCE, add_finished_analysis, make_evidence
from vestige.core.workspace import Workspace


@pytest.fixture
def keyed(vestige, make_photo, config, tmp_path):
    """An analysed case, a lab key, and the lab's public key exported to a file."""
    make_evidence(vestige, make_photo)
    workspace = Workspace.open(config)
    add_finished_analysis(workspace)
    workspace.close()
    assert vestige("keys", "init").exit_code == 0
    public = tmp_path / "lab-public.pem"
    assert vestige("keys", "export", "--out", public).exit_code == 0
    return public


@pytest.fixture
def bundle(vestige, keyed, tmp_path):
    out = tmp_path / "case.zip"
    result = vestige("report", REFERENCE, "--format", "bundle", "--out", out)
    assert result.exit_code == 0, result.stderr
    return out


def rewrite_member(bundle, member, change):
    """Rewrite one member of the zip as a forger would: a valid zip whose member's bytes differ."""
    with zipfile.ZipFile(bundle) as archive:
        entries = [(info, archive.read(info)) for info in archive.infolist()]
    with zipfile.ZipFile(bundle, "w") as archive:
        for info, data in entries:
            archive.writestr(info, change(data) if info.filename == member else data)


def flip_one_byte(data: bytes, at: int | None = None) -> bytes:
    at = len(data) // 2 if at is None else at
    return data[:at] + bytes([data[at] ^ 0x01]) + data[at + 1:]


def test_keys_init_keeps_the_private_key_private(vestige, config):
    assert vestige("init").exit_code == 0
    created = vestige("keys", "init")
    assert created.exit_code == 0 and "fingerprint" in created.stdout
    private = config.data_dir / "keys" / "lab-ed25519.pem"
    assert stat.S_IMODE(private.stat().st_mode) == 0o600
    assert stat.S_IMODE(private.parent.stat().st_mode) == 0o700
    again = vestige("keys", "init")
    assert again.exit_code == 1 and "already exists" in again.stderr
    exported = vestige("keys", "export")
    assert exported.stdout.startswith("-----BEGIN PUBLIC KEY-----") and "PRIVATE" not in exported.stdout
    fingerprint = created.stdout.split("fingerprint ")[1].strip()
    assert fingerprint in vestige("keys", "show").stdout
    os.chmod(private, 0o644)
    loose = vestige("report", "ANY", "--format", "bundle", "--out", config.data_dir / "b.zip")
    assert loose.exit_code == 1 and "chmod 600" in loose.stderr


def test_a_bundle_holds_everything_and_verifies_offline(vestige, bundle, keyed, env, tmp_path):
    with zipfile.ZipFile(bundle) as archive:
        names = archive.namelist()
        manifest = json.loads(archive.read("manifest.json"))
    assert {"manifest.json", "manifest.sig", "lab-public-key.pem", "README.txt", "custody/custody-log.json",
            "reports/report.json", "reports/report.html", "reports/report.pdf"} <= set(names)
    assert sum(n.startswith("originals/") for n in names) == 3
    assert sum(n.startswith("pictures/") for n in names) == 1
    assert {f["path"] for f in manifest["files"]} == set(names) - {"manifest.json", "manifest.sig"}
    # Offline: another data directory, no database at all.
    env.update({"VESTIGE_DATA_DIR": str(tmp_path / "elsewhere"), "VESTIGE_DATABASE__URL": "sqlite:////nonexistent/x.db"})
    result = vestige("verify", bundle, "--public-key", keyed)
    assert result.exit_code == 0, result.stderr
    assert "bundle verified: 10 files match the signed manifest" in result.stdout
    assert "custody chain intact (7 events)" in result.stdout
    without_key = vestige("verify", bundle)
    assert without_key.exit_code == 0 and "key inside the bundle" in without_key.stdout


def test_the_bundle_export_is_recorded_with_its_signature(vestige, bundle, config):
    workspace = Workspace.open(config)
    with workspace.db.session() as session:
        from sqlalchemy import select

        from vestige.db.models import Report

        reports = session.execute(select(Report).order_by(Report.id)).scalars().all()
        assert [r.format for r in reports] == ["json", "html", "pdf", "bundle"]
        with zipfile.ZipFile(bundle) as archive:
            assert reports[-1].signature == archive.read("manifest.sig").decode().strip()
        assert workspace.store.get(reports[-1].blob_sha256) == bundle.read_bytes()
    workspace.close()


def _member(bundle, prefix):
    with zipfile.ZipFile(bundle) as archive:
        return next(n for n in archive.namelist() if n.startswith(prefix))


@pytest.mark.parametrize(
    ("prefix", "expected"),
    [
        ("originals/", "it was altered"),
        ("pictures/", "it was altered"),
        ("reports/report.json", "it was altered"),
        ("reports/report.pdf", "it was altered"),
        ("custody/custody-log.json", "it was altered"),
        ("manifest.json", "the manifest or its signature was altered"),
        ("manifest.sig", "altered"),
    ],
)
def test_one_altered_byte_anywhere_is_rejected_naming_the_file(vestige, bundle, keyed, prefix, expected):
    member = _member(bundle, prefix)
    at = 100 if prefix in ("manifest.json", "reports/report.json", "custody/custody-log.json") else None
    rewrite_member(bundle, member, lambda data: flip_one_byte(data, at))
    result = vestige("verify", bundle, "--public-key", keyed)
    assert result.exit_code == 1
    assert f"FAIL {member}: " in result.stderr and expected in result.stderr
    assert "bundle REJECTED" in result.stderr


def test_a_byte_flipped_in_the_zip_file_itself_is_named(vestige, bundle, keyed):
    member = _member(bundle, "originals/")
    with zipfile.ZipFile(bundle) as archive:
        info = archive.getinfo(member)
    raw = bytearray(bundle.read_bytes())
    header = info.header_offset + 30 + len(info.filename.encode()) + len(info.extra)
    raw[header + info.compress_size // 2] ^= 0xFF
    bundle.write_bytes(bytes(raw))
    result = vestige("verify", bundle, "--public-key", keyed)
    assert result.exit_code == 1 and f"FAIL {member}: is damaged inside the zip" in result.stderr
    as_json = vestige("verify", bundle, "--public-key", keyed, "--json")
    report = json.loads(as_json.stdout)
    assert as_json.exit_code == 1 and report["ok"] is False
    assert [p["file"] for p in report["problems"]] == [member]  # named once, not again as "missing"


def test_a_file_added_after_signing_and_another_signer_are_rejected(vestige, bundle, keyed, tmp_path):
    with zipfile.ZipFile(bundle, "a") as archive:
        archive.writestr("originals/999999-planted.jpg", b"not evidence")
    added = vestige("verify", bundle, "--public-key", keyed)
    assert added.exit_code == 1 and "FAIL originals/999999-planted.jpg: is not listed in the manifest" in added.stderr

    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from vestige.evidence.keys import public_key_pem

    stranger = tmp_path / "stranger.pem"
    stranger.write_bytes(public_key_pem(Ed25519PrivateKey.generate().public_key()))
    other = vestige("verify", bundle, "--public-key", stranger)
    assert other.exit_code == 1 and "FAIL manifest.sig: does not verify manifest.json" in other.stderr


@pytest.mark.parametrize(
    ("member", "message"),
    [("../escape.txt", "escapes the archive"), ("/etc/passwd", "absolute path")],
)
def test_a_hostile_bundle_is_refused_before_reading(vestige, tmp_path, member, message):
    hostile = tmp_path / "hostile.zip"
    with zipfile.ZipFile(hostile, "w") as archive:
        archive.writestr("manifest.json", "{}")
        archive.writestr(member, "x")
    result = vestige("verify", hostile)
    assert result.exit_code == 1 and message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
