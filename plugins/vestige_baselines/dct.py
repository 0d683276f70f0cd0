"""DCT spectrum: a linear classifier on the log-magnitude of the image's 2-D DCT.

Frank et al. 2020 showed that generators' upsampling leaves regular peaks in
the DCT spectrum, and that a linear model on the log spectrum already
attributes well. Here: pixels in [0, 1] at the working resolution (centre
crop, no resampling), per channel (``--channels grey`` uses the luma
instead), the orthonormal type-II DCT over rows and columns
(``scipy.fft.dctn``), ``log(|c| + 1e-4)`` (the 1e-4 keeps coefficients far
below 8-bit quantisation noise from spreading towards minus infinity), each
feature standardised by its training mean and standard deviation, and a
multinomial logistic regression (scikit-learn, L2, ``--cost`` its C). Its
softmax is the scores; no temperature is added.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from vestige.plugin.training import TrainOption
from vestige_baselines.detector import SIZE_OPTION, BaselineDetector, BaselineModel, Scored, TrainingDataError
from vestige_baselines.linear import class_rows

LOG_FLOOR = 1e-4
LUMA = np.array([0.299, 0.587, 0.114])


def log_spectrum(pixels: np.ndarray, channels: str) -> np.ndarray:
    """``log(|DCT-II| + 1e-4)`` of an ``(S, S, 3)`` uint8 image: ``(S, S, 3)``, or ``(S, S, 1)`` for grey."""
    from scipy.fft import dctn

    x = pixels.astype(np.float64) / 255.0
    if channels == "grey":
        x = (x @ LUMA)[:, :, None]
    return np.log(np.abs(dctn(x, type=2, norm="ortho", axes=(0, 1))) + LOG_FLOOR)


class DctModel(BaselineModel):
    """``logits = W · ((log_spectrum - mean) / std) + b``."""

    def __init__(self, tensors: Mapping[str, np.ndarray], channels: str) -> None:
        self.channels = channels
        self.mean = tensors["feature_mean"].astype(np.float64)
        self.std = tensors["feature_std"].astype(np.float64)
        self.weights = tensors["weights"].astype(np.float64)
        self.intercepts = tensors["intercepts"].astype(np.float64)

    def features(self, pixels: np.ndarray) -> np.ndarray:
        return (log_spectrum(pixels, self.channels).reshape(-1) - self.mean) / self.std

    def score(self, pixels: np.ndarray) -> Scored:
        features = self.features(pixels)
        # Where the spectrum departs most from training's: high means unusual energy at some frequency.
        return Scored(raw=self.weights @ features + self.intercepts,
                      evidence={"channels": self.channels, "spectrum_max_zscore": float(np.max(np.abs(features)))})


class DctDetector(BaselineDetector):
    name = "dct"
    description = "Logistic regression on the log DCT spectrum (Frank et al. 2020)."
    preparation = "crop"
    raw_name = "logits"
    scores_are = "probabilities: the multinomial logistic regression's softmax"
    calibration = "none"
    train_options = (
        SIZE_OPTION,
        TrainOption("channels", str, "rgb", "Spectrum of each colour channel, or of the luma only.", ("rgb", "grey")),
        TrainOption("cost", float, 1.0, "The logistic regression's C (inverse L2 strength)."),
    )

    def learn(self, pixels: np.ndarray, labels: np.ndarray, sources: tuple[str, ...], options: dict[str, Any],
              seed: int, progress: Callable[[str], None]) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        from sklearn.exceptions import ConvergenceWarning
        from sklearn.linear_model import LogisticRegression

        if options["cost"] <= 0:
            raise TrainingDataError("cost must be above 0")
        spectra = np.stack([log_spectrum(p, options["channels"]).reshape(-1) for p in pixels])
        mean = spectra.mean(axis=0)
        std = spectra.std(axis=0)
        std[std < 1e-6] = 1.0  # a coefficient constant over training carries nothing; leave it unscaled
        tensors = {"feature_mean": mean.astype(np.float32), "feature_std": std.astype(np.float32)}
        stored = DctModel({**tensors, "weights": np.zeros((1, len(mean))), "intercepts": np.zeros(1)},
                          options["channels"])
        features = np.stack([stored.features(p) for p in pixels])
        progress(f"logistic regression on {features.shape[1]} log-DCT coefficients of {len(features)} images")
        classifier = LogisticRegression(C=options["cost"], max_iter=5000, random_state=seed)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", ConvergenceWarning)
            classifier.fit(features, labels)
        converged = not any(issubclass(w.category, ConvergenceWarning) for w in caught)
        if not converged:
            progress("the logistic regression stopped at its iteration limit before converging")
        weights, intercepts = class_rows(classifier.coef_, classifier.intercept_, len(sources))
        tensors.update(weights=weights, intercepts=intercepts)
        return tensors, {"channels": options["channels"], "cost": options["cost"], "log_floor": LOG_FLOOR,
                         "converged": converged}

    def model(self, tensors: Mapping[str, np.ndarray], info: Mapping[str, Any]) -> BaselineModel:
        return DctModel(tensors, info["hyperparameters"]["channels"])
