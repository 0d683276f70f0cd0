"""Inference throughput of the repmix detector on this machine, decoding included.

``python -m vestige_repmix.throughput FILE... [--repeats N] [--batch B] [--threads T]``
decodes every file with :func:`vestige.detect.make_input` (as ``vestige
detect`` does) and runs ``analyze`` in batches, with the shipped artifact;
it prints one JSON line: images, seconds, images per second (decoding plus
inference, the median of the repeats) and inference alone.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from pathlib import Path


def main(argv: list[str] | None = None) -> None:
    import torch

    from vestige.detect import make_input
    from vestige_repmix.detector import RepMixDetector

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("files", nargs="+", type=Path)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--batch", type=int, default=RepMixDetector.batch_size)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    data = [(p.name, p.read_bytes()) for p in args.files]
    detector = RepMixDetector()
    artifact = detector.shipped_artifact()
    if artifact is None:
        raise SystemExit("the repmix plugin ships no artifact")
    detector.use_artifact(artifact)
    detector.load("cpu")
    detector.analyze([make_input(data[0][1], name=data[0][0])])  # warm-up
    totals, inference = [], []
    for _ in range(args.repeats):
        began = time.perf_counter()
        inputs = [make_input(blob, name=name) for name, blob in data]
        decoded = time.perf_counter()
        for start in range(0, len(inputs), args.batch):
            detector.analyze(inputs[start:start + args.batch])
        ended = time.perf_counter()
        totals.append(ended - began)
        inference.append(ended - decoded)
    total, infer = statistics.median(totals), statistics.median(inference)
    print(json.dumps({"images": len(data), "batch": args.batch, "threads": args.threads, "seconds": round(total, 3),
                      "images_per_second": round(len(data) / total, 1),
                      "inference_images_per_second": round(len(data) / infer, 1),
                      "artifact": artifact.sha256, "cpu": platform.processor() or platform.machine()}))


if __name__ == "__main__":
    main()
