"""Content Credentials, for real: files signed with c2pa-python's Builder under a certificate chain made here.

Each test signs with a root CA and an ES256 signing certificate created with
``cryptography``, then asks ``vestige detect --detector metadata --json``.
Nothing goes to the network: c2pa validates offline.
"""

from __future__ import annotations

import datetime as dt
import io
import json
from pathlib import Path

import c2pa
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from PIL import PngImagePlugin

from conftest import encode, photo

IPTC = "http://cv.iptc.org/newscodes/digitalsourcetype/"


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name),
                      x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Vestige Test Lab")])


def _key_usage(*, signing: bool) -> x509.KeyUsage:
    return x509.KeyUsage(digital_signature=signing, content_commitment=False, key_encipherment=False,
                         data_encipherment=False, key_agreement=False, key_cert_sign=not signing,
                         crl_sign=not signing, encipher_only=False, decipher_only=False)


def make_chain(root_name: str) -> dict[str, bytes]:
    """A root CA and an ES256 claim-signing certificate it issued: PEM chain, PEM key, PEM root."""
    now = dt.datetime.now(dt.timezone.utc)
    root_key = ec.generate_private_key(ec.SECP256R1())
    root = (
        x509.CertificateBuilder().subject_name(_name(root_name)).issuer_name(_name(root_name))
        .public_key(root_key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1)).not_valid_after(now + dt.timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(_key_usage(signing=False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(root_key.public_key()), critical=False)
        .sign(root_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    leaf = (
        x509.CertificateBuilder().subject_name(_name(f"{root_name} signer")).issuer_name(root.subject)
        .public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1)).not_valid_after(now + dt.timedelta(days=365))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_key_usage(signing=True), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.EMAIL_PROTECTION]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(root_key.public_key()), critical=False)
        .sign(root_key, hashes.SHA256())
    )
    pem = serialization.Encoding.PEM
    return {
        "chain": leaf.public_bytes(pem) + root.public_bytes(pem),
        "key": key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()),
        "root": root.public_bytes(pem),
    }


def sign(source: bytes, media_type: str, chain: dict[str, bytes], *, generator: str, source_type: str,
         agent: str | None = None, ingredient: bytes | None = None) -> bytes:
    """``source`` with a C2PA manifest whose ``c2pa.created`` action declares ``source_type``."""
    created = {"action": "c2pa.created", "digitalSourceType": IPTC + source_type}
    if agent:
        created["softwareAgent"] = {"name": agent}
    manifest = {
        "claim_generator_info": [{"name": generator, "version": "1.0"}],
        "title": "fixture",
        "assertions": [{"label": "c2pa.actions", "data": {"actions": [created]}}],
    }
    signer = c2pa.Signer.from_info(c2pa.C2paSignerInfo(c2pa.C2paSigningAlg.ES256, chain["chain"], chain["key"], None))
    out = io.BytesIO()
    with c2pa.Builder(manifest) as builder:
        if ingredient is not None:
            builder.add_ingredient({"title": "sketch.png", "relationship": "inputTo"}, "image/png", io.BytesIO(ingredient))
        builder.sign(signer, media_type, io.BytesIO(source), out)
    return out.getvalue()


def tamper(jpeg: bytes) -> bytes:
    """The same file with a few bits of the compressed pixels flipped: still decodes, no longer matches its hash."""
    scan = jpeg.rfind(b"\xff\xda")
    data = bytearray(jpeg)
    for i in range(scan + 40, scan + 60):
        data[i] ^= 0x01
    return bytes(data)


@pytest.fixture(scope="module")
def lab_chain() -> dict[str, bytes]:
    return make_chain("Vestige Test Root")


