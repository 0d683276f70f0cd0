"""PRNU: each source's mean noise residual is its fingerprint; an image goes to the one it correlates with.

After Lukáš, Fridrich and Goljan 2006 (camera identification from sensor
noise) as Marra et al. 2019 and Yu et al. 2019 apply it to generators: an
image's noise residual (:mod:`.noise_residual`) holds, beside noise, the
pattern its source stamps on every image; averaging the residuals of a
source's training images cancels the rest and leaves that pattern, the
source's fingerprint. An image is compared with each fingerprint by
normalised cross-correlation (the Pearson correlation of the residual's and
the fingerprint's values).

With ``--estimator mle`` the fingerprint is the maximum-likelihood estimate
of a multiplicative pattern, ``Σ Wᵢ·Iᵢ / Σ Iᵢ²`` (``W`` residual, ``I``
intensity), and an image's residual is correlated with ``I·K``, as for
camera sensors; the default, ``mean``, suits the additive traces of generators.

Scores are ``softmax(ρ / T + b)``: a temperature and a per-source offset
fitted on validation. The offsets matter for ``real``: camera images share no
pattern, so their own "fingerprint" is weak and a real image is recognised by
correlating with no generator; an offset learns where that line lies. The
evidence keeps the raw correlations and the source of the largest
(``highest_correlation``), which is the paper's rule.

Findings carry two pictures: the image's residual and the fingerprint of the
source it is attributed to. :func:`fingerprint_grid` draws every source's
fingerprint in one labelled picture.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from vestige.plugin import Picture
from vestige.plugin.training import ArtifactFile, TrainOption
from vestige_baselines.detector import (
    SIZE_OPTION,
    ArtifactMismatchError,
    BaselineDetector,
    BaselineModel,
    Scored,
    TrainingDataError,
)
from vestige_baselines.noise_residual import default_levels, noise_residual, normalised_correlation
from vestige_baselines.pictures import enlargement, labelled_grid, residual_png

ESTIMATORS = ("mean", "mle")


class PrnuModel(BaselineModel):
    """Fingerprints ``(C, S, S, 3)`` and how residuals are extracted."""

    def __init__(self, fingerprints: np.ndarray, names: tuple[str, ...], hyper: Mapping[str, Any]) -> None:
        self.fingerprints = fingerprints.astype(np.float64)
        self.names = names
        self.wavelet = str(hyper["wavelet"])
        self.levels = int(hyper["levels"])
        self.zero_mean = bool(hyper["zero_mean"])
        self.estimator = str(hyper["estimator"])

    def residual(self, pixels: np.ndarray) -> np.ndarray:
        return noise_residual(pixels, self.wavelet, self.levels, self.zero_mean)

    def score(self, pixels: np.ndarray) -> Scored:
        residual = self.residual(pixels)
        intensity = pixels.astype(np.float64) / 255.0
        correlations = np.array([
            normalised_correlation(residual, fingerprint * intensity if self.estimator == "mle" else fingerprint)
            for fingerprint in self.fingerprints
        ])
        return Scored(raw=correlations, extra=residual, evidence={
            "highest_correlation": self.names[int(np.argmax(correlations))],
            "residual_rms": float(np.sqrt(np.mean(residual**2))),
        })


def estimate_fingerprints(residuals: np.ndarray, pixels: np.ndarray, labels: np.ndarray, n_sources: int,
                          estimator: str) -> np.ndarray:
    """Per source, the mean residual (``mean``) or ``Σ W·I / Σ I²`` (``mle``)."""
    out = np.zeros((n_sources, *residuals.shape[1:]))
    for s in range(n_sources):
        members = labels == s
        if estimator == "mean":
            out[s] = residuals[members].mean(axis=0)
        else:
            intensity = pixels[members].astype(np.float64) / 255.0
            out[s] = (residuals[members] * intensity).sum(axis=0) / ((intensity**2).sum(axis=0) + 1e-6)
    return out


class PrnuDetector(BaselineDetector):
    name = "prnu"
    description = "PRNU-style fingerprints: mean wavelet noise residual per source, normalised cross-correlation."
    preparation = "crop"
    raw_name = "correlations"
    scores_are = ("normalised similarities: softmax of the normalised cross-correlations with each source's "
                  "fingerprint, divided by a temperature and shifted by per-source offsets fitted on validation")
    calibration = "temperature+offsets"
    train_options = (
        SIZE_OPTION,
        TrainOption("wavelet", str, "db4", "PyWavelets name of the denoising wavelet."),
        TrainOption("levels", int, 0, "Decomposition levels (0: as many as the size allows, at most 4)."),
        TrainOption("estimator", str, "mean", "Fingerprint: mean residual, or the multiplicative MLE.", ESTIMATORS),
        TrainOption("keep_linear_patterns", bool, False, "Do not make residual rows and columns zero-mean."),
    )

    def __init__(self) -> None:
        super().__init__()
        self._fingerprint_pngs: dict[str, bytes] = {}

    def learn(self, pixels: np.ndarray, labels: np.ndarray, sources: tuple[str, ...], options: dict[str, Any],
              seed: int, progress: Callable[[str], None]) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        import pywt

        if options["wavelet"] not in pywt.wavelist(kind="discrete"):
            raise TrainingDataError(f"{options['wavelet']!r} is not a discrete wavelet PyWavelets knows "
                                    "(db4, sym4, haar...)")
        size = pixels.shape[1]
        levels = options["levels"] or default_levels(size, options["wavelet"])
        if not 1 <= levels <= max(1, pywt.dwt_max_level(size, pywt.Wavelet(options["wavelet"]).dec_len)):
            raise TrainingDataError(f"{levels} levels of {options['wavelet']} do not fit {size}×{size} images")
        hyper = {"wavelet": options["wavelet"], "levels": levels, "zero_mean": not options["keep_linear_patterns"],
                 "estimator": options["estimator"], "correlation": "pearson"}
        progress(f"noise residuals of {len(pixels)} images ({options['wavelet']}, {levels} levels)")
        extractor = PrnuModel(np.zeros((0, size, size, 3)), sources, hyper)
        residuals = np.stack([extractor.residual(p) for p in pixels])
        fingerprints = estimate_fingerprints(residuals, pixels, labels, len(sources), options["estimator"])
        return {"fingerprints": fingerprints.astype(np.float32)}, hyper

    def model(self, tensors: Mapping[str, np.ndarray], info: Mapping[str, Any]) -> BaselineModel:
        return PrnuModel(tensors["fingerprints"], tuple(info["sources"]), info["hyperparameters"])

    def validation_metrics(self, model: BaselineModel, scored: list[Scored], labels: np.ndarray,
                           sources: tuple[str, ...]) -> dict[str, Any]:
        if not scored:
            return {}
        plain = np.array([np.argmax(s.raw) for s in scored])
        return {"accuracy_highest_correlation": float(np.mean(plain == labels))}

    def use_artifact(self, artifact: ArtifactFile) -> None:
        super().use_artifact(artifact)
        self._fingerprint_pngs = {}

    def pictures(self, scored: Scored, source: str) -> list[Picture]:
        artifact = self.require_artifact()
        size = int(artifact.info["input_size"])
        factor = enlargement(size)
        if source not in self._fingerprint_pngs:
            assert isinstance(self._model, PrnuModel)
            self._fingerprint_pngs[source] = residual_png(self._model.fingerprints[self._sources.index(source)])
        count = artifact.info.get("train_images", {}).get(source)
        return [
            Picture(name="noise residual", data=residual_png(scored.extra),
                    caption=f"The image's noise residual at {size}×{size} (image minus its wavelet-denoised "
                            f"self), contrast-stretched, enlarged ×{factor}."),
            Picture(name=f"fingerprint of {source}", data=self._fingerprint_pngs[source],
                    caption=f"The fingerprint of {source}: the mean noise residual of its {count} training "
                            f"images, contrast-stretched, enlarged ×{factor}."),
        ]


def fingerprint_grid(artifact: ArtifactFile, *, columns: int = 4) -> bytes:
    """Every source's fingerprint in a PRNU artifact, stretched and named, as one PNG."""
    if artifact.detector != PrnuDetector.name:
        raise ArtifactMismatchError(f"artifact {artifact.sha256[:12]} is a model of {artifact.detector}, not of prnu")
    fingerprints = artifact.tensors()["fingerprints"].astype(np.float64)
    tiles = dict(zip(artifact.info["sources"], fingerprints, strict=True))
    return labelled_grid(tiles, columns=columns, title=f"PRNU fingerprints, model {artifact.sha256[:12]}")
