"""Evidence of quality: the classifier's test accuracy, each generator's class accuracy, sampling speed.

Class accuracy is the fraction of a generator's class-conditional samples
that the project's CIFAR-10 classifier assigns to the class they were drawn
for (chance: 10 %). Sampling throughput is images per second of
``generate`` on the chosen device, after one warm-up batch.
"""

from __future__ import annotations

import platform
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from vestige.plugin.cifar import CLASSES, load_split
from vestige_zoo.catalog import CLASSIFIER, get_model
from vestige_zoo.registry import load_generator, load_network, weights_record
from vestige_zoo.sampling import generate, latents
from vestige_zoo.weights import WEIGHTS_DIR


@torch.no_grad()
def classify(classifier: nn.Module, images: torch.Tensor, batch_size: int = 500) -> torch.Tensor:
    """Predicted class indices of N×3×32×32 images in [-1, 1]."""
    return torch.cat([classifier(images[i:i + batch_size]).argmax(1) for i in range(0, len(images), batch_size)])


def uint8_to_unit(images: np.ndarray | torch.Tensor) -> torch.Tensor:
    """N×3×32×32 uint8 -> float in [-1, 1]."""
    return torch.as_tensor(images).float().div(127.5).sub(1.0)


def quantise(images: torch.Tensor) -> torch.Tensor:
    """Round [-1, 1] images to the 8-bit values a PNG stores, so samples are judged as written."""
    return uint8_to_unit(((images.clamp(-1, 1) + 1) * 127.5).round())


def per_class_accuracy(predicted: torch.Tensor, labels: torch.Tensor) -> dict[str, float]:
    return {c: float((predicted[labels == i] == i).float().mean()) for i, c in enumerate(CLASSES) if (labels == i).any()}


def classifier_test_accuracy(data: Path) -> dict[str, Any]:
    """Accuracy of the shipped classifier on the CIFAR-10 test split of the zip at ``data``."""
    split = load_split(data, "test")
    labels = torch.from_numpy(split.labels)
    predicted = classify(load_network(CLASSIFIER), uint8_to_unit(split.images))
    return {"accuracy": float((predicted == labels).float().mean()), "n": len(labels),
            "per_class": per_class_accuracy(predicted, labels), "weights_sha256": weights_record(CLASSIFIER).sha256}


def sample_class_accuracy(name: str, per_class: int = 100, seed: int = 0, classifier: nn.Module | None = None,
                          folder: Path = WEIGHTS_DIR) -> dict[str, Any]:
    """How often the classifier names the class each of ``per_class`` × 10 samples of ``name`` was drawn for.

    The generator's weights come from ``folder`` (a candidate release, say);
    the judge is always the shipped classifier.
    """
    classifier = classifier or load_network(CLASSIFIER)
    n = per_class * len(CLASSES)
    y = torch.arange(n) % len(CLASSES)
    images = quantise(generate(load_generator(name, folder), latents(get_model(name).latent_shape, n, seed), y))
    predicted = classify(classifier, images)
    return {"model": name, "accuracy": float((predicted == y).float().mean()), "n": n, "seed": seed,
            "per_class": per_class_accuracy(predicted, y), "weights_sha256": weights_record(name, folder).sha256}


def sampling_throughput(name: str, n: int = 256, batch_size: int = 64, device: str = "cpu") -> dict[str, Any]:
    """Images per second when generator ``name`` draws ``n`` images in batches of ``batch_size``."""
    generator = load_generator(name).to(device)
    model = get_model(name)
    z, y = latents(model.latent_shape, n, 0), torch.arange(n) % len(CLASSES)
    generate(generator, z[:batch_size], y[:batch_size], batch_size, device)  # warm-up
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    start = time.perf_counter()
    generate(generator, z, y, batch_size, device)
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    return {"model": name, "images_per_s": n / seconds, "n": n, "batch_size": batch_size, "seconds": seconds,
            "device": device, "threads": torch.get_num_threads(),
            "hardware": f"{platform.machine()} CPU" if device == "cpu" else torch.cuda.get_device_name(device)}