@pytest.fixture(scope="module")
def fixtures(lab_chain) -> dict[str, bytes]:
    """Every C2PA fixture, by file name."""
    stranger = make_chain("Unknown Root")
    camera_jpeg = encode(photo(11, 96), "JPEG", quality=90)
    capture = sign(camera_jpeg, "image/jpeg", lab_chain, generator="Vestige Test Camera", source_type="digitalCapture")
    return {
        "camera-signed.jpg": capture,
        "camera-signed-by-stranger.jpg": sign(camera_jpeg, "image/jpeg", stranger, generator="Vestige Test Camera",
                                              source_type="digitalCapture"),
        "camera-tampered.jpg": tamper(capture),
        "ai-signed.png": sign(encode(photo(12, 96), "PNG"), "image/png", lab_chain, generator="Test Image Service",
                              source_type="trainedAlgorithmicMedia", agent="Test Diffusion XL",
                              ingredient=encode(photo(13, 32), "PNG")),
        "unsigned.jpg": camera_jpeg,
    }


def detect(vestige, tmp_path: Path, files: dict[str, bytes]) -> dict[str, dict]:
    """Run ``vestige detect --detector metadata --json`` on the files; one row per file name."""
    paths = []
    for name, data in files.items():
        path = tmp_path / name
        path.write_bytes(data)
        paths.append(path)
    result = vestige("detect", *paths, "--detector", "metadata", "--json")
    assert result.exit_code == 0, result.stderr
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    return {Path(row["file"]).name: row for row in rows}


@pytest.fixture
def anchors(tmp_path, env, lab_chain) -> Path:
    """The lab's root configured as the only trust anchor, as a lab would: one environment variable."""
    path = tmp_path / "anchors.pem"
    path.write_bytes(lab_chain["root"])
    env["VESTIGE_PROVENANCE__TRUST_ANCHORS"] = str(path)
    return path


# file, validation state without anchors, with the lab's anchor, label with the lab's anchor, source
EXPECTED = [
    ("camera-signed.jpg", "Valid", "Trusted", "real", None),
    ("camera-signed-by-stranger.jpg", "Valid", "Valid", "unknown", None),
    ("camera-tampered.jpg", "Invalid", "Invalid", "unknown", None),
    ("ai-signed.png", "Valid", "Trusted", "synthetic", "test-diffusion-xl"),
    ("unsigned.jpg", None, None, "unknown", None),
]


def test_without_trust_anchors_nothing_is_real(vestige, tmp_path, fixtures):
    rows = detect(vestige, tmp_path, fixtures)
    for name, state, _, label, source in EXPECTED:
        credentials = rows[name]["evidence"]["content_credentials"]
        assert credentials.get("validation_state") == state, name
        assert credentials["trust_anchors_configured"] is False
        assert rows[name]["label"] == ("unknown" if label == "real" else label), name
        assert rows[name]["source"] == source


@pytest.mark.parametrize(("name", "state", "label", "source"), [(n, s, lab, src) for n, _, s, lab, src in EXPECTED],
                         ids=[e[0] for e in EXPECTED])
def test_with_the_labs_trust_anchor(vestige, tmp_path, fixtures, anchors, name, state, label, source):
    row = detect(vestige, tmp_path, {name: fixtures[name]})[name]
    credentials = row["evidence"]["content_credentials"]
    assert credentials["trust_anchors_configured"] is True
    assert credentials["present"] is (state is not None)
    assert credentials.get("validation_state") == state
    assert (row["label"], row["source"]) == (label, source)


def test_a_trusted_camera_manifest_is_described(vestige, tmp_path, fixtures, anchors):
    row = detect(vestige, tmp_path, {"camera-signed.jpg": fixtures["camera-signed.jpg"]})["camera-signed.jpg"]
    credentials = row["evidence"]["content_credentials"]
    assert credentials["active_manifest"].startswith("urn:c2pa:")
    assert credentials["claim_generator"] == "Vestige Test Camera 1.0"
    assert credentials["signer"]["common_name"] == "Vestige Test Root signer"
    assert credentials["signer"]["issuer"] == "Vestige Test Lab"
    assert credentials["actions"] == [{"action": "c2pa.created", "digital_source_type": "digitalCapture",
                                       "software_agent": None}]
    assert credentials["digital_source_type"] == "digitalCapture"
    assert credentials["errors"] == []
    assert row["evidence"]["signals"] == ["C2PA manifest signed by a trusted signer declares digitalCapture"]


