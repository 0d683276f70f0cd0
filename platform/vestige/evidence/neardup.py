"""In-memory near-duplicate search over 64-bit perceptual hashes.

The hashes are imagehash pHashes. SQL has no unsigned 64-bit integer, so the
database stores each hash's bit pattern as a signed BIGINT; :func:`to_signed64`
and :func:`to_unsigned64` convert between the two forms, and everything here
accepts either.

A vectorised scan of 10 million hashes costs 10-40 ms a query, so the index uses
multi-index hashing (Norouzi, Punjani and Fleet, 2012). The 64 bits are cut
into chunks of 22, 21 and 21 bits, and each chunk gets a table from chunk value
to the rows that hold it. If a hash is within distance ``r`` of the query and
the sub-radii ``r_i`` satisfy ``sum(r_i + 1) > r``, then by pigeonhole some
chunk ``i`` differs by at most ``r_i`` bits; probing every key within ``r_i``
of the query's chunk ``i`` therefore finds every answer, and an exact popcount
removes the other candidates. At ``r = 8`` that is ~720 probes and ~2,800
candidates against 10 million hashes.

Hashes added after the build wait in a pending buffer that is scanned linearly;
:meth:`NearDuplicateIndex.compact` folds them into the tables.
"""

from __future__ import annotations

import itertools
import operator
import time
from functools import lru_cache
from typing import Iterable, Sequence

import numpy as np

from vestige.core.errors import InvalidInputError

MAX_RADIUS = 16

_MASK64 = (1 << 64) - 1
_SIGN64 = 1 << 63
# (shift, bits) of each chunk, least significant first.
_CHUNKS = ((0, 22), (22, 21), (43, 21))
# Each chunk's keys start at a multiple of its own table size, so base | key is
# base + key and one offsets array serves all three tables.
_BASES = (0, 1 << 22, 3 << 21)
_KEYSPACE = 1 << 23
_POP8 = np.array([bin(i).count("1") for i in range(256)], dtype=np.uint8)


def to_signed64(value: int) -> int:
    """Return the signed 64-bit integer with the same bits as unsigned ``value``."""
    value = operator.index(value)
    if not 0 <= value <= _MASK64:
        raise InvalidInputError(f"{value} is not an unsigned 64-bit integer.")
    return value - (1 << 64) if value & _SIGN64 else value


def to_unsigned64(value: int) -> int:
    """Return the unsigned 64-bit integer with the same bits as signed ``value``."""
    value = operator.index(value)
    if not -_SIGN64 <= value < _SIGN64:
        raise InvalidInputError(f"{value} is not a signed 64-bit integer.")
    return value & _MASK64


def hamming(a: int, b: int) -> int:
    """Return the number of differing bits between two 64-bit hashes, signed or not."""
    return (_as_u64(a) ^ _as_u64(b)).bit_count()


def _as_u64(value: int) -> int:
    """Return a signed or unsigned 64-bit hash as its unsigned form."""
    value = operator.index(value)
    if not -_SIGN64 <= value <= _MASK64:
        raise InvalidInputError(f"{value} is not a 64-bit hash.")
    return value & _MASK64


def _popcount_lut(x: np.ndarray) -> np.ndarray:
    """Per-element popcount of 64-bit integers by byte lookup table."""
    octets = np.ascontiguousarray(x).astype(np.uint64, copy=False).view(np.uint8)
    return _POP8[octets.reshape(*np.shape(x), 8)].sum(axis=-1, dtype=np.uint8)


# np.bitwise_count is numpy >= 2.0; pyproject still allows 1.26.
_popcount = getattr(np, "bitwise_count", _popcount_lut)


def _hash_array(hashes: np.ndarray | Sequence[int]) -> np.ndarray:
    """Return a new uint64 array of the bit patterns of ``hashes``."""
    if isinstance(hashes, np.ndarray) and hashes.dtype.kind in "iu":
        if hashes.dtype.kind == "i":
            return np.array(hashes, dtype=np.int64).view(np.uint64)
        return np.array(hashes, dtype=np.uint64)
    # A Python list may mix both forms, which numpy would turn into floats or objects.
    return np.fromiter((_as_u64(h) for h in hashes), dtype=np.uint64)


def _check_radius(radius: int) -> int:
    """Return ``radius`` if the index supports it."""
    radius = operator.index(radius)
    if not 0 <= radius <= MAX_RADIUS:
        raise InvalidInputError(f"Radius must be between 0 and {MAX_RADIUS}, not {radius}.")
    return radius


