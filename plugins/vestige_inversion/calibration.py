"""Calibrations: how a generator's own samples and its negatives invert, kept as a model artifact.

A calibration inverts N of the generator's own samples and M negatives (real
photographs, other generators' samples at its size; :mod:`.negatives`) with
the settings detection will use, and sets the accept threshold between them
(:class:`~vestige_inversion.statistics.Threshold`). One that cannot separate
them is refused, and nothing is stored.

One artifact holds a *calibration set*: the calibration of each candidate
generator, so that the registry's one default per detector, and an
analysis's pinned model, name every generator's calibration at once. In the
set, each generator's entry carries the SHA-256 of that calibration alone
(the artifact it would be by itself) and the SHA-256 of the generator
weights it was made with; both are checked when the set is used. Entries of
the first format (a normal fit of own losses only, no negatives) are read but
never used: the detector skips them and says to recalibrate.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from vestige.plugin import InvalidInputError, ShippedManifest
from vestige.plugin.training import ArtifactFile, pack_artifact, read_shipped
from vestige_inversion.statistics import Threshold, complexity

DETECTOR = "inversion"
VERSION = "2"
#: The first format's entries carry a normal fit and no negatives.
LEGACY_FORMAT = 1
FORMAT = 2
SHIPPED_DIR = Path(__file__).resolve().parent / "calibrations"
#: The shipped set's entry in ``calibrations/manifest.json`` (a shipped-weights manifest).
SHIPPED_NAME = "calibration-set"


@dataclass(frozen=True)
class Calibration:
    """One generator's calibration: own and negative losses and complexities, the threshold, how they were made."""

    generator: str
    generator_version: str
    weights_sha256: str | None
    settings: Mapping[str, Any]
    losses: np.ndarray
    complexity: np.ndarray
    negative_losses: np.ndarray
    negative_complexity: np.ndarray
    negative_kinds: tuple[str, ...]
    threshold: Threshold
    record: Mapping[str, Any]

    @property
    def n(self) -> int:
        return len(self.losses)

    def entry(self) -> dict[str, Any]:
        """What the artifact's header says about it (without its own hash)."""
        return {"format": FORMAT, "generator": self.generator, "generator_version": self.generator_version,
                "weights_sha256": self.weights_sha256, "settings": dict(self.settings), "n": self.n,
                "n_negatives": len(self.negative_losses), "negative_kinds": list(self.negative_kinds),
                **self.threshold.header(), "record": dict(self.record)}

    def tensors(self) -> dict[str, np.ndarray]:
        return {"losses": self.losses.astype(np.float32), "complexity": self.complexity.astype(np.float32),
                "negative_losses": self.negative_losses.astype(np.float32),
                "negative_complexity": self.negative_complexity.astype(np.float32)}

    def artifact(self) -> bytes:
        """This calibration alone as an artifact file; its SHA-256 names the calibration."""
        return pack_artifact(self.tensors(), detector=DETECTOR, version=VERSION, info={"calibrations": {self.generator: self.entry()}})

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.artifact()).hexdigest()

    def summary(self) -> dict[str, Any]:
        """The numbers ``vestige generators list`` and the registry show."""
        t = self.threshold
        return {"sha256": self.sha256, "n": self.n, "n_negatives": len(self.negative_losses), "statistic": t.statistic,
                "threshold": t.value, "own_accept": t.own_accept, "false_accept": t.false_accept,
                "steps": self.settings.get("steps"), "restarts": self.settings.get("restarts")}


@dataclass(frozen=True)
class LegacyCalibration:
    """An entry of the first format (normal fit of own losses, no negatives): read, shown, never used."""

    generator: str
    weights_sha256: str | None
    settings: Mapping[str, Any]
    entry: Mapping[str, Any]


