"""The artifacts shipped inside the plugin, and how a maintainer ships one.

``weights/manifest.json`` names the ``default`` entry (what the detector runs
with when the lab has chosen none) and, under ``artifacts``, one entry per
shipped file: ``file`` (``<name>-<sha256[:8]>.safetensors``), ``sha256``,
``size``, ``variant``, ``immunized``, ``train_command``, ``dataset_sha256`` and
the validation ``metrics``. Every read hashes the file against the manifest.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from vestige.errors import InvalidInputError, NotFoundError
from vestige.training import ArtifactFile, read_artifact_file, unpack_artifact

WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"
MANIFEST = "manifest.json"


def read_manifest(folder: Path = WEIGHTS_DIR) -> dict[str, Any]:
    """The manifest of ``folder``, or an empty one when the plugin ships nothing."""
    path = folder / MANIFEST
    if not path.is_file():
        return {"default": None, "artifacts": {}}
    try:
        manifest = json.loads(path.read_text())
    except ValueError:
        raise InvalidInputError(f"{path} is not valid JSON; reinstall the plugin") from None
    manifest.setdefault("artifacts", {})
    return manifest


def shipped(name: str | None = None, folder: Path = WEIGHTS_DIR) -> ArtifactFile | None:
    """The shipped artifact ``name`` (default: the manifest's default), hash-verified; ``None`` if none ships."""
    manifest = read_manifest(folder)
    name = name or manifest.get("default")
    if not name:
        return None
    entry = manifest["artifacts"].get(name)
    if entry is None:
        known = ", ".join(sorted(manifest["artifacts"])) or "none"
        raise NotFoundError(f"the fingerprint plugin ships no artifact {name!r}; it ships: {known}")
    path = folder / entry["file"]
    if not path.is_file():
        raise NotFoundError(f"shipped model artifact {path} is missing; reinstall the plugin")
    return read_artifact_file(path, origin="shipped", expected_sha256=entry["sha256"])


def ship(artifact: Path, name: str, record: dict[str, Any], *, make_default: bool = False,
         folder: Path = WEIGHTS_DIR) -> dict[str, Any]:
    """Copy ``artifact`` into ``folder`` as ``<name>-<sha8>.safetensors`` and record it in the manifest.

    ``record`` is what ``vestige train ... --json`` printed for it (metrics,
    info with the train command, dataset hash); its SHA-256 must match.
    """
    data = artifact.read_bytes()
    digest = hashlib.sha256(data).hexdigest()
    if record.get("sha256") not in (None, digest):
        raise InvalidInputError(f"{artifact} has SHA-256 {digest[:12]}…, but the record describes {record['sha256'][:12]}…")
    header = unpack_artifact(data, name=str(artifact))
    if header["detector"] != "fingerprint":
        raise InvalidInputError(f"{artifact} is an artifact for {header['detector']!r}, not fingerprint")
    info = header.get("info", {})
    record_info = record.get("info") or {}
    manifest = read_manifest(folder)
    old = manifest["artifacts"].get(name)
    file = f"{name}-{digest[:8]}.safetensors"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / file).write_bytes(data)
    if old and old["file"] != file:
        (folder / old["file"]).unlink(missing_ok=True)
    manifest["artifacts"][name] = {
        "file": file, "sha256": digest, "size": len(data), "variant": info.get("variant"),
        "immunized": bool(info.get("immunized")), "train_command": record_info.get("train_command"),
        "train_minutes": record_info.get("train_minutes"), "dataset_sha256": info.get("dataset_sha256"),
        "metrics": record.get("metrics", {}),
    }
    if make_default or not manifest.get("default"):
        manifest["default"] = name
    (folder / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True, ensure_ascii=False) + "\n")
    return manifest["artifacts"][name]
