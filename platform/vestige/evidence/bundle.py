"""The evidence bundle: a zip of the originals, the reports and the custody log, with a signed manifest.

Layout::

    README.txt                  how to check the bundle
    manifest.json               canonical JSON: every other file's path, role, SHA-256 and size,
                                the case, and the custody chain's head
    manifest.sig                base64 Ed25519 signature of manifest.json's bytes
    lab-public-key.pem          the signing key's public half (compare its fingerprint with the lab's)
    originals/<id>-<name>       the evidence files, byte for byte
    pictures/<sha256>.<ext>     the pictures the findings refer to, as stored (a deferred picture,
                                ``.pixels``, is raw pixels behind a one-line header: vestige.plugin.pixels;
                                the HTML and PDF reports show it rendered)
    reports/report.json|html|pdf
    custody/custody-log.json    every custody event as stored, so the chain can be recomputed offline

:func:`build_bundle` writes one; :mod:`vestige.evidence.bundleverify` checks one.
"""

from __future__ import annotations

import base64
import hashlib
import io
import re
import zipfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from vestige.evidence.custody import canonical_json
from vestige.evidence.keys import fingerprint, public_key_pem

BUNDLE_FORMAT = "vestige-evidence-bundle"
BUNDLE_VERSION = 1
MANIFEST = "manifest.json"
SIGNATURE = "manifest.sig"
PUBLIC_KEY = "lab-public-key.pem"
README = "README.txt"
CUSTODY_LOG = "custody/custody-log.json"
ROLES = ("original", "picture", "report", "custody", "key", "readme")
#: Files whose bytes are already compressed are stored, the rest deflated.
_STORED_SUFFIXES = (".jpg", ".jpeg", ".png", ".gif", ".webp", ".pdf", ".tif", ".tiff", ".bmp")
_EXTENSIONS = {"image/png": ".png", "image/jpeg": ".jpg", "image/svg+xml": ".svg", "image/webp": ".webp",
               "application/vnd.vestige.pixels": ".pixels"}
# A fixed timestamp: the signed manifest, not the zip's dates, says when the bundle was made.
_ZIP_DATE = (2000, 1, 1, 0, 0, 0)

_README = """Vestige evidence bundle for case {case}

Every file here is listed in manifest.json with its SHA-256 and size;
manifest.sig is the lab's Ed25519 signature of manifest.json. To check it all
offline (hashes, signature, custody chain, report against its schema):

    vestige verify {bundle_name} --public-key LAB-PUBLIC-KEY.pem

Use the public key the lab published, not only the one inside the bundle
(lab-public-key.pem, fingerprint {fingerprint}): anyone can sign a bundle
with a key of their own.
"""


@dataclass(frozen=True)
class BundleFile:
    path: str
    role: str
    data: bytes


def safe_member_name(name: str, limit: int = 100) -> str:
    """A file name that is safe in any zip reader: no folders, no odd characters."""
    base = name.replace("\\", "/").rsplit("/", 1)[-1]
    cleaned = re.sub(r"[^A-Za-z0-9._-]+", "_", base).strip("._") or "file"
    return cleaned[-limit:]


def original_path(image_id: int, filename: str) -> str:
    return f"originals/{image_id:06d}-{safe_member_name(filename)}"


def picture_path(sha256: str, media_type: str) -> str:
    return f"pictures/{sha256}{_EXTENSIONS.get(media_type, '.bin')}"


def custody_log_document(reference: str, events: Sequence[Any], head: str | None, count: int) -> dict[str, Any]:
    """The custody log as the bundle carries it: each event exactly as stored, ``details`` as its hashed text."""
    return {
        "case": reference,
        "head": head,
        "count": count,
        "events": [{"seq": e.seq, "at": e.at, "actor": e.actor, "action": e.action, "details": e.details,
                    "prev_hash": e.prev_hash, "hash": e.hash} for e in events],
    }


def _manifest(case: Mapping[str, Any], files: Sequence[BundleFile], *, created_at: str, created_by: str,
              custody: Mapping[str, Any], key_fingerprint: str) -> dict[str, Any]:
    return {
        "format": BUNDLE_FORMAT,
        "version": BUNDLE_VERSION,
        "case": {"reference": case["reference"], "title": case["title"]},
        "created_at": created_at,
        "created_by": created_by,
        "custody": {"head": custody["head"], "count": custody["count"]},
        "key": {"algorithm": "Ed25519", "fingerprint": key_fingerprint},
        "files": [{"path": f.path, "role": f.role, "sha256": hashlib.sha256(f.data).hexdigest(), "size": len(f.data)}
                  for f in sorted(files, key=lambda f: f.path)],
    }


def build_bundle(case: Mapping[str, Any], files: Sequence[BundleFile], *, custody: Mapping[str, Any],
                 created_at: str, created_by: str, signing_key: Ed25519PrivateKey,
                 bundle_name: str = "BUNDLE.zip") -> tuple[bytes, str]:
    """The zip's bytes and the base64 signature of its manifest.

    ``files`` are the originals, pictures and reports; the custody log, the
    public key and the README are added here.
    """
    key_fingerprint = fingerprint(signing_key.public_key())
    everything = list(files) + [
        BundleFile(CUSTODY_LOG, "custody", canonical_json(custody).encode("utf-8")),
        BundleFile(PUBLIC_KEY, "key", public_key_pem(signing_key.public_key())),
        BundleFile(README, "readme", _README.format(case=case["reference"], bundle_name=bundle_name,
                                                    fingerprint=key_fingerprint).encode("utf-8")),
    ]
    paths = [f.path for f in everything]
    if len(set(paths)) != len(paths):
        raise ValueError("two bundle files share a path")
    manifest = canonical_json(_manifest(case, everything, created_at=created_at, created_by=created_by,
                                        custody=custody, key_fingerprint=key_fingerprint)).encode("utf-8")
    signature = base64.b64encode(signing_key.sign(manifest)).decode("ascii")

    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        for path, data in [(MANIFEST, manifest), (SIGNATURE, (signature + "\n").encode("ascii"))] + [
            (f.path, f.data) for f in sorted(everything, key=lambda f: f.path)
        ]:
            info = zipfile.ZipInfo(path, date_time=_ZIP_DATE)
            info.compress_type = zipfile.ZIP_STORED if path.lower().endswith(_STORED_SUFFIXES) else zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            archive.writestr(info, data)
    return out.getvalue(), signature
