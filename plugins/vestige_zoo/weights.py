"""Shipped weights: fp16 safetensors files named ``<name>-<sha256[:8]>.safetensors``.

``weights/manifest.json`` inside this package is a shipped-weights manifest
(:class:`vestige.plugin.ShippedManifest`, no default entry): per model, the
file name, its full SHA-256, its size and, under ``training``, how it was
trained. Every load hashes the file and refuses one whose bytes do not match
the manifest. Files are only ever read with ``safetensors`` (no pickle).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from vestige.plugin import ShippedEntry, ShippedManifest, WeightsMismatchError, file_sha256, load_verified

__all__ = ["WeightsMismatchError", "file_sha256", "save_state", "save_weights", "ship", "shipped_weights", "verified_state"]

if TYPE_CHECKING:
    import torch

WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"
#: What to do about a missing or modified weight file.
REMEDY = "reinstall vestige (or run `vestige zoo train`) to restore it"


def shipped_weights(folder: Path = WEIGHTS_DIR) -> ShippedManifest:
    """The shipped-weights manifest of ``folder``: one entry per model (empty when there is none)."""
    return ShippedManifest.read(folder, remedy=REMEDY)


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
    return load_verified(path, expected_sha256, remedy=REMEDY)


def ship(trained_dir: Path, names: list[str] | None = None, folder: Path = WEIGHTS_DIR) -> list[ShippedEntry]:
    """Copy trained weights and their training records from ``trained_dir`` into ``folder`` and its manifest.

    ``trained_dir`` is a ``vestige zoo train --out`` folder: ``<name>.json``
    records naming ``<name>-<sha8>.safetensors`` files; or a weights folder
    with a manifest (a candidate release), whose entries are shipped as they
    are. A model's previous file is removed when its hash changes.
    """
    manifest = shipped_weights(folder)
    shipped = []
    for info in _training_outputs(trained_dir):
        name = info.get("name")
        if not name or "weights" not in info or (names and name not in names):
            continue
        source = trained_dir / info["weights"]
        data = source.read_bytes()
        if hashlib.sha256(data).hexdigest() != info["sha256"]:
            raise WeightsMismatchError(f"{source.name} does not match its training record; train it again.")
        training = {k: v for k, v in info.items() if k not in {"name", "weights", "sha256"}}
        shipped.append(manifest.add(name, data, {"training": training}))
    manifest.write()
    return shipped


def _training_outputs(trained_dir: Path) -> list[dict[str, Any]]:
    """The training records in ``trained_dir``: its manifest's entries, or its ``<name>.json`` files."""
    candidate = shipped_weights(trained_dir)
    if candidate.path.is_file():
        return [{"name": e.name, "weights": e.file, "sha256": e.sha256, **e.metadata.get("training", {})} for e in candidate]
    return [json.loads(path.read_text()) for path in sorted(trained_dir.glob("*.json"))]
