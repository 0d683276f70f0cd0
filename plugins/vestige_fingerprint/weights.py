"""The artifacts shipped inside the plugin, and how a maintainer ships one.

``weights/manifest.json`` is a shipped-weights manifest
(:class:`vestige.plugin.ShippedManifest`): its ``default`` entry is what the
detector runs with when the lab has chosen none, and each entry records its
file (``<name>-<sha256[:8]>.safetensors``), ``sha256``, ``size``, ``variant``,
``immunized``, ``train_command``, ``dataset_sha256`` and the validation
``metrics``. Every read hashes the file against the manifest.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from vestige.plugin import InvalidInputError, ShippedManifest
from vestige.plugin.training import ArtifactFile, read_shipped, unpack_artifact

WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"


def shipped(name: str | None = None, folder: Path = WEIGHTS_DIR) -> ArtifactFile | None:
    """The shipped artifact ``name`` (default: the manifest's default), hash-verified; ``None`` if none ships."""
    return read_shipped(folder, name)


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
    manifest = ShippedManifest.read(folder)
    entry = manifest.add(name, data, {
        "variant": info.get("variant"), "immunized": bool(info.get("immunized")),
        "train_command": record_info.get("train_command"), "train_minutes": record_info.get("train_minutes"),
        "dataset_sha256": info.get("dataset_sha256"), "metrics": record.get("metrics", {}),
    }, make_default=make_default or manifest.default is None)
    manifest.write()
    return entry.to_dict()
