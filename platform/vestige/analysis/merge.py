"""The merged verdict of one image: explicit rules over its detectors' findings.

The rules, in order (``docs/verdicts.md`` explains them for examiners):

1. A finding that carries an error, or whose label is ``unknown``, concludes
   nothing; it is listed, never counted.
2. Detectors are taken in tiers, by kind: ``provenance`` (what the file says
   about its origin), then ``verification`` (a test of one hypothesis, such as
   inversion through a generator the lab holds), then ``attribution``
   (classifiers). The first tier holding a conclusive finding decides.
3. If the deciding tier's findings disagree on the label, the outcome is
   ``conflict`` and the label ``unknown``: a tier cannot overrule itself.
   If they agree the image is synthetic but name different sources, the label
   is ``synthetic``, the source ``None`` and the outcome ``conflict``.
4. Otherwise the tier's label stands. A synthetic label without a source takes
   the one source that lower tiers' synthetic findings name, if exactly one.
5. A conclusive finding of a lower tier that contradicts the decided label
   (or names another source) makes the outcome ``conflict``; the label stays,
   because the higher tier takes precedence, but the contradiction is shown.
6. Without a conflict: ``unknown-generator`` when the image is synthetic and
   no detector names its source; ``agree`` when more than one conclusive
   finding supports the label; ``single`` when one finding alone decided.
7. With no conclusive finding at all the outcome is ``inconclusive``.
8. **Corroboration** (checked when the attribution tier would decide): when
   two or more attribution detectors gave a usable finding, a label needs at
   least two of them to conclude it, and a generator is named only when at
   least two name it. One classifier's ``synthetic`` against the others'
   inconclusive findings (outside their validated domain, or below their
   thresholds) is not enough: the outcome is ``inconclusive``. With one
   attribution detector only, its finding stands as ``single``.

Every merged verdict also has a ``confidence`` (the smallest calibrated
confidence among the findings that decided it: no single detector supports
the verdict with less) and an ``explanation``, one sentence an examiner can
read aloud.

:func:`merge_verdicts` is a pure function of the findings, so a merged verdict
can be recomputed from stored verdicts at any time.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

#: Kinds in order of precedence.
TIERS = ("provenance", "verification", "attribution")
OUTCOMES = ("agree", "conflict", "inconclusive", "unknown-generator", "single")


def _is_conclusive(finding: Mapping[str, Any]) -> bool:
    return not finding.get("error") and finding.get("label") in ("real", "synthetic")


def _kind(finding: Mapping[str, Any]) -> str:
    kind = finding.get("kind")
    return kind if kind in TIERS else "attribution"


def _supports(finding: Mapping[str, Any], label: str, source: str | None) -> bool:
    """Whether a conclusive finding is consistent with ``label`` (and ``source`` when one is known)."""
    if finding["label"] != label:
        return False
    return label != "synthetic" or source is None or finding.get("source") in (None, source)


def _domain(finding: Mapping[str, Any]) -> Mapping[str, Any]:
    domain = finding.get("domain")
    if domain is None:
        domain = (finding.get("evidence") or {}).get("domain")
    return domain if isinstance(domain, Mapping) else {}


def _detector_rows(findings: Sequence[Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    rows = {}
    for finding in findings:
        role = "error" if finding.get("error") else ("inconclusive" if not _is_conclusive(finding) else "pending")
        domain = _domain(finding)
        rows[str(finding["detector"])] = {
            "kind": _kind(finding),
            "label": finding.get("label", "unknown"),
            "source": finding.get("source"),
            "confidence": finding.get("confidence"),
            "error": finding.get("error"),
            "role": role,
            "in_domain": domain.get("in_domain"),
            "reason": domain.get("reason"),
        }
    return rows


def _corroboration(findings: Sequence[Mapping[str, Any]], conclusive: Sequence[Mapping[str, Any]],
                   detectors: dict[str, dict[str, Any]]) -> dict[str, Any] | None:
    """Rule 8: the inconclusive verdict when the attribution tier would decide without corroboration."""
    usable = [f for f in findings if _kind(f) == "attribution" and not f.get("error")]
    deciding = [f for f in conclusive if _kind(f) == "attribution"]
    if len(usable) < 2 or len(deciding) >= 2:
        return None
    speaker = str(deciding[0]["detector"])
    stated = deciding[0]["label"] + (f" ({deciding[0]['source']})" if deciding[0].get("source") else "")
    silent = sorted(str(f["detector"]) for f in usable if f not in deciding)
    detectors[speaker]["role"] = "uncorroborated"
    return _result("unknown", None, "inconclusive",
                   f"Rule 8: only {speaker} concluded ({stated}); {', '.join(silent)} could not confirm it, and one "
                   "attribution detector alone does not decide when others ran.", None, detectors)


def merge_verdicts(findings: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Merge one image's findings into one verdict, following the module's rules.

    Each finding is a mapping with ``detector``, ``kind`` (provenance,
    verification or attribution; anything else counts as attribution),
    ``label``, ``source`` and optionally ``confidence`` and ``error``.
    Returns ``{"label", "source", "outcome", "rule", "decided_by",
    "confidence", "explanation", "detectors"}``; ``detectors`` maps each detector to its finding's summary
    and its ``role``: ``decided``, ``agrees``, ``conflicts``, ``outranked``
    (a lower tier's finding when the deciding tier disagreed with itself),
    ``inconclusive`` or ``error``.
    """
    detectors = _detector_rows(findings)
    conclusive = [f for f in findings if _is_conclusive(f)]
    if not conclusive:
        usable = any(not f.get("error") for f in findings)
        rule = "no detector reached a conclusion" if usable else "no detector gave a usable finding"
        return _result("unknown", None, "inconclusive", f"Rule 7: {rule}.", None, detectors)

    tier = next(t for t in TIERS if any(_kind(f) == t for f in conclusive))
    if tier == "attribution" and (uncorroborated := _corroboration(findings, conclusive, detectors)) is not None:
        return uncorroborated
    deciding = [f for f in conclusive if _kind(f) == tier]
    others = [f for f in conclusive if _kind(f) != tier]
    names = ", ".join(sorted(str(f["detector"]) for f in deciding))

    labels = {f["label"] for f in deciding}
    if len(labels) > 1:
        for f in deciding:
            detectors[str(f["detector"])]["role"] = "conflicts"
        for f in others:
            detectors[str(f["detector"])]["role"] = "outranked"
        return _result("unknown", None, "conflict",
                       f"Rule 3: the {tier} findings ({names}) disagree on the label, so none stands.", tier, detectors)
    label = labels.pop()
    sources = {f.get("source") for f in deciding if f.get("source")}
    if label == "synthetic" and len(sources) > 1:
        for f in conclusive:
            detectors[str(f["detector"])]["role"] = "decided" if f in deciding else ("agrees" if f["label"] == label else "conflicts")
        return _result("synthetic", None, "conflict",
                       f"Rule 3: the {tier} findings ({names}) agree the image is synthetic but name different sources "
                       f"({', '.join(sorted(sources))}).", tier, detectors)

    source = sources.pop() if (label == "synthetic" and sources) else None
    naming = sum(1 for f in deciding if f.get("source") == source)
    single_name = tier == "attribution" and source is not None and naming < 2 and len(deciding) >= 2
    if single_name:  # rule 8: a generator is named by two attribution detectors or not at all
        source = None
    borrowed = False
    if label == "synthetic" and source is None:
        lower = {f.get("source") for f in others if f["label"] == "synthetic" and f.get("source")}
        if len(lower) == 1:
            source, borrowed = lower.pop(), True

    for f in deciding:
        detectors[str(f["detector"])]["role"] = "decided"
    contradicting = [f for f in others if not _supports(f, label, source)]
    for f in others:
        detectors[str(f["detector"])]["role"] = "conflicts" if f in contradicting else "agrees"

    stated = f"{label}" + (f" ({source})" if source else "")
    if contradicting:
        against = ", ".join(sorted(str(f["detector"]) for f in contradicting))
        return _result(label, source, "conflict",
                       f"Rule 5: the {tier} findings ({names}) decide {stated}, which takes precedence, "
                       f"but {against} contradict it.", tier, detectors)
    if label == "synthetic" and source is None:
        why = ("only one of them names a generator (rule 8)" if single_name
               else "no detector names the generator")
        return _result(label, None, "unknown-generator",
                       f"Rule 6: the {tier} findings ({names}) say synthetic and {why}.", tier, detectors)
    via = " (source named by a lower tier)" if borrowed else ""
    if len(conclusive) > 1:
        return _result(label, source, "agree",
                       f"Rule 6: the {tier} findings ({names}) decide {stated}{via} and every other conclusive finding agrees.",
                       tier, detectors)
    return _result(label, source, "single",
                   f"Rule 6: {names} alone reached a conclusion ({stated}); no other detector could confirm or contradict it.",
                   tier, detectors)


