"""Fingerprint structure: do generators that share a design choice have similar fingerprints?

As in the paper's table, the fingerprints are clustered and the clusters are
scored against each design choice by normalised mutual information (NMI). For
each design attribute (upsampling, loss, normalisation, family, ... as the
generators' metadata records them), ``k`` is its number of distinct values
among the models, and two clusterings are scored:

* **per model**: each model's fingerprint is the mean attributor embedding of
  its images' artifacts (L2-normalised); average-linkage agglomerative
  clustering (cosine distance) into ``k`` clusters; NMI over the models. With
  a handful of models and ``k`` close to their number this is coarse, so:
* **per image**: k-means (``k`` clusters, 10 restarts, seed 0) on the
  per-image embeddings, NMI against the attribute value of each image's model.

Both are computed for two fingerprints: the attributor's **embedding** of the
artifact (what the trained model learned, which was trained to separate these
very generators), and the artifact's **spectrum** (channel-mean log |FFT2|;
for sl the artifact vector), which owes nothing to the attributor.

The picture is one tile per model: the mean log-magnitude spectrum of its
artifacts (channels averaged, centred), captioned with its design choices.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from vestige.plugin.training import REAL

#: Metadata keys that are descriptions, not design choices.
NOT_DESIGN = frozenset({"description", "output", "dataset", "sampler"})


def design_attributes(metadata: Mapping[str, Mapping[str, Any]], preferred: Sequence[str] = ()) -> list[str]:
    """The design keys to score: ``preferred`` first, then any other string key every model has."""
    names = list(metadata)
    common = [k for k in dict.fromkeys(k for m in metadata.values() for k in m)
              if k not in NOT_DESIGN and all(isinstance(metadata[n].get(k), str) for n in names)]
    return [k for k in preferred if k in common] + [k for k in common if k not in preferred]


def cluster_models(fingerprints: np.ndarray, k: int) -> np.ndarray:
    """Average-linkage agglomerative clusters (cosine distance) of per-model fingerprints into ``k``."""
    from scipy.cluster.hierarchy import fcluster, linkage

    if len(fingerprints) <= k:
        return np.arange(len(fingerprints))
    tree = linkage(fingerprints, method="average", metric="cosine")
    return fcluster(tree, t=k, criterion="maxclust") - 1


def cluster_images(embeddings: np.ndarray, k: int, seed: int = 0) -> np.ndarray:
    """k-means clusters of per-image embeddings (10 restarts, fixed seed)."""
    from sklearn.cluster import KMeans

    return KMeans(n_clusters=k, n_init=10, random_state=seed).fit_predict(embeddings)


def nmi_table(model_names: Sequence[str], fingerprints: np.ndarray, image_models: Sequence[str],
              image_embeddings: np.ndarray | None, metadata: Mapping[str, Mapping[str, Any]],
              attributes: Sequence[str], nmi: Callable[[Sequence[Any], Sequence[Any]], float | None]) -> list[dict[str, Any]]:
    """One row per design attribute: its ``k``, the per-model and per-image NMI, and the model clusters."""
    rows = []
    for attribute in attributes:
        values = [str(metadata[m][attribute]) for m in model_names]
        k = len(set(values))
        row: dict[str, Any] = {"attribute": attribute, "k": k, "values": dict(zip(model_names, values))}
        if k < 2:
            row.update(nmi_models=None, nmi_images=None, clusters=None, note="one value: nothing to explain")
            rows.append(row)
            continue
        clusters = cluster_models(fingerprints, k)
        row["clusters"] = {m: int(c) for m, c in zip(model_names, clusters)}
        row["nmi_models"] = nmi(values, clusters.tolist())
        if image_embeddings is not None and len(image_embeddings) > k:
            image_values = [str(metadata[m][attribute]) for m in image_models]
            row["nmi_images"] = nmi(image_values, cluster_images(image_embeddings, k).tolist())
        else:
            row["nmi_images"] = None
        rows.append(row)
    return sorted(rows, key=lambda r: -(r["nmi_images"] if r["nmi_images"] is not None else -1.0))


def fingerprints(embeddings: np.ndarray, image_models: Sequence[str], model_names: Sequence[str]) -> np.ndarray:
    """Per-model mean embedding, L2-normalised."""
    models = np.asarray(image_models)
    out = np.stack([embeddings[models == m].mean(0) for m in model_names])
    return out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)


def raw_fingerprints(artifacts: np.ndarray) -> np.ndarray:
    """Per-image fingerprints that owe nothing to the attributor: the channel-mean log |FFT2| of a picture
    artifact (1,024 values), or the artifact vector itself (sl)."""
    if artifacts.ndim != 4:
        return artifacts.reshape(len(artifacts), -1)
    spectrum = np.log(np.abs(np.fft.fft2(artifacts, axes=(2, 3))) + 1e-6).mean(axis=1)
    return spectrum.reshape(len(artifacts), -1)


def mean_spectrum(artifacts: np.ndarray) -> np.ndarray:
    """Mean over images and channels of log |FFT2| of picture artifacts (N×3×32×32), centred; vectors give a 1×D row."""
    if artifacts.ndim != 4:
        return np.log(np.abs(artifacts).mean(0, keepdims=True) + 1e-6)
    spectrum = np.log(np.abs(np.fft.fft2(artifacts, axes=(2, 3))) + 1e-6).mean(axis=(0, 1))
    return np.fft.fftshift(spectrum)


def analyse(detector: Any, dataset: Any, metadata: Mapping[str, Mapping[str, Any]], *, per_source: int = 200,
            preferred: Sequence[str] = ("upsampling", "loss", "normalisation", "family"),
            progress: Callable[[str], None] | None = None) -> tuple[dict[str, Any], bytes]:
    """The structure analysis of ``dataset``'s clean test images with a trained ``detector``: result and picture."""
    import torch

    from vestige.plugin.metrics import normalized_mutual_information
    from vestige_manifpt import attributor
    from vestige_manifpt.detector import project
    from vestige_manifpt.pictures import fingerprint_grid_png
    from vestige_manifpt.spaces import is_picture, stack

    say = progress or (lambda _: None)
    state = detector.model()
    space = state["space"]
    models = [s for s in dataset.sources if s != REAL and s in metadata]
    skipped = [s for s in dataset.sources if s != REAL and s not in metadata]
    if len(models) < 2:
        raise ValueError("the structure analysis needs at least two generators with design metadata")
    embeddings, raw, image_models, spectra = [], [], [], []
    for model in models:
        records = [r for r in dataset.records(split="test", condition="clean") if r.source == model][:per_source]
        say(f"{model}: projecting {len(records)} clean test images in {space} space")
        pixels = stack([i.image for i in dataset.inputs(records)])
        artifacts, _, _ = project(pixels, state["reference"], space)
        with torch.no_grad():
            emb = state["net"].embed(attributor.normalise(artifacts, state["scale"])).numpy()
        embeddings.append(emb)
        raw.append(raw_fingerprints(artifacts.numpy()))
        image_models += [model] * len(emb)
        spectra.append(mean_spectrum(artifacts.numpy()) if is_picture(space) else
                       np.tile(mean_spectrum(artifacts.numpy()), (8, 1)))
    attributes = design_attributes({m: metadata[m] for m in models}, preferred)
    tables = {}
    for kind, per_image in (("embedding", np.concatenate(embeddings)), ("spectrum", np.concatenate(raw))):
        tables[kind] = nmi_table(models, fingerprints(per_image, image_models, models), image_models, per_image,
                                 metadata, attributes, normalized_mutual_information)
    rows = tables["embedding"]
    by_attribute = {r["attribute"]: r for r in tables["spectrum"]}
    for row in rows:
        other = by_attribute[row["attribute"]]
        row["spectrum"] = {"nmi_images": other["nmi_images"], "nmi_models": other["nmi_models"],
                           "clusters": other["clusters"]}
    result = {"space": space, "model_sha256": detector.model_sha256, "dataset_sha256": dataset.sha256,
              "models": models, "skipped_without_metadata": skipped, "images_per_model": per_source,
              "table": rows}
    labels = [[m, *(f"{a}: {str(metadata[m][a]).replace('ε', 'eps')[:28]}" for a in attributes[:4])] for m in models]
    picture = fingerprint_grid_png(spectra, labels, f"ManiFPT fingerprints ({space}): mean artifact spectrum per model")
    return result, picture


def markdown(result: Mapping[str, Any]) -> str:
    """The NMI table as Markdown."""
    def fmt(v: float | None) -> str:
        return "–" if v is None else f"{v:.2f}"

    lines = ["| design choice | k | embedding: NMI per image | embedding: NMI per model | "
             "spectrum: NMI per image | spectrum: NMI per model |",
             "| --- | ---: | ---: | ---: | ---: | ---: |"]
    for row in result["table"]:
        spectrum = row.get("spectrum", {})
        lines.append(f"| {row['attribute']} | {row['k']} | {fmt(row['nmi_images'])} | {fmt(row['nmi_models'])} | "
                     f"{fmt(spectrum.get('nmi_images'))} | {fmt(spectrum.get('nmi_models'))} |")
    return "\n".join(lines)
