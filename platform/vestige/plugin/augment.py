"""Training augmentations built from registered perturbations: re-sharing and the corruption sets.

A trainer draws these instead of importing the perturbation plugin: every
operation is looked up by name among what the ``vestige_perturbations`` hook
registered (the built-in ``perturb`` plugin provides them all), so names and
parameters are those perturbation history records, and a generator in the
same state gives the same picture as ever. Where two plugins register one
name, the first registered wins, as for ``vestige perturb``.

- **Re-sharing** (:data:`RESHARING`, :class:`Resharer`): what a picture goes
  through when it is re-shared, each step with probability 0.5 in the order
  a site applies them (crop, downscale, blur, JPEG); cropped and shrunk
  pictures are scaled back up (bicubic) as inference does with small inputs.
  The fingerprint detector's ``augment`` option and the ``cnn`` baseline
  train with it (issue 18).
- **Corruption sets** (:data:`SEEN_CORRUPTIONS`, :data:`UNSEEN_CORRUPTIONS`):
  RepMix's protocol, 15 ImageNet-C-style corruptions to train with and 4
  kept for testing only, each at severity 1..5
  (:func:`random_corruption`, :func:`corruption_augment`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from vestige.core.errors import PluginError

if TYPE_CHECKING:
    import numpy as np
    from PIL import Image

    from vestige.core.plugins import VestigePluginManager
    from vestige.plugin import Perturbation

__all__ = [
    "REPMIX_PROBABILITY", "RESHARING", "SEEN_CORRUPTIONS", "SEVERITIES", "UNSEEN_CORRUPTIONS", "Resharer",
    "corruption_augment", "jpeg_compression_qualities", "random_corruption", "registered_operations",
]

#: The re-sharing recipe, as stored in the info of an artifact trained with it.
RESHARING: dict[str, Any] = {
    "step_probability": 0.5,
    "crop": {"fraction_kept": [0.8, 1.0], "resize_back": "bicubic"},
    "resize": {"scale": [0.5, 1.0], "resize_back": "bicubic"},
    "blur": {"sigma": [0.3, 1.5]},
    "jpeg": {"quality": [40, 95]},
}

_CORRUPTION = "corrupt-"
#: The 15 corruptions RepMix trains with.
SEEN_CORRUPTIONS: tuple[str, ...] = tuple(_CORRUPTION + n for n in (
    "gaussian-noise", "shot-noise", "impulse-noise", "speckle-noise", "defocus-blur", "gaussian-blur", "frost", "fog",
    "brightness", "contrast", "elastic-transform", "pixelate", "jpeg-compression", "spatter", "saturate"))
#: The 4 corruptions kept for testing only.
UNSEEN_CORRUPTIONS: tuple[str, ...] = tuple(_CORRUPTION + n for n in ("glass-blur", "motion-blur", "zoom-blur", "snow"))
SEVERITIES = (1, 2, 3, 4, 5)
#: RepMix's probability of corrupting a training image.
REPMIX_PROBABILITY = 0.95
_JPEG_CORRUPTION = _CORRUPTION + "jpeg-compression"


def registered_operations(pm: VestigePluginManager | None = None) -> dict[str, Perturbation]:
    """Every perturbation the plugins registered, by name (the plugin manager in effect by default)."""
    from vestige.core.plugins import get_plugin_manager
    from vestige.evidence.derivatives import get_perturbations

    return get_perturbations(pm if pm is not None else get_plugin_manager())


def _require(operations: Mapping[str, Perturbation], names: Sequence[str], purpose: str) -> None:
    missing = sorted(set(names) - set(operations))
    if missing:
        raise PluginError(f"{purpose} needs the perturbation operations {', '.join(missing)}, which no plugin "
                          "registers; check `vestige plugins` (the built-in perturb plugin provides them)")


class Resharer:
    """Applies :data:`RESHARING` to pictures, drawing every choice from the generator it is handed."""

    def __init__(self, operations: Mapping[str, Perturbation] | None = None) -> None:
        available = registered_operations() if operations is None else operations
        _require(available, ("crop", "blur", "jpeg"), "re-sharing augmentation")
        self.ops = {name: available[name] for name in ("crop", "blur", "jpeg")}

    def __call__(self, image: Image.Image, rng: np.random.Generator) -> Image.Image:
        from PIL import Image

        size = image.size
        if rng.random() < 0.5:
            image = self.ops["crop"].apply(image, rng=rng, fraction=float(rng.uniform(0.8, 1.0)), position="centre")
            image = image.resize(size, Image.Resampling.BICUBIC)
        if rng.random() < 0.5:
            scale = float(rng.uniform(0.5, 1.0))
            small = (max(1, round(size[0] * scale)), max(1, round(size[1] * scale)))
            image = image.resize(small, Image.Resampling.BICUBIC).resize(size, Image.Resampling.BICUBIC)
        if rng.random() < 0.5:
            image = self.ops["blur"].apply(image, rng=rng, radius=float(rng.uniform(0.3, 1.5)))
        if rng.random() < 0.5:
            image = self.ops["jpeg"].apply(image, rng=rng, quality=int(rng.integers(40, 96)))
        return image


def random_corruption(image: Image.Image, rng: np.random.Generator, *, operations: Mapping[str, Perturbation],
                      names: Sequence[str] = SEEN_CORRUPTIONS,
                      severities: Sequence[int] = SEVERITIES) -> tuple[Image.Image, dict[str, Any]]:
    """Apply one corruption and severity drawn from ``rng``; return the image and its op record."""
    name = names[int(rng.integers(len(names)))]
    severity = int(severities[int(rng.integers(len(severities)))])
    if name not in operations:
        raise ValueError(f"no corruption named {name!r}; corruptions: "
                         f"{', '.join(n for n in operations if n.startswith(_CORRUPTION))}")
    return operations[name].apply(image, rng=rng, severity=severity), {"op": name, "params": {"severity": severity}}


def corruption_augment(image: Image.Image, rng: np.random.Generator, *, operations: Mapping[str, Perturbation],
                       p: float = REPMIX_PROBABILITY, names: Sequence[str] = SEEN_CORRUPTIONS) -> Image.Image:
    """RepMix's training augmentation: with probability ``p`` one random corruption at severity 1..5."""
    if rng.random() >= p:
        return image
    return random_corruption(image, rng, operations=operations, names=names)[0]


def jpeg_compression_qualities(operations: Mapping[str, Perturbation] | None = None) -> tuple[int, ...]:
    """The JPEG qualities of the ``corrupt-jpeg-compression`` corruption at severities 1..5 (its
    :attr:`~vestige.plugin.Perturbation.severity_levels`): the qualities a model trained on the seen set saw."""
    available = registered_operations() if operations is None else operations
    _require(available, (_JPEG_CORRUPTION,), "the JPEG qualities of the seen corruptions")
    levels = tuple(int(q) for q in available[_JPEG_CORRUPTION].severity_levels)
    if not levels:
        raise PluginError(f"the operation {_JPEG_CORRUPTION} declares no severity levels")
    return levels
