"""Projection onto the reference manifold: the exact nearest reference image, in bounded memory.

The manifold is a finite set of real images; ``proj(x)`` is the reference
whose representation is nearest to ``x``'s in squared L2. Distances are
``‖a‖² − 2a·b + ‖b‖²``, computed as matrix products over chunks of queries
and of references (the ranking within a row needs only ``‖b‖² − 2a·b``), so no step ever holds more than ``budget_bytes`` of
working tensors whatever the reference size (:func:`chunk_sizes`).

Exactness: a float32 matrix product is fast but rounds (the dot products of
3,072 pixel values lose low bits), so two references at almost the same
distance could swap. Each chunk therefore only nominates its ``CANDIDATES``
nearest references per query; the survivors are re-measured directly in
float64 (``Σ(a − b)²``, no cancellation) and the smallest wins, ties going to
the lower reference index. The answer is then the brute-force answer unless
float32 rounding pushes the true neighbour out of the top ``CANDIDATES``,
which needs ``CANDIDATES`` references within rounding error of it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

#: References each chunk nominates per query for the exact float64 re-ranking.
CANDIDATES = 8
#: Default working-memory budget of one projection step.
DEFAULT_BUDGET = 256 * 1024**2
#: Largest query chunk: beyond it a bigger chunk saves nothing measurable.
MAX_QUERY_CHUNK = 1024


class BudgetError(ValueError):
    """A memory budget too small for even one query against one reference."""


@dataclass(frozen=True)
class Chunks:
    """How a projection is cut: ``queries`` × ``references`` per step, and the bytes that step holds."""

    queries: int
    references: int
    step_bytes: int


def step_bytes(q: int, r: int, dim: int, k: int = CANDIDATES) -> int:
    """Bytes of float32 tensors one step holds: the query and reference chunks, the score block, norms and candidates.

    The candidate bookkeeping (``q × 2k`` distances and indices, kept across
    steps) is counted too, so the budget bounds everything the search holds
    besides its inputs.
    """
    floats = q * dim + r * dim + q * r + q + r
    candidates = q * 2 * k * (4 + 8)  # float32 distances + int64 indices, this chunk's and the kept ones
    return 4 * floats + candidates


def chunk_sizes(n_queries: int, n_references: int, dim: int, budget_bytes: int = DEFAULT_BUDGET) -> Chunks:
    """The largest chunks whose step fits ``budget_bytes``: queries first (up to 1,024), then references."""
    n_queries, n_references = max(1, n_queries), max(1, n_references)
    q = min(n_queries, MAX_QUERY_CHUNK)
    while q >= 1:
        fixed = step_bytes(q, 0, dim)
        per_reference = step_bytes(q, 1, dim) - fixed
        r = (budget_bytes - fixed) // per_reference
        if r >= min(n_references, 64) or (q == 1 and r >= 1):
            r = int(min(r, n_references))
            return Chunks(q, r, step_bytes(q, r, dim))
        q //= 2
    raise BudgetError(f"a memory budget of {budget_bytes} bytes cannot hold one {dim}-value query and reference; "
                      f"give at least {step_bytes(1, 1, dim)} bytes")


def nearest(queries: torch.Tensor, references: torch.Tensor, *, budget_bytes: int = DEFAULT_BUDGET,
            device: str | torch.device = "cpu", reference_norms: torch.Tensor | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Index and squared L2 distance of each query's nearest reference (rows are flattened vectors).

    ``queries`` and ``references`` may be uint8, float16 or float32 on any
    device; chunks are moved to ``device`` and converted to float32 there, so
    a uint8 reference of 50,000 CIFAR images stays 150 MiB, never 600.
    ``reference_norms`` (float64, one per reference) saves recomputing them
    when the same reference is searched often.
    """
    n, dim = queries.shape[0], int(np.prod(queries.shape[1:]))
    m = references.shape[0]
    if m == 0:
        raise ValueError("the reference set is empty")
    if int(np.prod(references.shape[1:])) != dim:
        raise ValueError(f"queries have {dim} values each, references {int(np.prod(references.shape[1:]))}")
    queries = queries.reshape(n, dim)
    references = references.reshape(m, dim)
    chunks = chunk_sizes(n, m, dim, budget_bytes)
    k = min(CANDIDATES, m)
    out_index = np.empty(n, dtype=np.int64)
    out_distance = np.empty(n, dtype=np.float64)
    for q0 in range(0, n, chunks.queries):
        a = queries[q0 : q0 + chunks.queries].to(device=device, dtype=torch.float32)
        best_d = torch.full((a.shape[0], 0), float("inf"), device=device)
        best_i = torch.empty((a.shape[0], 0), dtype=torch.int64, device=device)
        for r0 in range(0, m, chunks.references):
            b = references[r0 : r0 + chunks.references].to(device=device, dtype=torch.float32)
            if reference_norms is not None:
                b_norm = reference_norms[r0 : r0 + b.shape[0]].to(device=device, dtype=torch.float32)
            else:
                b_norm = (b * b).sum(1)
            # ‖a‖² is the same for every reference of a row, so the ranking needs only ‖b‖² − 2a·b;
            # leaving it out also spares a second q × r block (the broadcast sum addmm would be given)
            d = torch.addmm(b_norm.unsqueeze(0), a, b.t(), alpha=-2.0)
            kk = min(k, b.shape[0])
            dk, ik = torch.topk(d, kk, dim=1, largest=False, sorted=False)
            del d, b
            best_d = torch.cat([best_d, dk], 1)
            best_i = torch.cat([best_i, ik + r0], 1)
            if best_d.shape[1] > k:
                best_d, keep = torch.topk(best_d, k, dim=1, largest=False, sorted=False)
                best_i = torch.gather(best_i, 1, keep)
        index, distance = _rerank(queries[q0 : q0 + chunks.queries], references, best_i.cpu())
        out_index[q0 : q0 + len(index)] = index
        out_distance[q0 : q0 + len(index)] = distance
    return out_index, out_distance


def _rerank(queries: torch.Tensor, references: torch.Tensor, candidates: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """The exact float64 nearest among each query's candidates; ties to the lower reference index."""
    a = queries.detach().cpu().to(torch.float64)
    cand = candidates.numpy()
    index = np.empty(len(a), dtype=np.int64)
    distance = np.empty(len(a), dtype=np.float64)
    for row in range(len(a)):
        ids = np.unique(cand[row])  # sorted: the first minimum is the lowest index
        b = references[torch.from_numpy(ids)].detach().cpu().to(torch.float64)
        d = ((b - a[row]) ** 2).sum(1).numpy()
        j = int(np.argmin(d))
        index[row], distance[row] = ids[j], d[j]
    return index, distance


def brute_force_nearest(queries: np.ndarray, references: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The same answer the slow way: every float64 distance, first minimum. For tests and checks."""
    a = queries.reshape(len(queries), -1).astype(np.float64)
    b = references.reshape(len(references), -1).astype(np.float64)
    d = ((a[:, None, :] - b[None, :, :]) ** 2).sum(-1)
    index = d.argmin(1)
    return index, d[np.arange(len(a)), index]
