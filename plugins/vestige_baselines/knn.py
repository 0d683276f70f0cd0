"""kNN on raw pixels: an image goes to the source whose training images look most like it.

Pixels are compared as they are, in [0, 1] at the working resolution: the
distance between two images is the root-mean-square difference of their
pixel values. For each source, ``d_s`` is the mean distance from the image to
its ``k`` nearest training images of that source; the image goes to the
source with the smallest ``d_s``. With ``k = 1`` (the default) that is the
plain nearest-neighbour rule; for ``k > 1`` it is the local-mean variant of
kNN, which keeps the decision and the scores one and the same. The scores
are ``softmax(-d / T)``, normalised similarities with a temperature fitted on
validation.

The artifact holds every training image (uint8), so it grows with the
dataset: zoo32's 8 000 images make 24.6 MB; ``--per-source N`` keeps a random
``N`` of each source.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any

import numpy as np

from vestige.plugin.training import TrainOption
from vestige_baselines.detector import SIZE_OPTION, BaselineDetector, BaselineModel, Scored, TrainingDataError

#: k values whose validation accuracy training reports, to help choose ``--k``.
K_REPORTED = (1, 3, 5, 9)


class KnnModel(BaselineModel):
    """Training pixels and their sources; distances are computed exactly (see :meth:`squared_distances`)."""

    def __init__(self, pixels: np.ndarray, sources: np.ndarray, names: tuple[str, ...], k: int) -> None:
        self.pixels = pixels.reshape(len(pixels), -1)
        self.sources = sources.astype(np.int64)
        self.names = names
        self.n_sources = len(names)
        self.k = k
        self.norms = np.concatenate([np.einsum("ij,ij->i", block, block) for block in self._blocks()]) \
            if len(self.pixels) else np.zeros(0)
        self.members = [np.flatnonzero(self.sources == s) for s in range(self.n_sources)]

    def squared_distances(self, pixels: np.ndarray) -> np.ndarray:
        """Squared distances ``(B, N)``, in 0-255 units, from ``(B, S, S, 3)`` images to every training image.

        Pixel values are integers and every sum stays below 2^53, so these
        float64 products are exact whatever order BLAS adds in, and a batch
        gives each image exactly what it would get alone. Batching only saves
        converting the training pixels to float64 once per image.
        """
        x = pixels.reshape(len(pixels), -1).astype(np.float64)
        products = np.concatenate([block @ x.T for block in self._blocks()], axis=0).T
        return self.norms[None, :] - 2.0 * products + np.einsum("ij,ij->i", x, x)[:, None]

    def _blocks(self, rows: int = 2048) -> Iterator[np.ndarray]:
        # float64 copies a few thousand rows at a time: zoo32's whole set as float64 would be 200 MB.
        for start in range(0, len(self.pixels), rows):
            yield self.pixels[start : start + rows].astype(np.float64)

    def source_distances(self, squared: np.ndarray, k: int) -> np.ndarray:
        """Per source, the mean RMS distance (pixels in [0, 1]) to its ``k`` nearest training images."""
        rms = np.sqrt(np.maximum(squared, 0.0) / self.pixels.shape[1]) / 255.0
        out = np.empty(self.n_sources)
        for s, members in enumerate(self.members):
            nearest = np.sort(rms[members])[: min(k, len(members))]
            out[s] = float(np.mean(nearest))
        return out

    def score(self, pixels: np.ndarray) -> Scored:
        return self.score_many(pixels[None])[0]

    def score_many(self, pixels: np.ndarray) -> list[Scored]:
        return [self._scored(squared) for squared in self.squared_distances(pixels)]

    def _scored(self, squared: np.ndarray) -> Scored:
        nearest = int(np.argmin(squared))
        rms = float(np.sqrt(max(float(squared[nearest]), 0.0) / self.pixels.shape[1]) / 255.0)
        distances = self.source_distances(squared, self.k)
        return Scored(raw=-distances, extra=squared, evidence={
            "distances": {name: float(d) for name, d in zip(self.names, distances, strict=True)},
            "k": self.k,
            "nearest_training_image": {"index": nearest, "source": self.names[self.sources[nearest]],
                                       "distance": rms},
        })


class KnnDetector(BaselineDetector):
    name = "knn"
    description = "k-nearest neighbours on raw pixels (Yu et al. 2019's weakest baseline)."
    preparation = "resize"
    raw_name = None  # the evidence's "distances" are the raw numbers, with their natural sign
    scores_are = ("normalised similarities: softmax of minus the mean RMS pixel distance to each source's "
                  "k nearest training images, divided by a temperature fitted on validation")
    calibration = "temperature"
    train_options = (
        SIZE_OPTION,
        TrainOption("k", int, 1, "Neighbours per source whose distances are averaged (1: nearest neighbour)."),
        TrainOption("per_source", int, 0, "Keep at most this many training images per source (0: all)."),
    )

    def learn(self, pixels: np.ndarray, labels: np.ndarray, sources: tuple[str, ...], options: dict[str, Any],
              seed: int, progress: Callable[[str], None]) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        if options["k"] < 1:
            raise TrainingDataError(f"k must be at least 1, not {options['k']}")
        keep = np.arange(len(labels))
        if options["per_source"] > 0:
            rng = np.random.default_rng(seed)
            chosen = []
            for s in range(len(sources)):
                members = np.flatnonzero(labels == s)
                if len(members) > options["per_source"]:
                    members = np.sort(rng.choice(members, options["per_source"], replace=False))
                chosen.append(members)
            keep = np.sort(np.concatenate(chosen))
        progress(f"keeping {len(keep)} training images ({pixels[keep].nbytes / 1e6:.1f} MB of pixels)")
        tensors = {"pixels": pixels[keep], "sources": labels[keep].astype(np.int64)}
        return tensors, {"k": options["k"], "per_source": options["per_source"], "distance": "rms"}

    def model(self, tensors: Mapping[str, np.ndarray], info: Mapping[str, Any]) -> BaselineModel:
        k = int(info["hyperparameters"]["k"])
        return KnnModel(tensors["pixels"], tensors["sources"], tuple(info["sources"]), k)

    def validation_metrics(self, model: BaselineModel, scored: list[Scored], labels: np.ndarray,
                           sources: tuple[str, ...]) -> dict[str, Any]:
        assert isinstance(model, KnnModel)
        if not scored:
            return {}
        by_k = {}
        for k in K_REPORTED:
            predicted = np.array([np.argmin(model.source_distances(s.extra, k)) for s in scored])
            by_k[str(k)] = float(np.mean(predicted == labels))
        return {"accuracy_by_k": by_k}