@lru_cache(maxsize=None)
def _xor_masks(bits: int, subradius: int) -> np.ndarray:
    """Every ``bits``-bit value with at most ``subradius`` bits set."""
    values = np.arange(1 << bits, dtype=np.int64)
    masks = values[_popcount(values) <= subradius]
    masks.flags.writeable = False
    return masks


@lru_cache(maxsize=None)
def _probe_plan(radius: int) -> tuple[np.ndarray, np.ndarray]:
    """Return (chunk of each probe, XOR mask of each probe) for ``radius``.

    Sub-radii summing to ``radius - 2`` are the smallest that keep
    ``sum(r_i + 1) > radius``: never more than ``radius // 3``, often less, and
    a chunk whose sub-radius is -1 is not probed at all. The spare bits go to
    the 22-bit chunk first, whose buckets are half as full.
    """
    base, spare = divmod(radius - 2, len(_CHUNKS))
    chunk_of, masks = [], []
    for i, (_, bits) in enumerate(_CHUNKS):
        subradius = base + (i < spare)
        if subradius >= 0:
            chunk_masks = _xor_masks(bits, subradius)
            chunk_of.append(np.full(len(chunk_masks), i, dtype=np.intp))
            masks.append(chunk_masks)
    plan = np.concatenate(chunk_of), np.concatenate(masks)
    for array in plan:
        array.flags.writeable = False
    return plan