def _result(label: str, source: str | None, outcome: str, rule: str, tier: str | None,
            detectors: dict[str, dict[str, Any]]) -> dict[str, Any]:
    deciders = [row for row in detectors.values() if row["role"] == "decided"]
    confidences = [row["confidence"] for row in deciders if row["confidence"] is not None]
    confidence = min(confidences) if confidences and label != "unknown" else None
    return {"label": label, "source": source, "outcome": outcome, "rule": rule, "decided_by": tier,
            "confidence": confidence, "explanation": explain(label, source, outcome, deciders, detectors, confidence),
            "detectors": detectors}


def explain(label: str, source: str | None, outcome: str, deciders: Sequence[Mapping[str, Any]],
            detectors: Mapping[str, Mapping[str, Any]], confidence: float | None) -> str:
    """One plain sentence for the merged verdict."""
    names = sorted(name for name, row in detectors.items() if row in deciders)
    outside = sorted(name for name, row in detectors.items() if row.get("in_domain") is False)
    if label == "unknown":
        if outside and len(outside) == sum(1 for row in detectors.values() if row["kind"] == "attribution"):
            return ("No conclusion: the image lies outside the validated domain of every attribution detector "
                    f"({', '.join(outside)}), so none of them may judge it.")
        if outcome == "conflict":
            return "No conclusion: the detectors that could judge this image contradict each other."
        return "No conclusion: no detector could back a finding on this image to the required standard."
    by = (f"{names[0]} alone" if len(names) == 1 else f"{len(names)} detectors ({', '.join(names)})") if names else "the detectors"
    level = "" if confidence is None else f" with calibrated confidence of at least {confidence:.2f}"
    if label == "real":
        what = "is a camera image (real)"
    elif source:
        what = f"was made by the generator {source}"
    else:
        what = "is synthetic, by a generator none of them can name"
    caveat = " Other findings contradict this; see the rule." if outcome == "conflict" else ""
    return f"{by[0].upper()}{by[1:]} found that this image {what}{level}.{caveat}"
