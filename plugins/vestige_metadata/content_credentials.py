"""C2PA Content Credentials, read and validated with c2pa-python.

A manifest is a signed claim about how a file was made. The signature and the
hash of the pixels are checked by the library; whether the signer is anyone
the lab trusts depends on the trust anchors the lab configures
(``[provenance] trust_anchors``, a PEM file of root certificates). Without
anchors a good signature is ``Valid`` (intact, signer unknown); with an anchor
the signer chains to it is ``Trusted``; a broken hash or signature is
``Invalid``. No manifest at all is the common case and is not an error.

Nothing here fetches from the network: remote manifests and OCSP are off.
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import c2pa

from vestige.plugin import VestigeError
from vestige_metadata.generator_tags import (
    CAPTURE_SOURCE_TYPES,
    SYNTHETIC_SOURCE_TYPES,
    clip_text,
    software_signature,
    source_type_name,
)

#: Validation states of c2pa-rs, weakest first.
VALIDATION_STATES = ("Invalid", "Valid", "Trusted")
#: Items of each list kept in evidence (actions, ingredients, errors).
LIST_LIMIT = 20


class TrustAnchorsError(VestigeError):
    """The configured trust anchors cannot be used."""


def load_trust_anchors(path: str) -> str | None:
    """The PEM text of the configured trust anchors file, ``None`` when none is configured."""
    if not path:
        return None
    file = Path(path).expanduser()
    try:
        text = file.read_text(encoding="ascii")
    except (OSError, UnicodeDecodeError) as exc:
        reason = getattr(exc, "strerror", None) or "it is not a PEM text file"
        raise TrustAnchorsError(f"provenance.trust_anchors names {file}, which cannot be read ({reason}); "
                                "point it to a PEM file of root certificates or leave it empty") from None
    if "-----BEGIN CERTIFICATE-----" not in text:
        raise TrustAnchorsError(f"provenance.trust_anchors names {file}, which holds no PEM certificate; "
                                "point it to a PEM file of root certificates or leave it empty")
    return text


def make_context(trust_anchors_pem: str | None) -> c2pa.Context:
    """A c2pa context that never goes online and trusts exactly the lab's anchors."""
    settings: dict[str, Any] = {"verify": {"remote_manifest_fetch": False, "ocsp_fetch": False}}
    if trust_anchors_pem:
        settings["trust"] = {"trust_anchors": trust_anchors_pem}
        settings["verify"]["verify_trust"] = True
    try:
        return c2pa.Context.from_dict(settings)
    except c2pa.C2paError as exc:
        raise TrustAnchorsError(f"the c2pa library refused the configured trust anchors: {clip_text(str(exc), 200)}") from None


@dataclass
class ContentCredentials:
    """What the manifest store says, reduced to JSON-safe, bounded evidence."""

    evidence: dict[str, Any]
    #: ``Invalid``, ``Valid``, ``Trusted``, or ``None`` without a manifest.
    state: str | None = None
    source: str | None = None
    declares_synthetic: bool = False
    declares_capture: bool = False
    signals: list[str] = field(default_factory=list)

    @property
    def intact(self) -> bool:
        """A manifest whose signature and hashes check out (trusted signer or not)."""
        return self.state in ("Valid", "Trusted")


def _action_summary(action: dict[str, Any]) -> dict[str, Any]:
    agent = action.get("softwareAgent")
    if isinstance(agent, dict):
        agent = agent.get("name")
    return {
        "action": clip_text(str(action.get("action", "")), 80),
        "digital_source_type": source_type_name(action.get("digitalSourceType")),
        "software_agent": clip_text(str(agent), 120) if agent else None,
    }


def _actions(manifest: dict[str, Any]) -> list[dict[str, Any]]:
    actions = []
    for assertion in manifest.get("assertions") or []:
        if str(assertion.get("label", "")).startswith("c2pa.actions"):
            actions += [a for a in (assertion.get("data") or {}).get("actions") or [] if isinstance(a, dict)]
    return [_action_summary(a) for a in actions]


