"""A plain convolutional network trained with re-sharing augmentation: the floor robust attribution must beat.

Issue 18 measured this recipe against Vestige's published-method detectors
on a lab's six face generators and found it ahead of all of them under
re-sharing; it is kept as a baseline so every benchmark measures that floor
in the same run. Four blocks of a 3×3 convolution, batch normalisation,
ReLU and 2× max pooling (``--width`` channels, doubling to at most 4×
``--width``: 32, 64, 128, 128 by default), global average pooling and a
linear layer. Adam (lr 1e-3), batch 64, ``--epochs`` epochs; every epoch a
share ``--augment`` of the training images is re-shared afresh
(:mod:`vestige.plugin.augment`: crop, downscale, blur, JPEG) and every
image is flipped with probability 0.5. The last epoch's network is kept (no
early stopping: the floor is the recipe as measured). Inputs are pixels in
[-1, 1] at the working resolution (bicubic resize, as :mod:`.preparation`
does); the logits are the raw scores, temperature-scaled on validation.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from vestige.plugin.training import TrainOption
from vestige_baselines.detector import SIZE_OPTION, BaselineDetector, BaselineModel, Scored, TrainingDataError

BATCH = 64
LEARNING_RATE = 1e-3
BLOCKS = 4


def _network(width: int, classes: int) -> Any:
    """The network, initialised from torch's global generator (seed it first)."""
    from torch import nn

    layers: list[nn.Module] = []
    cin = 3
    for block in range(BLOCKS):
        cout = width * min(2**block, 4)
        layers += [nn.Conv2d(cin, cout, 3, padding=1), nn.BatchNorm2d(cout), nn.ReLU(), nn.MaxPool2d(2)]
        cin = cout
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(cin, classes)]
    return nn.Sequential(*layers)


def _as_input(pixels: np.ndarray) -> Any:
    """``(B, S, S, 3)`` uint8 -> ``(B, 3, S, S)`` float in [-1, 1]."""
    import torch

    return torch.from_numpy(np.ascontiguousarray(pixels.transpose(0, 3, 1, 2))).float().div(127.5).sub(1.0)


class CnnModel(BaselineModel):
    """The trained network, rebuilt from the artifact's arrays; scores are its logits."""

    def __init__(self, tensors: Mapping[str, np.ndarray], width: int, classes: int) -> None:
        import torch

        self.net = _network(width, classes)
        self.net.load_state_dict({k: torch.from_numpy(np.array(v)) for k, v in tensors.items()})
        self.net.eval()

    def score(self, pixels: np.ndarray) -> Scored:
        import torch

        with torch.no_grad():
            return Scored(raw=self.net(_as_input(pixels[None])).double().numpy()[0])


class CnnDetector(BaselineDetector):
    name = "cnn"
    description = "Plain four-block CNN trained with re-sharing augmentation (issue 18's floor)."
    preparation = "resize"
    raw_name = "logits"
    scores_are = "probabilities: the network's temperature-scaled softmax"
    calibration = "temperature"
    train_options = (
        SIZE_OPTION,
        TrainOption("epochs", int, 12, "Training epochs (the last one's network is kept)."),
        TrainOption("augment", float, 0.7, "Share of the training images re-shared afresh every epoch (0 to 1)."),
        TrainOption("width", int, 32, "Channels of the first block (doubling per block, at most 4×)."),
    )

    def learn(self, pixels: np.ndarray, labels: np.ndarray, sources: tuple[str, ...], options: dict[str, Any],
              seed: int, progress: Callable[[str], None]) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        import torch
        import torch.nn.functional as F
        from PIL import Image

        from vestige.plugin.augment import RESHARING, Resharer
        from vestige.plugin.training import EpochClock

        if not 0.0 <= options["augment"] <= 1.0:
            raise TrainingDataError(f"augment is a share of the training images, in [0, 1], not {options['augment']}")
        if options["epochs"] < 1 or options["width"] < 1:
            raise TrainingDataError("epochs and width must be at least 1")
        if pixels.shape[1] % 2**BLOCKS:
            raise TrainingDataError(f"the working size must be a multiple of {2**BLOCKS} for {BLOCKS} poolings, "
                                    f"not {pixels.shape[1]}")
        torch.manual_seed(seed)
        net = _network(options["width"], len(sources))
        optimizer = torch.optim.Adam(net.parameters(), lr=LEARNING_RATE)
        order_rng = torch.Generator().manual_seed(seed)
        resharer = Resharer()
        pictures = [Image.fromarray(p) for p in pixels]
        y = torch.from_numpy(labels)
        clock = EpochClock(options["epochs"], None)
        for epoch in range(1, options["epochs"] + 1):
            rng = np.random.default_rng([seed, 0x18, epoch])
            batch_pixels = pixels.copy()
            for i in np.flatnonzero(rng.random(len(pixels)) < options["augment"]):
                batch_pixels[i] = np.asarray(resharer(pictures[i], rng), dtype=np.uint8)
            flips = rng.random(len(pixels)) < 0.5
            batch_pixels[flips] = batch_pixels[flips][:, :, ::-1]
            x = _as_input(batch_pixels)
            net.train()
            total = 0.0
            order = torch.randperm(len(labels), generator=order_rng)
            for start in range(0, len(order), BATCH):
                idx = order[start:start + BATCH]
                loss = F.cross_entropy(net(x[idx]), y[idx])
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                total += float(loss.detach()) * len(idx)
            progress(f"{clock.lap()}: train loss {total / len(labels):.4f}")
        tensors = {k: v.detach().cpu().numpy().copy() for k, v in net.state_dict().items()}
        return tensors, {"width": options["width"], "blocks": BLOCKS, "epochs": options["epochs"],
                         "augment": options["augment"], "resharing": RESHARING, "batch_size": BATCH,
                         "optimizer": {"name": "adam", "lr": LEARNING_RATE}, "threads": torch.get_num_threads(),
                         **clock.metrics()}

    def augmentation_domain(self) -> Mapping[str, Any]:
        """With augmentation, the re-sharing steps, JPEG 40–95 and downscales to 0.5 were trained on."""
        from vestige.plugin.augment import RESHARING

        hyper = self.require_artifact().info["hyperparameters"]
        if not hyper.get("augment"):
            return {}
        return {"perturbations": ["crop-resize-back", "gaussian-blur", "jpeg", "resize-down-up"],
                "jpeg_qualities": list(RESHARING["jpeg"]["quality"]), "scale_range": [RESHARING["resize"]["scale"][0], 1.0]}

    def model(self, tensors: Mapping[str, np.ndarray], info: Mapping[str, Any]) -> BaselineModel:
        return CnnModel(tensors, int(info["hyperparameters"]["width"]), len(info["sources"]))
