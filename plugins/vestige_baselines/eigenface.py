"""Eigenface: project pixels onto their principal components, then a linear SVM.

Turk and Pentland's eigenfaces, used by Yu et al. 2019 as an attribution
baseline: the training images (pixels in [0, 1], flattened) give a mean and
their first ``n_components`` principal axes; an image's features are its
coordinates on those axes, each divided by the axis's standard deviation
(``--no-whiten`` keeps their relative scale, dividing all by the first axis's); a one-vs-rest linear SVM (scikit-learn's
LinearSVC) separates the sources. The scores are ``softmax(decision / T)``
with the temperature ``T`` fitted on validation.

The artifact keeps the arrays, not scikit-learn objects (no pickles): the
mean, the axes and their scales, and the SVM's weights and intercepts. Use
re-applies them with numpy.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from vestige.plugin.training import TrainOption
from vestige_baselines.detector import (
    SIZE_OPTION,
    BaselineDetector,
    BaselineModel,
    Scored,
    TrainingDataError,
)
from vestige_baselines.linear import class_rows


class EigenfaceModel(BaselineModel):
    """``decision = W · (scale * (axes · (x - mean))) + b``, all in float64."""

    def __init__(self, tensors: Mapping[str, np.ndarray]) -> None:
        self.mean = tensors["mean"].astype(np.float64)
        self.axes = tensors["axes"].astype(np.float64)
        self.scale = tensors["scale"].astype(np.float64)
        self.weights = tensors["weights"].astype(np.float64)
        self.intercepts = tensors["intercepts"].astype(np.float64)

    def features(self, pixels: np.ndarray) -> tuple[np.ndarray, float]:
        """The image's coordinates on the axes (scaled), and the RMS of what the axes do not explain."""
        centred = pixels.reshape(-1).astype(np.float64) / 255.0 - self.mean
        coordinates = self.axes @ centred
        unexplained = centred - self.axes.T @ coordinates
        return coordinates * self.scale, float(np.sqrt(np.mean(unexplained**2)))

    def score(self, pixels: np.ndarray) -> Scored:
        features, unexplained = self.features(pixels)
        return Scored(raw=self.weights @ features + self.intercepts,
                      evidence={"components": len(self.axes), "unexplained_rms": unexplained})


class EigenfaceDetector(BaselineDetector):
    name = "eigenface"
    description = "Eigenface: PCA of the pixels, then a linear SVM (Yu et al. 2019's baseline)."
    preparation = "resize"
    raw_name = "decision_values"
    scores_are = ("probabilities: softmax of the linear SVM's decision values divided by a temperature "
                  "fitted on validation")
    calibration = "temperature"
    train_options = (
        SIZE_OPTION,
        TrainOption("n_components", int, 150, "Principal components kept (at most the training images less one)."),
        TrainOption("cost", float, 1.0, "The SVM's C: higher fits the training set more closely."),
        TrainOption("no_whiten", bool, False,
                    "Divide every PCA coordinate by the first's spread, not each by its own."),
    )

    def learn(self, pixels: np.ndarray, labels: np.ndarray, sources: tuple[str, ...], options: dict[str, Any],
              seed: int, progress: Callable[[str], None]) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        from sklearn.decomposition import PCA
        from sklearn.exceptions import ConvergenceWarning
        from sklearn.svm import LinearSVC

        x = pixels.reshape(len(pixels), -1).astype(np.float64) / 255.0
        if options["n_components"] < 1 or options["cost"] <= 0:
            raise TrainingDataError("n_components must be at least 1 and cost above 0")
        n_components = min(options["n_components"], len(x) - 1, x.shape[1])
        # Exact solvers only (no randomised SVD), so the same images give the same axes.
        solver = "covariance_eigh" if len(x) > x.shape[1] else "full"
        progress(f"PCA: {n_components} components of {x.shape[1]} pixel values ({solver})")
        pca = PCA(n_components=n_components, svd_solver=solver).fit(x)
        axes = pca.components_.astype(np.float32)
        spread = np.sqrt(np.maximum(pca.explained_variance_, 1e-12))
        # Unwhitened, the coordinates still share one scale (the first axis's spread) so that C means the same.
        scale = np.full(n_components, 1.0 / spread[0]) if options["no_whiten"] else 1.0 / spread
        tensors = {"mean": pca.mean_.astype(np.float32), "axes": axes, "scale": scale.astype(np.float32)}
        # The SVM learns from the features as use will compute them: from the stored float32 arrays.
        stored = EigenfaceModel({**tensors, "weights": np.zeros((1, n_components)), "intercepts": np.zeros(1)})
        features = np.stack([stored.features(p)[0] for p in pixels])
        progress(f"linear SVM on {len(features)} images (C = {options['cost']})")
        svm = LinearSVC(C=options["cost"], random_state=seed, max_iter=20000)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", ConvergenceWarning)
            svm.fit(features, labels)
        converged = not any(issubclass(w.category, ConvergenceWarning) for w in caught)
        if not converged:
            progress("the SVM stopped at its iteration limit before converging")
        weights, intercepts = class_rows(svm.coef_, svm.intercept_, len(sources))
        tensors.update(weights=weights, intercepts=intercepts)
        hyper = {"n_components": n_components, "cost": options["cost"], "whiten": not options["no_whiten"],
                 "explained_variance": float(np.sum(pca.explained_variance_ratio_)), "svm_converged": converged}
        return tensors, hyper

    def model(self, tensors: Mapping[str, np.ndarray], info: Mapping[str, Any]) -> BaselineModel:
        return EigenfaceModel(tensors)
