"""The zoo's catalogue: every model, how to build it, its design choices and its training recipe.

The catalogue is code, the weights are data: each entry names the network
and recipe, and ``weights/manifest.json`` says which file holds its trained
weights. :func:`list_models` and :func:`get_model` are the registry.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from torch import nn

from vestige.plugin import NotFoundError
from vestige_zoo.classifier_net import CifarClassifier
from vestige_zoo.diffusion_net import DdimSampler
from vestige_zoo.gan_nets import NearestUpsampleGenerator, PixelShuffleGenerator, TransposedConvGenerator
from vestige_zoo.stylegan_net import StyleGenerator
from vestige_zoo.vae_net import ConditionalVae

LATENT_DIM = 64


@dataclass(frozen=True)
class ZooModel:
    """One model of the zoo.

    ``network()`` builds the module whose state the weight file holds (the
    generator, the whole VAE, the DDIM-wrapped UNet, or the classifier);
    ``trainer`` is ``gan``, ``vae``, ``diffusion`` or ``classifier``;
    ``recipe`` holds the trainer's settings; ``design`` the design choices a
    fingerprint study groups by.
    """

    name: str
    description: str
    trainer: str
    network: Callable[[], nn.Module]
    latent_shape: tuple[int, ...]
    design: dict[str, str]
    recipe: dict[str, Any] = field(default_factory=dict)
    minutes: float = 8.0

    @property
    def is_generator(self) -> bool:
        return self.trainer != "classifier"


def _gan(name: str, description: str, generator: Callable[[], nn.Module], design: dict[str, str], **recipe: Any) -> ZooModel:
    return ZooModel(name, description, "gan", generator, (LATENT_DIM,), {"family": "GAN", **design}, recipe, minutes=7.0)


_DCGAN_DESIGN = {"upsampling": "transposed convolution", "loss": "non-saturating GAN + auxiliary classifier + mode seeking",
                 "normalisation": "batch norm (G and D)", "conditioning": "class embedding concatenated to z; projection D"}

MODELS: tuple[ZooModel, ...] = (
    _gan("dcgan-s0", "DCGAN, transposed convolutions, seed 0 (the fine-grained pair with dcgan-s1).",
         TransposedConvGenerator, _DCGAN_DESIGN, loss="nonsaturating", d_norm="batch"),
    _gan("dcgan-s1", "The same DCGAN trained with seed 1: differs from dcgan-s0 only by its seed.",
         TransposedConvGenerator, _DCGAN_DESIGN, loss="nonsaturating", d_norm="batch"),
    _gan("nnup-hinge", "Nearest-neighbour upsampling + 3×3 convolution, spectral-norm discriminator, hinge loss.",
         NearestUpsampleGenerator,
         {"upsampling": "nearest neighbour + convolution", "loss": "hinge + auxiliary classifier + mode seeking",
          "normalisation": "batch norm (G), spectral norm (D)", "conditioning": "class embedding concatenated to z; projection D"},
         loss="hinge", d_norm="spectral"),
    _gan("pixelshuffle-wgangp", "Sub-pixel (pixel-shuffle) upsampling, WGAN-GP critic.",
         lambda: PixelShuffleGenerator(norm="none"),
         {"upsampling": "pixel shuffle (sub-pixel convolution)", "loss": "WGAN-GP + auxiliary classifier + mode seeking",
          "normalisation": "none (G and critic)", "conditioning": "class embedding concatenated to z; projection critic"},
         loss="wgan-gp", d_norm="none"),
    _gan("stylegan-mini", "StyleGAN-like: mapping network, modulated/demodulated convolutions, noise inputs.",
         StyleGenerator,
         {"upsampling": "bilinear + modulated convolution", "loss": "non-saturating GAN + auxiliary classifier + mode seeking",
          "normalisation": "weight demodulation (G), spectral norm (D)", "conditioning": "class embedding in the mapping network; projection D"},
         loss="nonsaturating", d_norm="spectral"),
    ZooModel("vae", "Convolutional VAE with an encoder; the decoder upsamples by transposed convolutions.",
             "vae", ConditionalVae, (LATENT_DIM,),
             {"family": "VAE", "upsampling": "transposed convolution", "loss": "Gaussian likelihood + KL (ELBO)",
              "normalisation": "batch norm", "conditioning": "class embedding in encoder and decoder"},
             {"sigma": 0.1}, minutes=4.0),
    ZooModel("ddpm-ddim", "Small UNet trained as DDPM (ε-prediction, 1000 steps), sampled by DDIM in 25 steps with guidance 4.",
             "diffusion", DdimSampler, (3, 32, 32),
             {"family": "diffusion", "upsampling": "nearest neighbour + convolution (UNet)", "loss": "DDPM ε-prediction MSE",
              "normalisation": "group norm", "conditioning": "class embedding, classifier-free guidance 4.0",
              "sampler": "DDIM, 25 steps, η = 0"},
             {"label_dropout": 0.1}, minutes=45.0),
    ZooModel("cifar10-classifier", "The project's CIFAR-10 classifier: checks that samples show their class.",
             "classifier", CifarClassifier, (3, 32, 32),
             {"family": "classifier", "normalisation": "batch norm"}, {"batch_size": 128}, minutes=7.0),
)
_BY_NAME = {m.name: m for m in MODELS}
CLASSIFIER = "cifar10-classifier"


def list_models(pattern: str = "*", *, generators_only: bool = False) -> list[ZooModel]:
    """The models whose name matches the shell-style ``pattern``, in catalogue order."""
    return [m for m in MODELS if fnmatch.fnmatchcase(m.name, pattern) and (m.is_generator or not generators_only)]


def get_model(name: str) -> ZooModel:
    """The model called ``name``; an unknown name is refused with the valid ones."""
    try:
        return _BY_NAME[name]
    except KeyError:
        raise NotFoundError(f"no zoo model is called {name!r}; use one of {', '.join(_BY_NAME)}.") from None
