"""``vestige bench ...``: benchmark commands whose results go to docs/benchmarks.md."""

from __future__ import annotations

from pathlib import Path

import click

from vestige.cli.app import State, cli, echo_json, pass_state


@cli.group("bench")
def bench_group() -> None:
    """Benchmarks: print a table and write JSON."""


@bench_group.command("ingest")
@click.option("--n", "count", default=2000, show_default=True, help="Number of JPEGs.")
@click.option("--size", default=256, show_default=True, help="Side of the square images.")
@click.option("--out", type=click.Path(path_type=Path), default=Path("bench-results/ingest.json"), show_default=True)
@pass_state
def bench_ingest(state: State, count: int, size: int, out: Path) -> None:
    """Ingest N generated SIZE×SIZE JPEGs into a fresh SQLite workspace; images/s and peak memory."""
    from vestige.benchmarks import run_ingest_benchmark, write_result

    result = run_ingest_benchmark(count=count, size=size)
    write_result(out, result)
    echo_json(result)


@bench_group.command("neardup")
@click.option("--n", "count", default=10_000_000, show_default=True, help="Stored pHashes.")
@click.option("--queries", default=1000, show_default=True)
@click.option("--radius", default=8, show_default=True)
@click.option("--out", type=click.Path(path_type=Path), default=Path("bench-results/neardup.json"), show_default=True)
@pass_state
def bench_neardup(state: State, count: int, queries: int, radius: int, out: Path) -> None:
    """Near-duplicate queries against N pHashes stored in a SQLite database."""
    from vestige.benchmarks import run_neardup_benchmark, write_result

    result = run_neardup_benchmark(count=count, queries=queries, radius=radius)
    write_result(out, result)
    echo_json(result)


@bench_group.command("analyze")
@click.option("--n", "count", default=1000, show_default=True, help="Number of JPEGs.")
@click.option("--size", default=256, show_default=True, help="Side of the square images.")
@click.option("--redis", "redis_url", default="redis://127.0.0.1:6379/0", show_default=True,
              help="Redis to measure too (skipped when unreachable).")
@click.option("--workers", type=int, default=None, help="Worker processes for the throughput runs (default: CPUs).")
@click.option("--out", type=click.Path(path_type=Path), default=Path("bench-results/analyze.json"), show_default=True)
@pass_state
def bench_analyze(state: State, count: int, size: int, redis_url: str, workers: int | None, out: Path) -> None:
    """Analyse N generated JPEGs with the CPU detectors: in-process, embedded broker, Redis; queue overhead per image."""
    from vestige.analysis_benchmark import run_analysis_benchmark
    from vestige.benchmarks import write_result

    result = run_analysis_benchmark(count=count, size=size, redis_url=redis_url, workers=workers)
    write_result(out, result)
    echo_json(result)
