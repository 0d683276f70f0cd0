"""Measuring the verifier: AUROC and error rates on zoo-32, and the cost of inversion."""

from __future__ import annotations

import datetime as dt
import io
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from vestige_inversion.generators import LoadedGenerator, generator_specs, to_pictures
from vestige_inversion.optimise import Settings, invert
from vestige_inversion.statistics import auroc, complexity

HELD_OUT_SEED_BASE = 2_000_000
#: The perturbation chains of the robustness columns, as ``vestige analyze --robustness`` spells them.
CONDITIONS = {"clean": [], "jpeg90": [{"op": "jpeg", "params": {"quality": 90}}],
              "resize0.9": [{"op": "resize", "params": {"scale": 0.9}}]}


def perturbed(pictures: Sequence[Image.Image], condition: str) -> list[Image.Image]:
    """``pictures`` after the perturbation chain of ``condition`` (a key of :data:`CONDITIONS`), decoded again."""
    from vestige.plugin.services import apply_chain, get_perturbations, get_plugin_manager

    ops = CONDITIONS[condition]
    if not ops:
        return list(pictures)
    available = get_perturbations(get_plugin_manager())
    out = []
    for i, picture in enumerate(pictures):
        data = apply_chain(picture.copy(), ops, available, seed=f"inversion-evaluate:{condition}:{i}".encode())
        with Image.open(io.BytesIO(data)) as img:
            out.append(img.convert("RGB"))
    return out


def _real_pictures(data: Path, n: int) -> list[Image.Image]:
    from vestige.plugin.cifar import load_split

    split = load_split(data, "test")
    index = np.linspace(0, len(split.images) - 1, n).round().astype(int)  # spread over the (sorted) classes
    return [Image.fromarray(split.images[i].transpose(1, 2, 0)) for i in index]


def _scores(generator: LoadedGenerator, cal: Any, pictures: Sequence[Image.Image], batch: int = 64) -> dict[str, Any]:
    settings = Settings(**cal.settings)
    losses, accepted, scores, seconds = [], [], [], 0.0
    for start in range(0, len(pictures), batch):
        targets = generator.targets(pictures[start:start + batch])
        result = invert(generator.module, generator.spec.input_spec, targets, settings, encoder=generator.encoder,
                        device=generator.device)
        seconds += result.seconds
        comps = complexity(targets.numpy())
        for loss, comp in zip(result.loss.tolist(), comps):
            test = cal.threshold.test(loss, float(comp))
            losses.append(loss)
            accepted.append(test.belongs)
            scores.append(test.score)
    return {"loss": losses, "accepted": accepted, "score": scores, "seconds": seconds}


def evaluate(names: Sequence[str], calibrations: Mapping[str, Any], calibration_sha256: str, *, n: int, n_other: int,
             data: Path, conditions: Sequence[str]) -> dict[str, Any]:
    """Invert, with each of ``names``, its own held-out samples, real test images and every other zoo model's samples."""
    began = time.perf_counter()
    specs = generator_specs()
    sources = [s for s in specs if s in calibrations or specs[s].metadata.get("dataset") == "CIFAR-10 train"]
    real = _real_pictures(data, n)
    samples: dict[str, list[Image.Image]] = {}
    for source in sources:
        loaded = LoadedGenerator.load(specs[source])
        images, _ = loaded.sample(n if source in names else n_other, HELD_OUT_SEED_BASE)
        samples[source] = to_pictures(images)
    rows: dict[str, Any] = {}
    for name in names:
        cal = calibrations[name]
        generator = LoadedGenerator.load(specs[name])
        row: dict[str, Any] = {"calibration_sha256": cal.sha256, "weights_sha256": specs[name].weights_sha256,
                               "settings": dict(cal.settings), "statistic": cal.threshold.statistic,
                               "calibration": cal.summary(), "conditions": {}}
        for condition in conditions:
            own = _scores(generator, cal, perturbed(samples[name], condition))
            neg = _scores(generator, cal, perturbed(real, condition))
            cell: dict[str, Any] = {
                "auroc_vs_real": auroc(np.array(own["score"]), np.array(neg["score"])),
                "own_rejected": 1 - float(np.mean(own["accepted"])),
                "real_accepted": float(np.mean(neg["accepted"])),
                "own": own, "real": neg,
            }
            if condition == "clean":
                others = {}
                for source in sources:
                    if source == name:
                        continue
                    other = _scores(generator, cal, samples[source])
                    others[source] = {"auroc": auroc(np.array(own["score"]), np.array(other["score"])),
                                      "accepted_rate": float(np.mean(other["accepted"])), **other}
                cell["others"] = others
                every = np.concatenate([np.array(o["score"]) for o in others.values()]) if others else np.array([])
                cell["auroc_vs_other_models"] = auroc(np.array(own["score"]), every)
                cell["min_auroc_vs_a_model"] = min((o["auroc"] for o in others.values()), default=float("nan"))
            row["conditions"][condition] = cell
        count = sum(len(c["own"]["loss"]) + len(c["real"]["loss"]) + sum(len(o["loss"]) for o in c.get("others", {}).values())
                    for c in row["conditions"].values())
        total = sum(c["own"]["seconds"] + c["real"]["seconds"] + sum(o["seconds"] for o in c.get("others", {}).values())
                    for c in row["conditions"].values())
        row["seconds_per_image"] = total / max(count, 1)
        rows[name] = row
    return {"n": n, "n_other": n_other, "conditions": list(conditions), "sources": sources,
            "calibration_set_sha256": calibration_sha256, "minutes": (time.perf_counter() - began) / 60,
            "threads": torch.get_num_threads(), "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
            "generators": rows}


