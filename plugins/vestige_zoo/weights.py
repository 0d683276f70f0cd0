"""Shipped weights: fp16 safetensors files named ``<name>-<sha256[:8]>.safetensors``.

``weights/manifest.json`` inside this package records, per model, the file
name, its full SHA-256, its size and how it was trained. Every load hashes the
file and refuses one whose bytes do not match the manifest. Files are only ever
read with ``safetensors`` (no pickle).
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from vestige.plugin import WeightsMismatchError, file_sha256, load_verified

__all__ = ["WeightsMismatchError", "file_sha256", "read_manifest", "save_state", "save_weights", "ship", "verified_state",
           "write_manifest"]

if TYPE_CHECKING:
    import torch

WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"
MANIFEST = "manifest.json"


@dataclass(frozen=True)
class WeightsRecord:
    """One manifest entry: the file, its SHA-256 and size, and the training record."""

    name: str
    file: str
    sha256: str
    size: int
    training: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return {"file": self.file, "sha256": self.sha256, "size": self.size, "training": self.training}


def read_manifest(folder: Path = WEIGHTS_DIR) -> dict[str, WeightsRecord]:
    """The manifest of ``folder``: model name -> record (empty when there is none)."""
    path = folder / MANIFEST
    if not path.is_file():
        return {}
    raw = json.loads(path.read_text())
    return {name: WeightsRecord(name=name, **entry) for name, entry in raw.items()}


def write_manifest(records: dict[str, WeightsRecord], folder: Path = WEIGHTS_DIR) -> None:
    """Write ``records`` as ``folder``'s manifest, sorted by name."""
    text = json.dumps({n: records[n].to_dict() for n in sorted(records)}, indent=2, sort_keys=True)
    (folder / MANIFEST).write_text(text + "\n")


def save_state(state: dict[str, torch.Tensor], name: str, folder: Path) -> tuple[Path, str]:
    """Write ``state`` (floating tensors as fp16) to ``folder`` named by its hash; return the path and SHA-256.

    No header metadata is written: safetensors stores it in an unordered map,
    so the same tensors would not always give the same bytes, nor the same hash.
    """
    import torch
    from safetensors.torch import save_file

    folder.mkdir(parents=True, exist_ok=True)
    tensors = {
        key: (value.detach().cpu().to(torch.float16) if value.is_floating_point() else value.detach().cpu()).contiguous()
        for key, value in state.items()
    }
    partial = folder / f"{name}.partial.safetensors"
    save_file(tensors, str(partial))
    sha = file_sha256(partial)
    final = folder / f"{name}-{sha[:8]}.safetensors"
    partial.replace(final)
    return final, sha


def save_weights(module: torch.nn.Module, name: str, folder: Path) -> tuple[Path, str]:
    """Save ``module``'s state as fp16 safetensors named by its hash; return the path and SHA-256."""
    return save_state(module.state_dict(), name, folder)


def verified_state(path: Path, expected_sha256: str) -> dict[str, torch.Tensor]:
    """Read a safetensors file after checking its SHA-256; floating tensors come back as fp32."""
    return load_verified(path, expected_sha256, remedy="reinstall vestige (or run `vestige zoo train`) to restore it")


def ship(trained_dir: Path, names: list[str] | None = None, folder: Path = WEIGHTS_DIR) -> list[WeightsRecord]:
    """Copy trained weights and their training records from ``trained_dir`` into ``folder`` and its manifest.

    ``trained_dir`` is a ``vestige zoo train --out`` folder: ``<name>.json``
    records naming ``<name>-<sha8>.safetensors`` files; or a weights folder
    with a manifest (a candidate release), whose entries are shipped as they
    are. A model's previous file is removed when its hash changes.
    """
    records = read_manifest(folder)
    shipped = []
    for info in _training_outputs(trained_dir):
        name = info.get("name")
        if not name or "weights" not in info or (names and name not in names):
            continue
        source = trained_dir / info["weights"]
        sha = file_sha256(source)
        if sha != info["sha256"]:
            raise WeightsMismatchError(f"{source.name} does not match its training record; train it again.")
        folder.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, folder / source.name)
        old = records.get(name)
        if old and old.file != source.name:
            (folder / old.file).unlink(missing_ok=True)
        training = {k: v for k, v in info.items() if k not in {"name", "weights", "sha256"}}
        records[name] = WeightsRecord(name, source.name, sha, source.stat().st_size, training)
        shipped.append(records[name])
    write_manifest(records, folder)
    return shipped


def _training_outputs(trained_dir: Path) -> list[dict[str, Any]]:
    """The training records in ``trained_dir``: its manifest's entries, or its ``<name>.json`` files."""
    if (trained_dir / MANIFEST).is_file():
        return [{"name": r.name, "weights": r.file, "sha256": r.sha256, **r.training} for r in read_manifest(trained_dir).values()]
    return [json.loads(path.read_text()) for path in sorted(trained_dir.glob("*.json"))]
