"""Loading zoo models from their shipped, hash-verified weights, and their ``GeneratorSpec``s.

``load_generator(name)`` returns the module the zoo samples with:
``forward(z, y)`` maps a latent batch and class indices to images in
[-1, 1]. It is the GAN generator, the VAE's decoder, or the DDIM sampler
around the diffusion UNet. ``load_encoder("vae")`` returns the VAE's encoder.
The ``GeneratorSpec`` hands an inversion verifier the same module, except for
the StyleGAN-like model, whose noise maps join its latent there
(:func:`load_inversion_view`).
"""

from __future__ import annotations

import functools
from pathlib import Path

from torch import nn

from vestige.plugin import GeneratorSpec, InputSpec, NetworkSpec, NotFoundError, ShippedEntry
from vestige_zoo.catalog import LATENT_DIM, ZooModel, get_model, list_models
from vestige_zoo.stylegan_net import ExplicitNoise, StyleGenerator
from vestige_zoo.weights import WEIGHTS_DIR, shipped_weights, verified_state

VERSION = "1"


def weights_record(name: str, folder: Path = WEIGHTS_DIR) -> ShippedEntry:
    """The manifest entry of model ``name``; a model without shipped weights is refused."""
    get_model(name)
    record = shipped_weights(folder).entries.get(name)
    if record is None:
        raise NotFoundError(f"zoo model {name!r} has no shipped weights; train it with `vestige zoo train {name}` and ship them.")
    return record


def load_network(name: str, folder: Path = WEIGHTS_DIR) -> nn.Module:
    """The model's whole trained network in eval mode, from weights whose SHA-256 was checked."""
    record = weights_record(name, folder)
    network = get_model(name).network()
    network.load_state_dict(record.load())
    return network.eval().requires_grad_(False)


def as_generator(model: ZooModel, network: nn.Module) -> nn.Module:
    """The ``(z, y) -> image`` part of a loaded network."""
    return network.decoder if model.trainer == "vae" else network


def load_generator(name: str, folder: Path = WEIGHTS_DIR) -> nn.Module:
    """The verified ``(z, y) -> image`` module of generator ``name``."""
    model = get_model(name)
    if not model.is_generator:
        raise NotFoundError(f"{name!r} is not a generator; use one of {', '.join(m.name for m in list_models(generators_only=True))}.")
    return as_generator(model, load_network(name, folder))


def load_encoder(name: str, folder: Path = WEIGHTS_DIR) -> nn.Module:
    """The verified ``(x, y) -> z`` encoder of a model that has one (the VAE)."""
    if get_model(name).trainer != "vae":
        raise NotFoundError(f"zoo model {name!r} has no encoder; only the VAE has one.")
    return load_network(name, folder).encoder


def _explicit_noise(model: ZooModel) -> bool:
    """Whether an inversion verifier gets ``model`` as an :class:`ExplicitNoise` view (the StyleGAN-like one)."""
    return model.network is StyleGenerator


def load_inversion_view(name: str, folder: Path = WEIGHTS_DIR) -> nn.Module:
    """The module an inversion verifier optimises: the generator, or for the StyleGAN-like one its
    :class:`~vestige_zoo.stylegan_net.ExplicitNoise` view (latent = z and the noise maps)."""
    generator = load_generator(name, folder)
    return ExplicitNoise(generator).eval() if _explicit_noise(get_model(name)) else generator


def inversion_latent_shape(model: ZooModel) -> tuple[int, ...]:
    """The latent shape of :func:`load_inversion_view`'s module (computed without building a network)."""
    if _explicit_noise(model):
        return (LATENT_DIM + sum(side * side for side in StyleGenerator.noise_sides()),)
    return model.latent_shape


def generator_spec(model: ZooModel, folder: Path = WEIGHTS_DIR) -> GeneratorSpec:
    """The :class:`GeneratorSpec` of one zoo generator (weights load when ``build`` is called)."""
    record = shipped_weights(folder).entries.get(model.name)
    explicit_noise = _explicit_noise(model)
    return GeneratorSpec(
        name=model.name,
        version=VERSION,
        build=lambda: load_inversion_view(model.name, folder),
        input_spec=InputSpec(latent_shape=inversion_latent_shape(model), distribution="normal", num_classes=10),
        encoder=(lambda: load_encoder(model.name, folder)) if model.trainer == "vae" else None,
        weights_sha256=record.sha256 if record else None,
        metadata={"description": model.description, **model.design, "output": "3×32×32 in [-1, 1]", "dataset": "CIFAR-10 train",
                  **({"inversion_input": "z (64) then the noise maps of 4², 8², 16² and 32² pixels, all standard normal; "
                                         "the zoo's own samples derive their noise from z"} if explicit_noise else {})},
    )


def generator_specs(folder: Path = WEIGHTS_DIR) -> list[GeneratorSpec]:
    """Specs of every zoo generator that has shipped weights."""
    shipped = shipped_weights(folder)
    return [generator_spec(m, folder) for m in list_models(generators_only=True) if m.name in shipped]


def network_specs(folder: Path = WEIGHTS_DIR) -> list[NetworkSpec]:
    """Specs of the zoo's networks that are not generators and have shipped weights (weights load on ``build``)."""
    shipped = shipped_weights(folder)
    return [NetworkSpec(name=m.name, version=VERSION, build=functools.partial(load_network, m.name, folder),
                        weights_sha256=shipped.entries[m.name].sha256, description=m.description,
                        metadata={**m.design, "dataset": "CIFAR-10 train"})
            for m in list_models() if not m.is_generator and m.name in shipped.entries]


def load_trained_generator(trained_dir: Path) -> tuple[str, nn.Module, dict]:
    """The generator in one ``vestige zoo train --out`` folder (or one of its ``snapshots/step-N/``), unshipped.

    Returns the zoo model's name, the ``(z, y) -> image`` module, and the
    folder's training record (``<name>.json``: seed, steps, weights and their
    SHA-256), after checking the weights against that record. A folder must
    hold exactly one generator's record.
    """
    import json

    records = [json.loads(p.read_text()) for p in sorted(Path(trained_dir).glob("*.json"))]
    records = [r for r in records if isinstance(r, dict) and r.get("name") and r.get("weights")]
    if len(records) != 1:
        raise NotFoundError(f"{trained_dir} holds {len(records)} zoo training records; give one `vestige zoo train --out` "
                            "folder or one of its snapshots/step-N folders")
    record = records[0]
    model = get_model(record["name"])
    if not model.is_generator:
        raise NotFoundError(f"{trained_dir} holds {record['name']!r}, which is not a generator")
    network = model.network()
    network.load_state_dict(verified_state(Path(trained_dir) / record["weights"], record["sha256"]))
    return model.name, as_generator(model, network.eval().requires_grad_(False)), record