def markdown(result: Mapping[str, Any]) -> str:
    """The AUROC / error-rate table of :func:`evaluate`."""
    conds = [c for c in result["conditions"] if c != "clean"]
    head = ["generator", "AUROC vs real", "AUROC vs other models (all)", "worst AUROC vs one model",
            "own accepted", "real accepted", "other models' samples accepted",
            *[f"{c}: AUROC vs real / own accepted / real accepted" for c in conds], "s / image"]
    lines = [f"n = {result['n']} own held-out samples and {result['n']} CIFAR-10 test images per generator, "
             f"{result['n_other']} samples of each other zoo model; calibrated thresholds; "
             f"calibration set `{result['calibration_set_sha256'][:12]}`; {result['minutes']:.1f} min, "
             f"{result['threads']} thread(s), {result['date']}.", "",
             "| " + " | ".join(head) + " |", "|" + " --- |" * len(head)]
    for name, row in result["generators"].items():
        clean = row["conditions"].get("clean", {})
        worst = min(clean.get("others", {}).items(), key=lambda kv: kv[1]["auroc"], default=(None, None))
        cells = [f"`{name}`", f"{clean.get('auroc_vs_real', float('nan')):.3f}",
                 f"{clean.get('auroc_vs_other_models', float('nan')):.3f}",
                 f"{worst[1]['auroc']:.3f} (`{worst[0]}`)" if worst[0] else "–",
                 f"{100 * (1 - clean.get('own_rejected', float('nan'))):.0f} %",
                 f"{100 * clean.get('real_accepted', float('nan')):.0f} %", _others_accepted(clean)]
        for c in conds:
            cell = row["conditions"][c]
            cells.append(f"{cell['auroc_vs_real']:.3f} / {100 * (1 - cell['own_rejected']):.0f} % / "
                         f"{100 * cell['real_accepted']:.0f} %")
        cells.append(f"{row['seconds_per_image']:.2f}")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _others_accepted(clean: Mapping[str, Any]) -> str:
    others = clean.get("others", {})
    accepted = sum(sum(o["accepted"]) for o in others.values())
    total = sum(len(o["accepted"]) for o in others.values())
    return f"{accepted} of {total}" if total else "–"


def bench(names: Sequence[str], *, steps: int, batches: Sequence[int], device: str | None = None) -> dict[str, Any]:
    """Seconds per image for ``steps`` Adam steps, one restart, class screening over after the first step."""
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    specs = generator_specs()
    rows = []
    for name in names:
        generator = LoadedGenerator.load(specs[name], device)
        for size in batches:
            images, _ = generator.sample(size, HELD_OUT_SEED_BASE)
            settings = Settings(steps=steps, restarts=1, screen_steps=1)
            result = invert(generator.module, generator.spec.input_spec, images, settings, device=device)
            if device == "cuda":
                torch.cuda.synchronize()
            rows.append({"generator": name, "batch": size, "steps": result.steps, "seconds": result.seconds,
                         "seconds_per_image": result.seconds / size,
                         "seconds_per_image_per_1000_steps": result.seconds / size * 1000 / result.steps})
    return {"device": device, "threads": torch.get_num_threads(), "torch": torch.__version__,
            "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"), "rows": rows}
