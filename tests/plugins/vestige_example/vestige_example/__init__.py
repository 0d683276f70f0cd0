"""An example third-party plugin, installed and run by the test suite.

It shows the whole public surface a detector plugin needs: the hook marker,
the Detector base class and the Finding it returns, and a CLI command.
"""

from __future__ import annotations

from collections.abc import Sequence

import click
import numpy as np

from vestige.plugin import Detector, Finding, ImageInput, hookimpl

__version__ = "1.2.0"


class FlatnessDetector(Detector):
    """Flags images with almost no pixel variation (a blank or synthetic test card).

    Deliberately simple: it exists to exercise the plugin contract.
    """

    name = "example-flatness"
    version = "1.2.0"
    kind = "attribution"
    description = "Example plugin: flags nearly uniform images."
    batch_size = 2

    def analyze(self, batch: Sequence[ImageInput]) -> list[Finding]:
        findings = []
        for item in batch:
            pixels = np.asarray(item.image, dtype=np.float32)
            spread = float(pixels.std())
            flat = spread < 2.0
            findings.append(
                self.finding(
                    label="synthetic" if flat else "unknown",
                    source="test-card" if flat else None,
                    scores={"flat": 1.0 if flat else 0.0},
                    confidence=1.0 if flat else None,
                    evidence={"pixel_std": spread, "width": item.image.width},
                )
            )
        return findings


class BrokenDetector(Detector):
    """Always raises: the platform must isolate it."""

    name = "example-broken"
    version = "0.0.1"
    kind = "attribution"
    description = "Example plugin: raises on every batch."

    def analyze(self, batch: Sequence[ImageInput]) -> list[Finding]:
        raise RuntimeError("the example detector is broken on purpose")


@hookimpl
def vestige_detectors() -> list[Detector]:
    return [FlatnessDetector(), BrokenDetector()]


@hookimpl
def vestige_commands(cli: click.Group) -> None:
    @cli.command("example-hello")
    def hello() -> None:
        """Say hello from the example plugin."""
        click.echo("hello from vestige-example")
