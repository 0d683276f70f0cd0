"""Datasets built by ``vestige bench build`` (a manifest of records with their SHA-256), read-only, for a
plugin's training and evaluation commands; :func:`open_dataset` checks every file against its manifest."""

from __future__ import annotations

from vestige.models.datasets import Dataset, Record, encode_png, open_dataset, seeded_rng

__all__ = ["Dataset", "Record", "encode_png", "open_dataset", "seeded_rng"]
