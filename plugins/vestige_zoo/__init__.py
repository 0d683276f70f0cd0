"""Zoo-32: Vestige's reference set of class-conditional 32×32 generators trained on CIFAR-10.

Seven generators that differ in the design choices that shape fingerprints
(upsampling, loss, normalisation, family), plus the CIFAR-10 classifier that
checks their samples show their class. Weights ship inside the package as
fp16 safetensors, verified against ``weights/manifest.json`` on every load.
"""

from __future__ import annotations

from vestige.plugin import GeneratorSpec, NetworkSpec, hookimpl

__version__ = "0.1.0"
__all__ = ["vestige_commands", "vestige_generators"]


@hookimpl
def vestige_generators() -> list[GeneratorSpec]:
    """The zoo's generators that have shipped weights (weights load when a spec's ``build`` is called)."""
    from vestige_zoo.registry import generator_specs

    return generator_specs()


@hookimpl
def vestige_networks() -> list[NetworkSpec]:
    """The zoo's trained networks that are not generators (the CIFAR-10 classifier), for other plugins."""
    from vestige_zoo.registry import network_specs

    return network_specs()


@hookimpl
def vestige_commands(cli) -> None:
    """Add ``vestige zoo``."""
    from vestige_zoo.commands import zoo

    cli.add_command(zoo)
