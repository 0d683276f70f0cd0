"""Tests for vestige.evidence.neardup: the multi-index must agree with a brute-force scan."""

from __future__ import annotations

import numpy as np
import pytest

from vestige.core.errors import InvalidInputError
from vestige.evidence.neardup import (
    NearDuplicateIndex,
    _popcount_lut,
    bench_queries,
    hamming,
    to_signed64,
    to_unsigned64,
)

# Bit positions of the index's three chunks; planting flips spread evenly over
# them is the case the pigeonhole argument has least slack for.
CHUNK_BITS = (range(0, 22), range(22, 43), range(43, 64))
N_RANDOM = 50_000
MAX_PLANTED = 10


def flip_bits(value: int, distance: int, rng: np.random.Generator, spread: bool) -> int:
    """Return ``value`` with exactly ``distance`` distinct bits flipped."""
    if spread:
        per_chunk = [distance // 3 + (i < distance % 3) for i in range(3)]
        rng.shuffle(per_chunk)
        bits = [b for chunk, k in zip(CHUNK_BITS, per_chunk) for b in rng.choice(chunk, k, replace=False)]
    else:
        bits = rng.choice(64, distance, replace=False)
    for b in bits:
        value ^= 1 << int(b)
    return value


@pytest.fixture(scope="module")
def corpus():
    """50,000 random hashes, plus copies of 20 of them at every distance 0..10."""
    rng = np.random.default_rng(20240601)
    hashes = rng.integers(0, 2**64, N_RANDOM, dtype=np.uint64).tolist()
    bases = hashes[:20]
    for i, base in enumerate(bases):
        for distance in range(MAX_PLANTED + 1):
            hashes.append(flip_bits(base, distance, rng, spread=i % 2 == 0))
    ids = rng.permutation(len(hashes)) + 1000
    stored = np.array(hashes, dtype=np.uint64)
    queries = bases + rng.integers(0, 2**64, 20, dtype=np.uint64).tolist()
    index = NearDuplicateIndex(ids, stored.view(np.int64))  # SQL's signed form
    return index, ids, stored, queries


def brute_force(ids: np.ndarray, stored: np.ndarray, q: int, radius: int) -> list[tuple[int, int]]:
    distances = np.bitwise_count(stored ^ np.uint64(q))
    hit = distances <= radius
    return sorted(zip(ids[hit].tolist(), distances[hit].tolist()), key=lambda r: (r[1], r[0]))


@pytest.mark.parametrize("radius", [0, 1, 2, 4, 8, 10, 16])
def test_query_matches_brute_force(corpus, radius):
    index, ids, stored, queries = corpus
    for q in queries:
        assert index.query(q, radius) == brute_force(ids, stored, q, radius)


def test_planted_duplicates_found_at_exact_distance(corpus):
    index, _, _, queries = corpus
    distances = [d for _, d in index.query(queries[0], MAX_PLANTED)]
    # The base itself, then one planted copy at each distance (0 included).
    assert distances == [0] + list(range(MAX_PLANTED + 1))


def test_query_many_matches_query(corpus):
    index, _, _, queries = corpus
    assert index.query_many(queries[:5], 8) == [index.query(q, 8) for q in queries[:5]]


@pytest.mark.parametrize(
    ("unsigned", "signed"),
    [
        (0, 0),
        (1, 1),
        (2**63 - 1, 2**63 - 1),
        (2**63, -(2**63)),
        (2**63 + 1, -(2**63) + 1),
        (2**64 - 1, -1),
        (0xF0E1D2C3B4A59687, 0xF0E1D2C3B4A59687 - 2**64),
    ],
)
def test_signed_unsigned_round_trip(unsigned, signed):
    assert to_signed64(unsigned) == signed
    assert to_unsigned64(signed) == unsigned
    assert to_unsigned64(to_signed64(unsigned)) == unsigned
    assert hamming(signed, unsigned) == 0


@pytest.mark.parametrize(
    ("func", "value"),
    [(to_signed64, -1), (to_signed64, 2**64), (to_unsigned64, 2**63), (to_unsigned64, -(2**63) - 1)],
)
def test_conversions_reject_out_of_range(func, value):
    with pytest.raises(InvalidInputError):
        func(value)


@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [(0, 0, 0), (0, -1, 64), (0, 2**64 - 1, 64), (1, 2, 2), (-1, 2**63 - 1, 1), (0b1011, 0, 3)],
)
def test_hamming(a, b, expected):
    assert hamming(a, b) == expected


def test_popcount_fallback_matches_numpy():
    values = np.random.default_rng(3).integers(0, 2**64, 1000, dtype=np.uint64)
    assert np.array_equal(_popcount_lut(values), np.bitwise_count(values))


