"""The platform's benchmarks: ingest throughput and near-duplicate queries.

Each runs in a temporary workspace it creates and removes, measures with
``time.perf_counter`` and reports peak resident memory from ``getrusage``
(the high-water mark of the whole process, so run one benchmark per process).
"""

from __future__ import annotations

import json
import os
import platform
import resource
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from vestige import __version__


def _peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _machine() -> dict[str, Any]:
    return {"cpus": os.cpu_count(), "python": sys.version.split()[0], "platform": platform.platform(), "vestige": __version__}


def write_result(path: Path, result: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=2) + "\n")


def synthetic_jpegs(folder: Path, count: int, size: int, seed: int = 0) -> list[Path]:
    """Distinct photo-like JPEGs: smooth random fields plus texture, quality 90."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size
    paths = []
    for i in range(count):
        f = rng.uniform(1, 6, size=(3, 2))
        ph = rng.uniform(0, 2 * np.pi, size=(3, 2))
        channels = [
            127 + 60 * np.sin(2 * np.pi * f[c, 0] * xx + ph[c, 0]) * np.cos(2 * np.pi * f[c, 1] * yy + ph[c, 1])
            for c in range(3)
        ]
        pixels = np.stack(channels, axis=-1) + rng.normal(0, 12, size=(size, size, 3))
        image = Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))
        path = folder / f"img{i:05d}.jpg"
        image.save(path, quality=90)
        paths.append(path)
    return paths


def run_ingest_benchmark(count: int = 2000, size: int = 256) -> dict[str, Any]:
    """Ingest ``count`` generated JPEGs into a fresh SQLite workspace; images/s and peak memory."""
    from vestige.core.config import load_config
    from vestige.core.workspace import init_workspace
    from vestige.evidence.cases import create_case
    from vestige.evidence.ingest import Acquisition, Ingester

    with tempfile.TemporaryDirectory(prefix="vestige-bench-") as tmp:
        root = Path(tmp)
        images = root / "images"
        images.mkdir()
        synthetic_jpegs(images, count, size)
        config = load_config(environ={"VESTIGE_DATA_DIR": str(root / "data")})
        workspace, _, _ = init_workspace(config)
        with workspace.db.session() as session:
            case = create_case(session, reference="BENCH-1", title="ingest benchmark", actor="bench")
        with workspace.db.session() as session:
            from vestige.evidence.cases import get_case

            case = get_case(session, "BENCH-1")
            began = time.perf_counter()
            summary = Ingester(workspace, session, case, Acquisition(source="bench", actor="bench")).ingest_paths([images])
            elapsed = time.perf_counter() - began
        workspace.close()
    return {
        "benchmark": "ingest",
        "command": f"vestige bench ingest --n {count} --size {size}",
        "images": count,
        "size": size,
        "ingested": len(summary.ingested),
        "rejected": len(summary.rejected),
        "seconds": round(elapsed, 3),
        "images_per_second": round(count / elapsed, 1),
        "peak_rss_mib": round(_peak_rss_mib(), 1),
        "database": "sqlite",
        "machine": _machine(),
    }


def run_neardup_benchmark(count: int = 10_000_000, queries: int = 1000, radius: int = 8, seed: int = 0) -> dict[str, Any]:
    """Store ``count`` random pHashes in SQLite, build the index from the database, time queries."""
    import sqlalchemy as sa

    from vestige.db import Database
    from vestige.evidence.neardup import NearDuplicateIndex, bench_queries

    rng = np.random.default_rng(seed)
    hashes = rng.integers(np.iinfo(np.int64).min, np.iinfo(np.int64).max, size=count, dtype=np.int64)
    with tempfile.TemporaryDirectory(prefix="vestige-bench-") as tmp:
        db = Database.from_url(f"sqlite:///{tmp}/hashes.db")
        # The index reads (id, phash) exactly as ingest does. The real images
        # table is wider, but SQLite answers that query from the covering
        # index on phash (ix_images_phash), so a table of the two columns plus
        # that index reads the same pages at a fraction of the set-up time.
        with db.engine.begin() as conn:
            conn.exec_driver_sql("CREATE TABLE images (id INTEGER PRIMARY KEY, phash BIGINT NOT NULL)")
        began = time.perf_counter()
        step = 200_000
        with db.engine.begin() as conn:
            for start in range(0, count, step):
                chunk = hashes[start : start + step]
                conn.exec_driver_sql(
                    "INSERT INTO images (id, phash) VALUES (?, ?)",
                    list(zip(range(start + 1, start + 1 + len(chunk)), chunk.tolist())),
                )
            conn.exec_driver_sql("CREATE INDEX ix_images_phash ON images (phash)")
        fill_seconds = time.perf_counter() - began

        began = time.perf_counter()
        with db.engine.connect() as conn:
            rows = conn.execute(sa.text("SELECT id, phash FROM images")).yield_per(100_000)
            index = NearDuplicateIndex.from_rows(rows)
        build_seconds = time.perf_counter() - began
        db.dispose()

    # Half the queries are planted near-duplicates of stored hashes, half random.
    planted = hashes[rng.integers(0, count, size=queries // 2)].view(np.uint64)
    flips = np.zeros(len(planted), dtype=np.uint64)
    for i in range(len(planted)):
        for bit in rng.choice(64, size=rng.integers(0, radius + 1), replace=False):
            flips[i] |= np.uint64(1) << np.uint64(bit)
    query_hashes = np.concatenate([(planted ^ flips).view(np.int64), rng.integers(-(2**63), 2**63 - 1, size=queries - len(planted), dtype=np.int64)])
    timing = bench_queries(index, query_hashes, radius)
    scan = _full_scan_p95_ms(hashes, query_hashes[:100], radius)
    return {
        "benchmark": "neardup",
        "command": f"vestige bench neardup --n {count} --queries {queries} --radius {radius}",
        "stored": count,
        "radius": radius,
        "fill_seconds": round(fill_seconds, 1),
        "index_build_seconds": round(build_seconds, 2),
        **{k: (round(v, 4) if isinstance(v, float) else v) for k, v in timing.items()},
        "full_scan_p95_ms": round(scan, 2),
        "speedup_over_full_scan_p95": round(scan / timing["p95_ms"], 1),
        "peak_rss_mib": round(_peak_rss_mib(), 1),
        "machine": _machine(),
    }


def _full_scan_p95_ms(hashes: np.ndarray, queries: np.ndarray, radius: int) -> float:
    """The baseline: XOR and popcount over every stored hash, vectorised with numpy."""
    stored = hashes.view(np.uint64)
    times = []
    for q in queries.view(np.uint64):
        began = time.perf_counter()
        np.flatnonzero(np.bitwise_count(stored ^ q) <= radius)
        times.append((time.perf_counter() - began) * 1000)
    return float(np.percentile(times, 95))