def _claim_generator(manifest: dict[str, Any]) -> str | None:
    info = manifest.get("claim_generator_info") or []
    if info and isinstance(info[0], dict) and info[0].get("name"):
        version = info[0].get("version")
        return clip_text(f"{info[0]['name']} {version}" if version else str(info[0]["name"]), 120)
    generator = manifest.get("claim_generator")
    return clip_text(str(generator), 120) if generator else None


def _signer(manifest: dict[str, Any]) -> dict[str, Any] | None:
    info = manifest.get("signature_info")
    if not isinstance(info, dict):
        return None
    keys = ("issuer", "common_name", "alg", "cert_serial_number", "time")
    return {k: clip_text(str(info[k]), 200) for k in keys if info.get(k) is not None}


def _errors(store: dict[str, Any]) -> list[dict[str, str]]:
    results = store.get("validation_results") or {}
    failures = (results.get("activeManifest") or {}).get("failure")
    if failures is None:
        failures = store.get("validation_status") or []
    return [{"code": str(f.get("code")), "explanation": clip_text(str(f.get("explanation", "")), 200)}
            for f in failures[:LIST_LIMIT] if isinstance(f, dict)]


def _slug(name: str) -> str:
    return "-".join("".join(c if c.isalnum() else " " for c in name.lower()).split())[:64] or "unknown-generator"


def read_content_credentials(data: bytes, media_type: str | None, context: c2pa.Context, *,
                             anchors_configured: bool) -> ContentCredentials:
    """The active manifest of ``data`` and its validation, or ``present: False`` without one."""
    evidence: dict[str, Any] = {"present": False, "trust_anchors_configured": anchors_configured}
    try:
        reader = c2pa.Reader.try_create(media_type, io.BytesIO(data), None, context)
    except c2pa.C2paError.NotSupported:
        evidence["format_supported"] = False
        return ContentCredentials(evidence=evidence)
    except c2pa.C2paError as exc:
        # The container itself could not be parsed: whether a manifest is in it is not known.
        evidence.update(present=None, read_error=clip_text(str(exc), 200))
        return ContentCredentials(evidence=evidence)
    if reader is None:
        return ContentCredentials(evidence=evidence)
    try:
        with reader:
            store = json.loads(reader.json())
    except c2pa.C2paError as exc:
        evidence.update(present=None, read_error=clip_text(str(exc), 200))
        return ContentCredentials(evidence=evidence)
    label = store.get("active_manifest")
    manifest = (store.get("manifests") or {}).get(label) or {}
    state = store.get("validation_state")
    state = state if state in VALIDATION_STATES else "Invalid"
    actions = _actions(manifest)
    types = [a["digital_source_type"] for a in actions if a["digital_source_type"]]
    ingredients = [
        {"title": clip_text(str(i.get("title", "")), 120), "relationship": i.get("relationship"), "format": i.get("format")}
        for i in (manifest.get("ingredients") or [])[:LIST_LIMIT] if isinstance(i, dict)
    ]
    generator = _claim_generator(manifest)
    evidence.update(
        present=True,
        active_manifest=label,
        manifests=len(store.get("manifests") or {}),
        claim_generator=generator,
        signer=_signer(manifest),
        actions=actions[:LIST_LIMIT],
        digital_source_type=types[0] if types else None,
        ingredients=ingredients,
        validation_state=state,
        errors=_errors(store),
    )
    found = ContentCredentials(evidence=evidence, state=state)
    agents = [a["software_agent"] for a in actions if a["software_agent"]]
    named = [software_signature(n) for n in agents + ([generator] if generator else [])]
    found.declares_synthetic = any(t in SYNTHETIC_SOURCE_TYPES for t in types) or any(named)
    found.declares_capture = any(t in CAPTURE_SOURCE_TYPES for t in types) and not found.declares_synthetic
    if found.declares_synthetic:
        found.source = next((n for n in named if n), None) or _slug(agents[0] if agents else generator or "")
        if found.intact:
            ai_type = next((t for t in types if t in SYNTHETIC_SOURCE_TYPES), None)
            found.signals.append(f"C2PA manifest ({state}) declares {ai_type or 'a generator'}")
    return found
