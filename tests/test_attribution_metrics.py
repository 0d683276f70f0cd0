"""vestige.models.attribution_metrics (scikit-learn underneath) against brute-force definitions, on random
labellings of mixed label types, and at the edges where a score is undefined."""

from __future__ import annotations

import itertools
import math
import random

import pytest

from vestige.models.attribution_metrics import accuracy, auroc, confusion_matrix, macro_f1, normalized_mutual_information

LABELS = ("real", "gan-a", 3, None, ("diffusion", 2))  # any hashable: strings, ints, None, tuples


def _nmi(true, predicted):
    n = len(true)
    p_true = {a: true.count(a) / n for a in set(true)}
    p_pred = {b: predicted.count(b) / n for b in set(predicted)}
    joint = {}
    for pair in zip(true, predicted):
        joint[pair] = joint.get(pair, 0) + 1 / n
    h_true = -sum(p * math.log(p) for p in p_true.values())
    h_pred = -sum(p * math.log(p) for p in p_pred.values())
    if h_true == 0 and h_pred == 0:
        return 1.0
    mutual = sum(p * math.log(p / (p_true[a] * p_pred[b])) for (a, b), p in joint.items())
    return mutual / ((h_true + h_pred) / 2)


def _f1(true, predicted, classes):
    scores = []
    for c in classes:
        tp = sum(t == c and p == c for t, p in zip(true, predicted))
        denominator = sum(p == c for p in predicted) + sum(t == c for t in true)
        scores.append(2 * tp / denominator if tp else 0.0)
    return sum(scores) / len(scores)


def _mann_whitney(scores, positive):
    pos = [s for s, y in zip(scores, positive) if y]
    neg = [s for s, y in zip(scores, positive) if not y]
    wins = sum(1.0 if p > q else 0.5 if p == q else 0.0 for p, q in itertools.product(pos, neg))
    return wins / (len(pos) * len(neg))


@pytest.mark.parametrize("seed", range(20))
def test_the_scores_match_their_definitions_on_random_labellings(seed):
    rng = random.Random(seed)
    n = rng.randint(1, 60)
    true = [rng.choice(LABELS) for _ in range(n)]
    predicted = [rng.choice(LABELS[: rng.randint(1, len(LABELS))]) for _ in range(n)]
    assert accuracy(true, predicted) == pytest.approx(sum(t == p for t, p in zip(true, predicted)) / n)
    assert normalized_mutual_information(true, predicted) == pytest.approx(max(0.0, min(1.0, _nmi(true, predicted))), abs=1e-9)
    assert macro_f1(true, predicted) == pytest.approx(_f1(true, predicted, list(dict.fromkeys(true))))
    assert macro_f1(true, predicted, labels=LABELS) == pytest.approx(_f1(true, predicted, LABELS))
    scores = [rng.choice((0.1, 0.5, 0.5, 0.9, rng.random())) for _ in range(n)]
    positive = [rng.random() < 0.4 for _ in range(n)]
    expected = _mann_whitney(scores, positive) if any(positive) and not all(positive) else None
    assert auroc(scores, positive) == (None if expected is None else pytest.approx(expected))
    rows, columns = list(LABELS[:3]), list(LABELS[1:]) + ["never"]
    assert confusion_matrix(true, predicted, rows, columns) == [
        [sum(t == r and p == c for t, p in zip(true, predicted)) for c in columns] for r in rows]


def test_undefined_scores_are_none_and_unequal_lengths_are_refused():
    assert accuracy([], []) is None and normalized_mutual_information([], []) is None and macro_f1([], []) is None
    assert auroc([0.1, 0.2], [True, True]) is None and auroc([], []) is None
    assert confusion_matrix([], [], ["a"], ["a", "b"]) == [[0, 0]]
    assert confusion_matrix(["a"], ["b"], [], []) == []
    with pytest.raises(ValueError, match="differ in length"):
        accuracy(["a"], [])
    with pytest.raises(ValueError, match="differ in length"):
        macro_f1(["a"], ["a", "b"])