def calibrate(loaded: Any, n: int, settings: Any, *, sample_seed: int, negatives: Any, batch: int = 64,
              own_quantile: float | None = None, false_accept: float | None = None, statistic: str | None = None,
              robust_to: Sequence[str] = (), max_seconds: float | None = None,
              progress: Callable[[str], None] | None = None) -> Calibration:
    """Invert ``n`` of the generator's own samples (drawn with ``sample_seed``) and ``negatives``
    (:class:`~vestige_inversion.negatives.Negatives`), all in batches of ``batch``, and set the threshold.

    ``robust_to`` names perturbations (``jpeg90``, ``resize0.9``: the evaluation's conditions) whose copies of
    the own samples join them, so that the accept region also holds the generator's re-shared images.

    Raises :class:`~vestige_inversion.statistics.CalibrationRefused` when the
    accept region would reach the negatives.
    """
    import torch

    from vestige_inversion.optimise import invert

    began = time.perf_counter()
    from vestige_inversion.evaluation import perturbed
    from vestige_inversion.generators import to_pictures

    own, _ = loaded.sample(n, sample_seed)
    own = torch.cat([own, *(loaded.targets(perturbed(to_pictures(own), c)) for c in robust_to)])
    n = len(own)
    images = torch.cat([own, negatives.images])
    losses, steps = [], []
    for start in range(0, len(images), batch):
        chunk = images[start:start + batch]
        result = invert(loaded.module, loaded.spec.input_spec, chunk, settings, encoder=loaded.encoder,
                        max_seconds=max_seconds, device=loaded.device)
        losses.append(result.loss.numpy())
        steps.append(result.steps)
        if progress:
            progress(f"{loaded.name}: {start + len(chunk)}/{len(images)} inverted ({n} own, {len(negatives)} negatives; "
                     f"{time.perf_counter() - began:.0f} s)")
    # Everything is decided on the float32 values the artifact stores, so a reloaded calibration decides identically.
    loss = np.concatenate(losses).astype(np.float32)
    comp = complexity(images.numpy()).astype(np.float32)
    options = {k: v for k, v in (("own_quantile", own_quantile), ("false_accept", false_accept)) if v is not None}
    threshold = Threshold.choose(loss[:n], comp[:n], loss[n:], comp[n:], np.array(negatives.kinds),
                                 generator=loaded.name, statistic=statistic, **options)
    record = {"sample_seed": sample_seed, "seconds": round(time.perf_counter() - began, 1), "min_steps": int(min(steps)),
              "steps": settings.steps, "restarts": settings.restarts, "negative_sources": dict(negatives.sources),
              "own_variants": ["clean", *robust_to],
              "device": loaded.device, "torch": torch.__version__, "threads": torch.get_num_threads()}
    return Calibration(loaded.name, loaded.spec.version, loaded.spec.weights_sha256, settings.as_dict(), loss[:n], comp[:n],
                       loss[n:], comp[n:], tuple(negatives.kinds), threshold, record)


# -- calibration sets ---------------------------------------------------------------


def pack_set(calibrations: Mapping[str, Calibration]) -> bytes:
    """The artifact file of a calibration set (first-format entries are left out: they are never used)."""
    tensors: dict[str, np.ndarray] = {}
    entries: dict[str, Any] = {}
    for name in sorted(calibrations):
        cal = calibrations[name]
        if not isinstance(cal, Calibration):
            continue
        for key, value in cal.tensors().items():
            tensors[f"{name}/{key}"] = value
        entries[name] = {**cal.entry(), "sha256": cal.sha256}
    return pack_artifact(tensors, detector=DETECTOR, version=VERSION, info={"calibrations": entries})


def _modified(name: str, artifact: ArtifactFile) -> InvalidInputError:
    return InvalidInputError(f"the inversion calibration of {name} in model artifact {artifact.sha256[:12]}… does not "
                             f"match its recorded SHA-256: it was modified; recalibrate it with "
                             f"`vestige inversion calibrate {name}`")


def _legacy(name: str, entry: Mapping[str, Any], tensors: Mapping[str, np.ndarray], artifact: ArtifactFile) -> LegacyCalibration:
    own = {k: tensors[f"{name}/{k}"] for k in ("losses", "complexity")}
    alone = pack_artifact(own, detector=DETECTOR, version="1",
                          info={"calibrations": {name: {k: v for k, v in entry.items() if k != "sha256"}}})
    if hashlib.sha256(alone).hexdigest() != entry.get("sha256"):
        raise _modified(name, artifact)
    return LegacyCalibration(name, entry.get("weights_sha256"), entry.get("settings", {}), dict(entry))