class NearDuplicateIndex:
    """Find stored hashes within a Hamming radius of a query hash.

    Not safe for :meth:`add` or :meth:`compact` concurrent with queries; the
    caller holds a lock if it needs that. An id added twice is reported twice.
    """

    def __init__(
        self, ids: np.ndarray | Sequence[int] = (), hashes: np.ndarray | Sequence[int] = ()
    ) -> None:
        """Index ``hashes[i]`` (signed or unsigned 64-bit) under image id ``ids[i]``."""
        # Copied, so a caller reusing its arrays cannot corrupt the tables.
        self._load(np.array(ids, dtype=np.int64), _hash_array(hashes))

    @classmethod
    def from_rows(
        cls, rows: Iterable[tuple[int, int]], chunk: int = 1_000_000
    ) -> NearDuplicateIndex:
        """Build from ``(id, signed hash)`` rows, e.g. a result streamed with ``yield_per``.

        Rows are read ``chunk`` at a time into arrays, so 10 million rows never
        become 10 million Python tuples at once.
        """
        if chunk < 1:
            raise InvalidInputError(f"chunk must be at least 1, not {chunk}.")
        # SQLAlchemy Row objects are sequences but not tuples, which fromiter needs.
        stream = map(tuple, rows)
        row_type = np.dtype([("id", np.int64), ("hash", np.int64)])
        ids, hashes = [], []
        while True:
            try:
                part = np.fromiter(itertools.islice(stream, chunk), dtype=row_type)
            except OverflowError as exc:
                raise InvalidInputError(f"A row's id or hash is outside signed 64 bits: {exc}") from exc
            ids.append(part["id"].copy())
            hashes.append(part["hash"].view(np.uint64).copy())
            if len(part) < chunk:
                break
        all_ids, all_hashes = np.concatenate(ids), np.concatenate(hashes)
        del ids, hashes  # the parts would otherwise stay alive through the build
        index = cls()
        index._load(all_ids, all_hashes)
        return index

    def _load(self, ids: np.ndarray, hashes: np.ndarray) -> None:
        if ids.ndim != 1 or ids.shape != hashes.shape:
            raise InvalidInputError(
                f"Got {ids.size} ids for {hashes.size} hashes; they must pair up one to one."
            )
        self._ids, self._hashes = ids, hashes
        self._pending_ids = np.empty(64, dtype=np.int64)
        self._pending_hashes = np.empty(64, dtype=np.uint64)
        self._n_pending = 0
        self._build()

    def _build(self) -> None:
        n = len(self._hashes)
        self._order = self._offsets = None
        if n == 0:
            return
        # Offsets reach 3n; int32 halves the tables' memory whenever that fits.
        dtype = np.int32 if 3 * n < 2**31 else np.int64
        # Filled in place, chunk by chunk, to keep the build's peak memory down.
        order = np.empty(3 * n, dtype=dtype)
        offsets = np.zeros(_KEYSPACE + 1, dtype=dtype)
        for i, (base, (shift, bits)) in enumerate(zip(_BASES, _CHUNKS)):
            keys = self._hashes >> np.uint64(shift)
            keys &= np.uint64((1 << bits) - 1)
            keys = keys.astype(dtype)
            # Order inside a bucket is irrelevant, so the fast unstable sort will do.
            order[i * n : (i + 1) * n] = np.argsort(keys)
            offsets[base + 1 : base + 1 + (1 << bits)] = np.bincount(keys, minlength=1 << bits)
        np.cumsum(offsets, out=offsets)
        self._order, self._offsets = order, offsets

    def __len__(self) -> int:
        """Number of hashes held, pending ones included."""
        return len(self._ids) + self._n_pending

    def add(self, id: int, hash: int) -> None:
        """Add one hash without rebuilding; it is searched linearly until :meth:`compact`."""
        value = _as_u64(hash)
        if self._n_pending == len(self._pending_ids):
            size = 2 * len(self._pending_ids)
            self._pending_ids = np.resize(self._pending_ids, size)
            self._pending_hashes = np.resize(self._pending_hashes, size)
        self._pending_ids[self._n_pending] = operator.index(id)
        self._pending_hashes[self._n_pending] = value
        self._n_pending += 1

    def compact(self) -> None:
        """Fold pending hashes into the tables (a full rebuild: seconds at 10 million)."""
        if not self._n_pending:
            return
        m = self._n_pending
        self._load(
            np.concatenate([self._ids, self._pending_ids[:m]]),
            np.concatenate([self._hashes, self._pending_hashes[:m]]),
        )

    def query(
        self, hash: int, radius: int, *, exclude_id: int | None = None
    ) -> list[tuple[int, int]]:
        """Return ``[(id, distance)]`` of hashes within ``radius``, sorted by (distance, id).

        ``exclude_id`` drops that id, typically the image being checked itself.
        """
        ids, distances, _ = self._search(hash, radius, exclude_id)
        return list(zip(ids.tolist(), distances.tolist()))

    def query_many(self, hashes: Sequence[int], radius: int) -> list[list[tuple[int, int]]]:
        """Return :meth:`query`'s answer for each hash, in order."""
        return [self.query(h, radius) for h in hashes]

    def _search(
        self, hash: int, radius: int, exclude_id: int | None
    ) -> tuple[np.ndarray, np.ndarray, int]:
        """Return (ids, distances, candidates examined) for one query."""
        radius = _check_radius(radius)
        q = _as_u64(hash)
        q64 = np.uint64(q)
        ids = distances = np.empty(0, dtype=np.int64)
        candidates = 0
        if self._offsets is not None:
            chunk_of, masks = _probe_plan(radius)
            query_keys = np.array(
                [base | ((q >> shift) & ((1 << bits) - 1)) for base, (shift, bits) in zip(_BASES, _CHUNKS)],
                dtype=np.int64,
            )
            keys = query_keys[chunk_of] ^ masks
            starts = self._offsets[keys]
            lengths = self._offsets[keys + 1] - starts
            ends = np.cumsum(lengths)
            candidates = int(ends[-1])
            # Position j of the concatenated bucket ranges of probe p sits at
            # starts[p] + j - (ends[p] - lengths[p]); this avoids a loop per bucket.
            positions = np.repeat(starts - ends + lengths, lengths) + np.arange(candidates)
            rows = self._order[positions]
            found = _popcount(self._hashes[rows] ^ q64)
            hit = found <= radius
            # A row near the query in several chunks appears once per chunk;
            # deduplicating the few hits is cheaper than all candidates.
            rows, first = np.unique(rows[hit], return_index=True)
            ids, distances = self._ids[rows], found[hit][first]
        if self._n_pending:
            m = self._n_pending
            found = _popcount(self._pending_hashes[:m] ^ q64)
            hit = found <= radius
            ids = np.concatenate([ids, self._pending_ids[:m][hit]])
            distances = np.concatenate([distances, found[hit]])
            candidates += m
        if exclude_id is not None:
            keep = ids != exclude_id
            ids, distances = ids[keep], distances[keep]
        by_rank = np.lexsort((ids, distances))
        return ids[by_rank], distances[by_rank].astype(np.int64), candidates


def bench_queries(index: NearDuplicateIndex, queries: np.ndarray, radius: int) -> dict:
    """Time each query in ``queries`` against ``index`` and summarise the latencies."""
    if len(queries) == 0:
        raise InvalidInputError("bench_queries needs at least one query.")
    latencies, candidates = [], []
    for q in np.asarray(queries).tolist():
        start = time.perf_counter()
        ids, distances, examined = index._search(q, radius, None)
        list(zip(ids.tolist(), distances.tolist()))  # query()'s formatting, timed too
        latencies.append(time.perf_counter() - start)
        candidates.append(examined)
    ms = np.asarray(latencies) * 1e3
    return {
        "queries": len(ms),
        "p50_ms": float(np.percentile(ms, 50)),
        "p95_ms": float(np.percentile(ms, 95)),
        "max_ms": float(ms.max()),
        "mean_candidates": float(np.mean(candidates)),
    }
