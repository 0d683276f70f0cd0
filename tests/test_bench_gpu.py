"""``vestige bench gpu`` (issue 23 part 5) runs on a CPU-only machine with small numbers and writes the JSON the
GPU host's run is read from: every detector end to end, batched inversion, one worker draining an analysis."""

from __future__ import annotations

import json

import pytest


def test_bench_gpu_on_the_cpu_writes_every_part(vestige, tmp_path):
    out = tmp_path / "gpu.json"
    result = vestige("bench", "gpu", "--device", "cpu", "--n", "4", "--batch-size", "4", "--analysis-images", "4",
                     "--inversion-batch", "2", "--inversion-steps", "2", "--detectors", "fingerprint,metadata",
                     "--out", out)
    assert result.exit_code == 0, result.stderr
    report = json.loads(out.read_text())
    assert report["format"] == "vestige-gpu-bench/1" and report["device"] == "cpu" and "CPU" in report["device_name"]
    assert report["command"].startswith("vestige bench gpu --device cpu")
    assert set(report["detectors"]) == {"fingerprint", "metadata"}
    for name, row in report["detectors"].items():
        assert row["images_per_second"]["end_to_end"] > 0 and sum(row["labels"].values()) == 4, name
    assert report["detectors"]["fingerprint"]["model_sha256"]  # the shipped model, named
    inversion = report["inversion"]
    assert inversion["batch"] == 2 and inversion["steps"] == 2 and inversion["seconds_per_image_per_1000_steps"] > 0
    analysis = report["analysis"]
    assert analysis["images"] == 4 and analysis["detectors"] == ["fingerprint", "metadata"]
    assert analysis["tasks"] >= 1 and 0 < analysis["worker_task_seconds"] <= analysis["wall_seconds"]


def test_bench_gpu_refuses_cuda_without_a_gpu(vestige, tmp_path):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    result = vestige("bench", "gpu", "--device", "cuda", "--n", "2", "--out", tmp_path / "gpu.json")
    assert result.exit_code == 1 and "torch sees no GPU" in result.stderr
    assert not (tmp_path / "gpu.json").exists()
