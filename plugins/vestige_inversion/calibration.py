"""Calibrations: the inversion losses of a generator's own samples, kept as a model artifact.

One artifact holds a *calibration set*: the calibration of each candidate
generator, so that the registry's one default per detector, and an
analysis's pinned model, name every generator's calibration at once. In the
set, each generator's entry carries the SHA-256 of that calibration alone
(the artifact it would be by itself) and the SHA-256 of the generator
weights it was made with; both are checked when the set is used.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from vestige.errors import InvalidInputError
from vestige.training import ArtifactFile, pack_artifact, read_artifact_file
from vestige_inversion.statistics import Fit, complexity

DETECTOR = "inversion"
VERSION = "1"
SHIPPED_DIR = Path(__file__).resolve().parent / "calibrations"


@dataclass(frozen=True)
class Calibration:
    """One generator's calibration: its own samples' losses and complexities, the fit, and how they were made."""

    generator: str
    generator_version: str
    weights_sha256: str | None
    settings: Mapping[str, Any]
    losses: np.ndarray
    complexity: np.ndarray
    fit: Fit
    record: Mapping[str, Any]

    def entry(self) -> dict[str, Any]:
        """What the artifact's header says about it (without its own hash)."""
        return {"generator": self.generator, "generator_version": self.generator_version,
                "weights_sha256": self.weights_sha256, "settings": dict(self.settings),
                "statistic": self.fit.statistic, "n": self.fit.n, "mean": self.fit.mean, "sd": self.fit.sd,
                "record": dict(self.record)}

    def tensors(self) -> dict[str, np.ndarray]:
        return {"losses": self.losses.astype(np.float32), "complexity": self.complexity.astype(np.float32)}

    def artifact(self) -> bytes:
        """This calibration alone as an artifact file; its SHA-256 names the calibration."""
        return pack_artifact(self.tensors(), detector=DETECTOR, version=VERSION, info={"calibrations": {self.generator: self.entry()}})

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.artifact()).hexdigest()


def calibrate(loaded: Any, n: int, settings: Any, *, sample_seed: int, batch: int = 50,
              max_seconds: float | None = None, progress: Callable[[str], None] | None = None) -> Calibration:
    """Invert ``n`` of the generator's own samples (drawn with ``sample_seed``) and fit their losses."""
    import torch

    from vestige_inversion.optimise import invert

    began = time.perf_counter()
    images, _ = loaded.sample(n, sample_seed)
    losses, steps = [], []
    for start in range(0, n, batch):
        chunk = images[start:start + batch]
        result = invert(loaded.module, loaded.spec.input_spec, chunk, settings, encoder=loaded.encoder,
                        max_seconds=max_seconds, device=loaded.device)
        losses.append(result.loss.numpy())
        steps.append(result.steps)
        if progress:
            progress(f"{loaded.name}: {start + len(chunk)}/{n} inverted ({time.perf_counter() - began:.0f} s)")
    loss = np.concatenate(losses).astype(np.float32)
    comp = complexity(images.numpy()).astype(np.float32)
    # The fit is made on the float32 values the artifact stores, so a reloaded calibration fits identically.
    fit = Fit.of(loss, comp)
    record = {"sample_seed": sample_seed, "seconds": round(time.perf_counter() - began, 1), "min_steps": int(min(steps)),
              "device": loaded.device, "torch": torch.__version__, "threads": torch.get_num_threads()}
    return Calibration(loaded.name, loaded.spec.version, loaded.spec.weights_sha256, settings.as_dict(), loss, comp, fit, record)


# -- calibration sets ---------------------------------------------------------------


def pack_set(calibrations: Mapping[str, Calibration]) -> bytes:
    """The artifact file of a calibration set."""
    tensors: dict[str, np.ndarray] = {}
    entries: dict[str, Any] = {}
    for name in sorted(calibrations):
        cal = calibrations[name]
        for key, value in cal.tensors().items():
            tensors[f"{name}/{key}"] = value
        entries[name] = {**cal.entry(), "sha256": cal.sha256}
    return pack_artifact(tensors, detector=DETECTOR, version=VERSION, info={"calibrations": entries})


def unpack_set(artifact: ArtifactFile) -> dict[str, Calibration]:
    """The calibrations of a set artifact; an entry whose data does not match its recorded SHA-256 is refused."""
    if artifact.detector != DETECTOR:
        raise InvalidInputError(f"model artifact {artifact.sha256[:12]}… is for detector {artifact.detector}, not {DETECTOR}")
    entries = artifact.info.get("calibrations")
    if not isinstance(entries, Mapping):
        raise InvalidInputError(f"model artifact {artifact.sha256[:12]}… holds no inversion calibrations")
    tensors = artifact.tensors()
    out: dict[str, Calibration] = {}
    for name, entry in entries.items():
        try:
            fit = Fit(entry["statistic"], int(entry["n"]), float(entry["mean"]), float(entry["sd"]))
            cal = Calibration(name, entry["generator_version"], entry.get("weights_sha256"), entry["settings"],
                              tensors[f"{name}/losses"], tensors[f"{name}/complexity"], fit, entry.get("record", {}))
        except (KeyError, TypeError, ValueError) as exc:
            raise InvalidInputError(f"the inversion calibration of {name} in model artifact "
                                    f"{artifact.sha256[:12]}… is incomplete ({exc}); recalibrate it") from None
        refit = Fit._fit(cal.losses, cal.complexity, fit.statistic)
        if cal.sha256 != entry.get("sha256") or abs(refit.mean - fit.mean) > 1e-6 or abs(refit.sd - fit.sd) > 1e-6:
            raise InvalidInputError(f"the inversion calibration of {name} in model artifact {artifact.sha256[:12]}… "
                                    f"does not match its recorded SHA-256: it was modified; recalibrate it with "
                                    f"`vestige inversion calibrate {name}`")
        out[name] = cal
    return out


def merged(base: Mapping[str, Calibration], new: Calibration) -> dict[str, Calibration]:
    """``base`` with ``new`` replacing its generator's calibration."""
    return {**dict(base), new.generator: new}


# -- the set shipped inside the plugin ----------------------------------------------------


def shipped_manifest(folder: Path = SHIPPED_DIR) -> dict[str, Any]:
    path = folder / "manifest.json"
    return json.loads(path.read_text()) if path.is_file() else {}


def shipped_set(folder: Path = SHIPPED_DIR) -> ArtifactFile | None:
    """The shipped calibration set, verified against the manifest's SHA-256, or ``None``."""
    manifest = shipped_manifest(folder)
    if not manifest:
        return None
    return read_artifact_file(folder / manifest["file"], origin="shipped", expected_sha256=manifest["sha256"])


def ship(calibrations: Mapping[str, Calibration], folder: Path = SHIPPED_DIR) -> Path:
    """Write ``calibrations`` as the shipped set and its manifest (maintainers)."""
    data = pack_set(calibrations)
    digest = hashlib.sha256(data).hexdigest()
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.glob("calibration-set-*.safetensors"):
        old.unlink()
    path = folder / f"calibration-set-{digest[:8]}.safetensors"
    path.write_bytes(data)
    manifest = {"file": path.name, "sha256": digest, "size": len(data),
                "generators": {name: {"sha256": c.sha256, "weights_sha256": c.weights_sha256, "n": c.fit.n,
                                      "settings": dict(c.settings), "record": dict(c.record)}
                               for name, c in sorted(calibrations.items())}}
    (folder / "manifest.json").write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    return path