def _entry(name: str, entry: Mapping[str, Any], tensors: Mapping[str, np.ndarray], artifact: ArtifactFile) -> Calibration:
    import dataclasses

    kinds = np.array(entry["negative_kinds"], dtype=str)
    own, own_c = tensors[f"{name}/losses"], tensors[f"{name}/complexity"]
    neg, neg_c = tensors[f"{name}/negative_losses"], tensors[f"{name}/negative_complexity"]
    # The threshold is recomputed from the stored losses: a header edited to widen it is caught here.
    threshold = Threshold.choose(own, own_c, neg, neg_c, kinds, generator=name, statistic=entry["statistic"],
                                 own_quantile=float(entry["own_quantile"]), false_accept=float(entry["target_false_accept"]),
                                 gap=float(entry["gap"]))
    threshold = dataclasses.replace(threshold, separations=entry["separations"])
    cal = Calibration(name, entry["generator_version"], entry.get("weights_sha256"), entry["settings"], own, own_c,
                      neg, neg_c, tuple(entry["negative_kinds"]), threshold, entry.get("record", {}))
    if cal.sha256 != entry.get("sha256") or abs(threshold.value - float(entry["threshold"])) > 1e-6:
        raise _modified(name, artifact)
    return cal


def unpack_set(artifact: ArtifactFile) -> dict[str, Calibration | LegacyCalibration]:
    """The calibrations of a set artifact; an entry whose data does not match its recorded SHA-256 is refused."""
    from vestige_inversion.statistics import CalibrationRefused

    if artifact.detector != DETECTOR:
        raise InvalidInputError(f"model artifact {artifact.sha256[:12]}… is for detector {artifact.detector}, not {DETECTOR}")
    entries = artifact.info.get("calibrations")
    if not isinstance(entries, Mapping):
        raise InvalidInputError(f"model artifact {artifact.sha256[:12]}… holds no inversion calibrations")
    tensors = artifact.tensors()
    out: dict[str, Calibration | LegacyCalibration] = {}
    for name, entry in entries.items():
        try:
            legacy = int(entry.get("format", LEGACY_FORMAT)) == LEGACY_FORMAT
            out[name] = _legacy(name, entry, tensors, artifact) if legacy else _entry(name, entry, tensors, artifact)
        except CalibrationRefused:  # a stored calibration was accepted when it was made: its losses were changed
            raise _modified(name, artifact) from None
        except (KeyError, TypeError, ValueError) as exc:
            raise InvalidInputError(f"the inversion calibration of {name} in model artifact "
                                    f"{artifact.sha256[:12]}… is incomplete ({exc}); recalibrate it") from None
    return out


def merged(base: Mapping[str, Calibration | LegacyCalibration], new: Calibration) -> dict[str, Calibration]:
    """``base``'s usable calibrations with ``new`` replacing its generator's."""
    return {**{k: v for k, v in base.items() if isinstance(v, Calibration)}, new.generator: new}


# -- the set shipped inside the plugin ----------------------------------------------------


def shipped_set(folder: Path = SHIPPED_DIR) -> ArtifactFile | None:
    """The shipped calibration set, verified against the manifest's SHA-256, or ``None``."""
    return read_shipped(folder)


def ship(calibrations: Mapping[str, Calibration], folder: Path = SHIPPED_DIR) -> Path:
    """Write ``calibrations`` as the shipped set and its manifest entry (maintainers)."""
    manifest = ShippedManifest.read(folder)
    entry = manifest.add(SHIPPED_NAME, pack_set(calibrations), {
        "generators": {name: {**c.summary(), "weights_sha256": c.weights_sha256,
                              "settings": dict(c.settings), "record": dict(c.record)}
                       for name, c in sorted(calibrations.items()) if isinstance(c, Calibration)}}, make_default=True)
    manifest.write()
    return entry.path
