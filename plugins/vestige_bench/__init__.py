"""Vestige's research harness: the ``vestige bench ...`` commands behind docs/benchmarks.md.

It builds the evaluation datasets (zoo32, the tiles development set, folders
of a lab's own images), trains and scores every detector on them (accuracy,
open-set, calibration, robustness, open-world, throughput) and measures the
platform itself (ingest, near-duplicates, analyses on workers, the web API
under load).

It is a built-in plugin that registers the ``bench`` command group through the
``vestige_commands`` hook, not part of the lab platform's core: a lab's
examiners never need it, and nothing in the core or in another plugin imports
it. Unlike a detector plugin it is a tool layer above both, like the web app:
it drives the core's analysis, evidence and jobs services and the built-in
plugins it measures (the zoo's generators, the perturbation plugin's
corruptions). The import contracts in ``.importlinter`` say exactly that.
"""

from __future__ import annotations

import click

from vestige.plugin import hookimpl

__version__ = "0.1.0"


@hookimpl
def vestige_commands(cli: click.Group) -> None:
    from vestige_bench.commands import bench_group

    cli.add_command(bench_group)
