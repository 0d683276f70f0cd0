"""A lab's own generator, registered so that ``vestige detect --detector inversion`` can verify against it.

The generator is a small class-conditional convolutional network (a latent
of 8 values and one of 3 classes -> a 3×16×16 image in [-1, 1]). A real lab
ships trained weights as a safetensors file; to stay a few lines, this
example builds its weights from a fixed seed and checks them against the
SHA-256 recorded below, exactly as it would check a file. Torch is imported
only when the model is built, so listing plugins stays fast.
"""

from __future__ import annotations

import hashlib

from vestige.plugin import GeneratorSpec, InputSpec, hookimpl

__version__ = "0.3.0"
__all__ = ["build_generator", "vestige_generators"]

LATENT = 8
CLASSES = 3
#: SHA-256 of the weights (every tensor's float32 bytes, in ``state_dict`` order).
WEIGHTS_SHA256 = "39375302ce50028ab34933e4389bf22362fd815febece2f20c2cd0b9b7c5fe5c"


def _network():
    import torch
    from torch import nn

    class LabGenerator(nn.Module):
        """(z, y) -> 3×16×16: linear to 8×4×4, two nearest-neighbour upsamplings with 3×3 convolutions, tanh."""

        def __init__(self) -> None:
            super().__init__()
            self.embed = nn.Embedding(CLASSES, LATENT)
            self.linear = nn.Linear(2 * LATENT, 16 * 4 * 4)
            self.conv1 = nn.Conv2d(16, 16, 3, padding=1)
            self.conv2 = nn.Conv2d(16, 3, 3, padding=1)

        def forward(self, z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
            h = self.linear(torch.cat([z, self.embed(y)], dim=1)).view(-1, 16, 4, 4)
            h = nn.functional.interpolate(torch.relu(h), scale_factor=2, mode="nearest")
            h = nn.functional.interpolate(torch.relu(self.conv1(h)), scale_factor=2, mode="nearest")
            return torch.tanh(2 * self.conv2(h))

    torch_state = torch.random.get_rng_state()
    try:
        torch.manual_seed(20261123)
        network = LabGenerator()
    finally:
        torch.random.set_rng_state(torch_state)
    return network


def weights_sha256(network) -> str:
    digest = hashlib.sha256()
    for tensor in network.state_dict().values():
        digest.update(tensor.detach().float().contiguous().numpy().tobytes())
    return digest.hexdigest()


def build_generator():
    """The generator, its weights verified (a lab would load its safetensors file here and check its hash)."""
    network = _network()
    if weights_sha256(network) != WEIGHTS_SHA256:
        raise RuntimeError("labgen weights do not match their recorded SHA-256; reinstall vestige-labgen")
    return network.eval()


@hookimpl
def vestige_generators() -> list[GeneratorSpec]:
    """The lab's generator: how to build it, what it takes, and the hash of its weights."""
    return [GeneratorSpec(
        name="labgen", version=__version__, build=build_generator,
        input_spec=InputSpec(latent_shape=(LATENT,), distribution="normal", num_classes=CLASSES),
        weights_sha256=WEIGHTS_SHA256,
        metadata={"family": "GAN", "output": "3×16×16 in [-1, 1]", "owner": "example lab"},
    )]