def test_signed_and_unsigned_inputs_agree():
    top = [2**64 - 1, 2**63, 2**63 + 5, 12345]
    unsigned_index = NearDuplicateIndex([1, 2, 3, 4], np.array(top, dtype=np.uint64))
    signed_index = NearDuplicateIndex([1, 2, 3, 4], [to_signed64(h) for h in top])
    for q in top:
        expected = unsigned_index.query(q, 2)
        assert expected and signed_index.query(to_signed64(q), 2) == expected
    assert unsigned_index.query(-1, 0) == [(1, 0)]


def test_index_keeps_its_own_copy_of_the_arrays():
    ids = np.array([1, 2], dtype=np.int64)
    hashes = np.array([-5, 77], dtype=np.int64)
    index = NearDuplicateIndex(ids, hashes)
    ids[:] = 0
    hashes[:] = 0
    assert index.query(-5, 0) == [(1, 0)]


def test_add_is_found_before_and_after_compact(corpus):
    _, ids, stored, _ = corpus
    index = NearDuplicateIndex(ids[:1000], stored[:1000])
    new_hash = flip_bits(int(stored[0]), 3, np.random.default_rng(5), spread=True)
    index.add(999_999, to_signed64(new_hash))
    assert len(index) == 1001
    before = index.query(int(stored[0]), 3)
    assert (999_999, 3) in before
    index.compact()
    assert len(index) == 1001
    assert index.query(int(stored[0]), 3) == before
    assert index.query(new_hash, 0) == [(999_999, 0)]


def test_many_adds_grow_the_pending_buffer():
    index = NearDuplicateIndex()
    for i in range(200):
        index.add(i, i << 40)
    assert len(index) == 200
    assert index.query(5 << 40, 0) == [(5, 0)]
    index.compact()
    assert index.query(5 << 40, 0) == [(5, 0)]


def test_exclude_id():
    index = NearDuplicateIndex([10, 11, 12], [0b111, 0b110, 0b000])
    index.add(13, 0b111)
    assert index.query(0b111, 3) == [(10, 0), (13, 0), (11, 1), (12, 3)]
    assert index.query(0b111, 3, exclude_id=10) == [(13, 0), (11, 1), (12, 3)]
    assert index.query(0b111, 3, exclude_id=13) == [(10, 0), (11, 1), (12, 3)]


def test_empty_index():
    index = NearDuplicateIndex()
    assert len(index) == 0
    assert index.query(123, 8) == []
    assert index.query_many([1, 2], 16) == [[], []]
    index.compact()
    assert index.query(-1, 0) == []


def test_duplicate_hash_values_all_returned():
    h = to_signed64(0xDEADBEEFCAFEF00D)
    index = NearDuplicateIndex([7, 3, 5, 9], [h, h, h, h ^ 1])
    assert index.query(h, 0) == [(3, 0), (5, 0), (7, 0)]
    assert index.query(h, 1) == [(3, 0), (5, 0), (7, 0), (9, 1)]


class FakeRow:
    """Stands in for a SQLAlchemy Row: a sequence that is not a tuple."""

    def __init__(self, *values):
        self._values = values

    def __iter__(self):
        return iter(self._values)

    def __len__(self):
        return len(self._values)


@pytest.mark.parametrize("chunk", [1, 7, 1_000_000])
def test_from_rows_equals_constructor(corpus, chunk):
    _, ids, stored, queries = corpus
    ids, signed = ids[:500], stored[:500].view(np.int64)
    rows = (FakeRow(i, h) for i, h in zip(ids.tolist(), signed.tolist()))
    built = NearDuplicateIndex.from_rows(rows, chunk=chunk)
    direct = NearDuplicateIndex(ids, signed)
    assert len(built) == len(direct) == 500
    for q in queries[:5] + stored[:5].tolist():
        assert built.query(q, 10) == direct.query(q, 10)


def test_from_rows_empty():
    index = NearDuplicateIndex.from_rows(iter([]))
    assert len(index) == 0 and index.query(0, 4) == []


@pytest.mark.parametrize("radius", [-1, 17])
def test_radius_out_of_range_rejected(radius):
    with pytest.raises(InvalidInputError):
        NearDuplicateIndex([1], [1]).query(1, radius)


def test_mismatched_lengths_rejected():
    with pytest.raises(InvalidInputError):
        NearDuplicateIndex([1, 2], [1])


def test_bench_queries_reports_latencies(corpus):
    index, _, stored, _ = corpus
    stats = bench_queries(index, stored[:50], 8)
    assert stats["queries"] == 50
    assert 0 < stats["p50_ms"] <= stats["p95_ms"] <= stats["max_ms"]
    assert stats["mean_candidates"] >= 1
