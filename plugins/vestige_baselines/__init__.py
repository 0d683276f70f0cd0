"""Attribution baselines a lab trains on its own images: kNN, Eigenface, PRNU, DCT spectrum, a plain CNN.

They are the baselines Yu et al. 2019 and Frank et al. 2020 compare against,
as real detectors: ``vestige train knn --dataset DIR`` learns one from a
lab's folders, the registry keeps the artifact, and ``vestige analyze`` runs
it on cases. All run on the CPU. ``docs/baselines.md`` describes each one,
its options and what its artifact holds.
"""

from __future__ import annotations

from vestige.plugin import hookimpl
from vestige_baselines.cnn import CnnDetector
from vestige_baselines.dct import DctDetector
from vestige_baselines.detector import BaselineDetector
from vestige_baselines.eigenface import EigenfaceDetector
from vestige_baselines.knn import KnnDetector
from vestige_baselines.prnu import PrnuDetector, fingerprint_grid

__version__ = "0.1.0"
__all__ = [
    "BaselineDetector",
    "CnnDetector",
    "DctDetector",
    "EigenfaceDetector",
    "KnnDetector",
    "PrnuDetector",
    "fingerprint_grid",
    "vestige_detectors",
]


@hookimpl
def vestige_detectors() -> list[BaselineDetector]:
    return [KnnDetector(), EigenfaceDetector(), PrnuDetector(), DctDetector(), CnnDetector()]
