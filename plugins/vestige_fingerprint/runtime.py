"""A network rebuilt from an artifact, ready to score pictures (imports torch).

The artifact's info names the architecture (see :func:`vestige_fingerprint.nets.architecture`);
its tensors are the fp16 weights, run in fp32. Training uses the same class to
score the validation split, so calibration is fitted on exactly the numbers
inference produces.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import torch

from vestige_fingerprint.nets import build

#: Images per forward pass.
CHUNK = 256


def to_float(pixels: torch.Tensor) -> torch.Tensor:
    """uint8 N×3×S×S -> float32 in [-1, 1]."""
    return pixels.to(torch.float32) / 127.5 - 1.0


def fp16_arrays(module: torch.nn.Module) -> dict[str, np.ndarray]:
    """The module's state as numpy arrays, floating tensors in fp16 (what an artifact stores)."""
    return {k: (v.detach().cpu().to(torch.float16) if v.is_floating_point() else v.detach().cpu()).numpy()
            for k, v in module.state_dict().items()}


class Runtime:
    """One network in eval mode on one device."""

    def __init__(self, hyper: Mapping[str, Any], tensors: Mapping[str, np.ndarray], device: str = "cpu",
                 precision: str = "fp32") -> None:
        self.hyper = dict(hyper)
        self.device = torch.device(device)
        self.precision = precision
        self.net = build(self.hyper)
        state = {k: torch.from_numpy(np.asarray(v, dtype=np.float32) if v.dtype == np.float16 else np.array(v))
                 for k, v in tensors.items()}
        self.net.load_state_dict(state)
        self.net.eval().to(self.device)
        self.autoencoder = self.hyper["variant"] == "autoencoder"
        #: ``test_time: "flip"`` (image variant): features averaged over the picture and its mirror image
        self.flip_average = self.hyper.get("test_time") == "flip" and not self.autoencoder

    @torch.no_grad()
    def score(self, pixels: np.ndarray, chunk: int = CHUNK) -> dict[str, np.ndarray]:
        """``logits`` (N×C float32) and ``features``: the dense layer (image variant), or the logits with the
        per-channel mean and spread of the code and of the fingerprint's magnitude (auto-encoder variant,
        which also returns ``fingerprints``, N×3×S×S)."""
        logits, extras, features = [], [], []
        for start in range(0, len(pixels), chunk):
            x = to_float(torch.from_numpy(np.ascontiguousarray(pixels[start : start + chunk])).to(self.device))
            with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.precision == "bf16"):
                if self.autoencoder:
                    code = self.net.encoder(x)
                    reconstruction = self.net.decoder(code).float()
                    extra = x - reconstruction
                    out = torch.einsum("nchw,kchw->nk", extra, self.net.model_fingerprints)
                    features.append(torch.cat([out.float(), _pooled(code.float()), _pooled(extra.abs())], 1).cpu().numpy())
                else:
                    extra = self.net.features(x)
                    if self.flip_average:
                        # test-time averaging over the mirror image (the network was trained with flips)
                        extra = (extra + self.net.features(x.flip(3))) / 2
                    out = self.net.head(extra)
            logits.append(out.float().cpu().numpy())
            extras.append(extra.float().cpu().numpy())
        n_classes = self.hyper["num_classes"]
        if not logits:
            empty = {"logits": np.zeros((0, n_classes), np.float32), "features": np.zeros((0, 0), np.float32)}
            return {**empty, "fingerprints": np.zeros((0,), np.float32)} if self.autoencoder else empty
        if self.autoencoder:
            return {"logits": np.concatenate(logits), "fingerprints": np.concatenate(extras),
                    "features": np.concatenate(features)}
        return {"logits": np.concatenate(logits), "features": np.concatenate(extras)}


def _pooled(maps: torch.Tensor) -> torch.Tensor:
    """Per-channel mean and standard deviation of N×C×H×W maps: N×2C."""
    return torch.cat([maps.mean(dim=(2, 3)), maps.std(dim=(2, 3))], 1)