def test_a_generator_manifest_names_the_generator_and_its_ingredients(vestige, tmp_path, fixtures):
    row = detect(vestige, tmp_path, {"ai-signed.png": fixtures["ai-signed.png"]})["ai-signed.png"]
    credentials = row["evidence"]["content_credentials"]
    assert credentials["ingredients"] == [{"title": "sketch.png", "relationship": "inputTo", "format": "image/png"}]
    assert credentials["actions"][0]["software_agent"] == "Test Diffusion XL"
    assert credentials["digital_source_type"] == "trainedAlgorithmicMedia"
    assert row["evidence"]["signals"] == ["C2PA manifest (Valid) declares trainedAlgorithmicMedia"]


def test_tampering_after_signing_is_reported_with_its_errors(vestige, tmp_path, fixtures, anchors):
    row = detect(vestige, tmp_path, {"t.jpg": fixtures["camera-tampered.jpg"]})["t.jpg"]
    credentials = row["evidence"]["content_credentials"]
    assert "assertion.dataHash.mismatch" in [e["code"] for e in credentials["errors"]]
    assert row["evidence"]["why_unknown"] == "a C2PA manifest is present but fails validation, so it proves nothing"


def test_an_untrusted_signer_is_named_as_the_reason(vestige, tmp_path, fixtures, anchors):
    row = detect(vestige, tmp_path, {"s.jpg": fixtures["camera-signed-by-stranger.jpg"]})["s.jpg"]
    assert "signingCredential.untrusted" in [e["code"] for e in row["evidence"]["content_credentials"]["errors"]]
    assert "no configured trust anchor" in row["evidence"]["why_unknown"]


@pytest.mark.parametrize(
    ("content", "message"),
    [(None, "cannot be read"), (b"not a certificate\n", "holds no PEM certificate")],
    ids=["missing file", "not PEM"],
)
def test_unusable_trust_anchors_stop_the_command_with_a_sentence(vestige, tmp_path, env, fixtures, content, message):
    path = tmp_path / "lab-roots.pem"
    if content is not None:
        path.write_bytes(content)
    env["VESTIGE_PROVENANCE__TRUST_ANCHORS"] = str(path)
    image = tmp_path / "unsigned.jpg"
    image.write_bytes(fixtures["unsigned.jpg"])
    result = vestige("detect", image, "--detector", "metadata", "--json")
    assert result.exit_code == 1
    assert result.stderr.startswith("error: provenance.trust_anchors names") and message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_a_format_without_content_credentials_is_not_an_error(vestige, tmp_path):
    row = detect(vestige, tmp_path, {"old.bmp": encode(photo(14), "BMP")})["old.bmp"]
    assert row["error"] is None and row["label"] == "unknown"
    assert row["evidence"]["content_credentials"] == {"present": False, "trust_anchors_configured": False,
                                                      "format_supported": False}


def test_a_trusted_capture_that_also_carries_a_generator_signature_is_a_conflict(vestige, tmp_path, lab_chain, anchors):
    info = PngImagePlugin.PngInfo()
    info.add_text("parameters", "a cat\nSteps: 20, Sampler: Euler a, Model: sd15")
    both = sign(encode(photo(15, 96), "PNG", pnginfo=info), "image/png", lab_chain, generator="Vestige Test Camera",
                source_type="digitalCapture")
    row = detect(vestige, tmp_path, {"both.png": both})["both.png"]
    assert row["evidence"]["content_credentials"]["validation_state"] == "Trusted"
    assert row["evidence"]["signals"] == ["text chunk written by automatic1111"]
    assert (row["label"], row["source"]) == ("unknown", None)
    assert row["evidence"]["why_unknown"].endswith("they conflict")
