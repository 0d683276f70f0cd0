"""Checking an evidence bundle offline: every hash, the signature, the custody chain, the report.

The zip is read the way ingest reads archives (:mod:`vestige.evidence.archives`):
nothing is extracted to disk, member names that escape the archive, links,
encryption and oversized members refuse the whole bundle before any member
is read. Everything else that is wrong is collected, so one run names every
file that fails.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from vestige.core.errors import InvalidInputError
from vestige.evidence.archives import ArchiveLimits, read_member, scan_zip
from vestige.evidence.bundle import BUNDLE_FORMAT, BUNDLE_VERSION, CUSTODY_LOG, MANIFEST, PUBLIC_KEY, SIGNATURE
from vestige.evidence.custody import verify_events
from vestige.evidence.keys import fingerprint, read_public_key, signature_is_valid
from vestige.reports.jsonreport import report_problems

REPORT_JSON = "reports/report.json"


@dataclass
class BundleCheck:
    """What ``vestige verify`` found: ``problems`` as (file, sentence); ``notes`` are facts worth knowing."""

    path: str
    problems: list[tuple[str, str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    files_checked: int = 0
    key_fingerprint: str | None = None
    custody_events: int | None = None

    @property
    def ok(self) -> bool:
        return not self.problems

    def fail(self, name: str, sentence: str) -> None:
        self.problems.append((name, sentence))

    def to_dict(self) -> dict[str, Any]:
        return {"bundle": self.path, "ok": self.ok, "files_checked": self.files_checked,
                "key_fingerprint": self.key_fingerprint, "custody_events": self.custody_events,
                "problems": [{"file": f, "problem": p} for f, p in self.problems], "notes": self.notes}


def _read_members(path: Path, limits: ArchiveLimits, check: BundleCheck) -> dict[str, bytes]:
    members = scan_zip(path, str(path), limits)
    contents: dict[str, bytes] = {}
    for index, info in members:
        if info.filename in contents:  # a second member of one name would shadow the signed one
            check.fail(info.filename, "appears twice in the bundle: a member was added after signing")
            continue
        try:
            contents[info.filename] = read_member(path, info.filename, index, limits)
        except (zipfile.BadZipFile, zlib.error) as exc:
            check.fail(info.filename, f"is damaged inside the zip ({exc}): its bytes were altered")
    return contents


def _check_signature(contents: dict[str, bytes], public_key_pem: bytes | None, check: BundleCheck) -> None:
    manifest, signature_text = contents.get(MANIFEST), contents.get(SIGNATURE)
    if manifest is None or signature_text is None:
        return
    try:
        signature = base64.b64decode(signature_text.strip(), validate=True)
    except (binascii.Error, ValueError):
        signature = b""
    if len(signature) != 64:
        check.fail(SIGNATURE, "is not an Ed25519 signature (64 bytes in base64): it was altered")
        return
    if public_key_pem is not None:
        key = read_public_key(public_key_pem, "the public key file")
        shipped = contents.get(PUBLIC_KEY)
        if shipped is not None and shipped.strip() != public_key_pem.strip():
            check.notes.append(f"{PUBLIC_KEY} in the bundle is not the key given; the given key is the one that counts")
    elif PUBLIC_KEY in contents:
        key = read_public_key(contents[PUBLIC_KEY], PUBLIC_KEY)
        check.notes.append(f"signature checked with the key inside the bundle (fingerprint {fingerprint(key)}); "
                           "give the lab's published key with --public-key to know who signed it")
    else:
        check.fail(PUBLIC_KEY, "is missing and no --public-key was given: the signature cannot be checked")
        return
    check.key_fingerprint = fingerprint(key)
    if not signature_is_valid(key, signature, manifest):
        check.fail(SIGNATURE, f"does not verify {MANIFEST} with key {check.key_fingerprint[:16]}…: "
                              "the manifest or its signature was altered, or another key signed it")


def _check_files(contents: dict[str, bytes], manifest: dict[str, Any], check: BundleCheck) -> None:
    listed = set()
    for entry in manifest.get("files", []):
        name = str(entry.get("path"))
        listed.add(name)
        data = contents.get(name)
        if data is None:
            if not any(name == failed for failed, _ in check.problems):
                check.fail(name, "is listed in the manifest but missing from the bundle")
            continue
        actual = hashlib.sha256(data).hexdigest()
        if actual != entry.get("sha256") or len(data) != entry.get("size"):
            check.fail(name, f"has SHA-256 {actual[:16]}… ({len(data)} bytes) but the manifest says "
                             f"{str(entry.get('sha256'))[:16]}… ({entry.get('size')} bytes): it was altered")
        check.files_checked += 1
    for name in sorted(set(contents) - listed - {MANIFEST, SIGNATURE}):
        check.fail(name, "is not listed in the manifest: it was added after the bundle was signed")


def _check_custody(contents: dict[str, bytes], manifest: dict[str, Any], check: BundleCheck) -> None:
    if CUSTODY_LOG not in contents:
        return
    try:
        log = json.loads(contents[CUSTODY_LOG])
        events = [SimpleNamespace(**event) for event in log["events"]]
        chain = verify_events(log["case"], events, expected_count=manifest["custody"]["count"],
                              expected_head=manifest["custody"]["head"])
    except (ValueError, KeyError, TypeError) as exc:
        check.fail(CUSTODY_LOG, f"cannot be read as a custody log ({type(exc).__name__}: {exc})")
        return
    check.custody_events = chain.events
    if not chain.intact:
        check.fail(CUSTODY_LOG, f"custody chain broken: {chain.problem}")


def _check_report(contents: dict[str, bytes], manifest: dict[str, Any], check: BundleCheck) -> None:
    if REPORT_JSON not in contents:
        check.fail(REPORT_JSON, "is missing from the bundle")
        return
    try:
        report = json.loads(contents[REPORT_JSON])
    except ValueError as exc:
        check.fail(REPORT_JSON, f"is not valid JSON: {exc}")
        return
    problems = report_problems(report)
    if problems:
        check.fail(REPORT_JSON, f"does not match the report schema: {problems[0]}")
        return
    originals = {e["sha256"] for e in manifest.get("files", []) if e.get("role") == "original"}
    for image in report["images"]:
        if image["sha256"] not in originals:
            check.fail(REPORT_JSON, f"reports image {image['id']} ({image['sha256'][:16]}…), whose original is not in the bundle")


def verify_bundle(path: Path, *, public_key_pem: bytes | None = None, limits: ArchiveLimits = ArchiveLimits()) -> BundleCheck:
    """Check the bundle at ``path``; a hostile or unreadable zip raises, everything else is collected."""
    if not path.is_file():
        raise InvalidInputError(f"{path} is not a file")
    check = BundleCheck(str(path))
    contents = _read_members(path, limits, check)  # a hostile zip raises UnsafeArchiveError here
    for required in (MANIFEST, SIGNATURE):
        if required not in contents and not any(required == name for name, _ in check.problems):
            check.fail(required, "is missing: this is not a signed Vestige bundle")
    _check_signature(contents, public_key_pem, check)
    try:
        manifest = json.loads(contents[MANIFEST]) if MANIFEST in contents else None
    except ValueError as exc:
        check.fail(MANIFEST, f"is not valid JSON ({exc}): it was altered")
        manifest = None
    if manifest is None:
        return check
    if manifest.get("format") != BUNDLE_FORMAT or manifest.get("version") != BUNDLE_VERSION:
        check.fail(MANIFEST, f"is not a {BUNDLE_FORMAT} version {BUNDLE_VERSION} manifest")
        return check
    _check_files(contents, manifest, check)
    _check_custody(contents, manifest, check)
    _check_report(contents, manifest, check)
    return check
