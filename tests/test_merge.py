"""The merged verdict: each rule of docs/verdicts.md, one row of input and expected outcome."""

from __future__ import annotations

import pytest

from vestige.analysis.merge import OUTCOMES, merge_verdicts


def f(detector: str, kind: str, label: str, source: str | None = None, error: str | None = None, confidence=None) -> dict:
    return {"detector": detector, "kind": kind, "label": label, "source": source, "error": error, "confidence": confidence}


META_SD = f("metadata", "provenance", "synthetic", "stable-diffusion")
META_UNKNOWN = f("metadata", "provenance", "unknown")
INV_SD = f("inversion", "verification", "synthetic", "stable-diffusion")
INV_REAL = f("inversion", "verification", "real")
CLS_A_REAL = f("cls-a", "attribution", "real")
CLS_B_REAL = f("cls-b", "attribution", "real")
CLS_A_SD = f("cls-a", "attribution", "synthetic", "stable-diffusion")
CLS_B_SD = f("cls-b", "attribution", "synthetic", "stable-diffusion")
CLS_B_GAN = f("cls-b", "attribution", "synthetic", "stylegan2")
CLS_A_SYN = f("cls-a", "attribution", "synthetic", None)
BROKEN = f("broken", "attribution", "unknown", error="RuntimeError: boom")

CASES = [
    # findings, label, source, outcome, decided_by, rule number
    ([], "unknown", None, "inconclusive", None, "Rule 7"),
    ([BROKEN], "unknown", None, "inconclusive", None, "Rule 7"),
    ([META_UNKNOWN, BROKEN], "unknown", None, "inconclusive", None, "Rule 7"),
    ([META_SD], "synthetic", "stable-diffusion", "single", "provenance", "Rule 6"),
    ([META_UNKNOWN, CLS_A_REAL], "real", None, "single", "attribution", "Rule 6"),
    ([META_UNKNOWN, CLS_A_REAL, CLS_B_REAL, BROKEN], "real", None, "agree", "attribution", "Rule 6"),
    ([META_SD, CLS_A_SD, CLS_B_SD], "synthetic", "stable-diffusion", "agree", "provenance", "Rule 6"),
    ([META_SD, CLS_A_SYN], "synthetic", "stable-diffusion", "agree", "provenance", "Rule 6"),
    # provenance takes precedence, the contradiction is shown
    ([META_SD, CLS_A_REAL], "synthetic", "stable-diffusion", "conflict", "provenance", "Rule 5"),
    ([META_SD, CLS_B_GAN], "synthetic", "stable-diffusion", "conflict", "provenance", "Rule 5"),
    # verification before attribution
    ([META_UNKNOWN, INV_REAL, CLS_A_SD], "real", None, "conflict", "verification", "Rule 5"),
    ([INV_SD, CLS_A_SD], "synthetic", "stable-diffusion", "agree", "verification", "Rule 6"),
    # a tier that disagrees with itself
    ([CLS_A_REAL, CLS_B_SD], "unknown", None, "conflict", "attribution", "Rule 3"),
    ([CLS_A_SD, CLS_B_GAN], "synthetic", None, "conflict", "attribution", "Rule 3"),
    # synthetic, nobody names the generator
    ([CLS_A_SYN], "synthetic", None, "unknown-generator", "attribution", "Rule 6"),
    ([f("metadata", "provenance", "synthetic"), CLS_A_SYN], "synthetic", None, "unknown-generator", "provenance", "Rule 6"),
    # a lower tier names the source the deciding tier left open
    ([f("metadata", "provenance", "synthetic"), CLS_B_GAN], "synthetic", "stylegan2", "agree", "provenance", "Rule 6"),
]


@pytest.mark.parametrize("findings, label, source, outcome, decided_by, rule", CASES)
def test_merge_rules(findings, label, source, outcome, decided_by, rule):
    merged = merge_verdicts(findings)
    assert (merged["label"], merged["source"], merged["outcome"], merged["decided_by"]) == (label, source, outcome, decided_by)
    assert merged["rule"].startswith(rule + ":") and merged["rule"].endswith(".")
    assert merged["outcome"] in OUTCOMES
    assert set(merged["detectors"]) == {x["detector"] for x in findings}


def test_roles_name_who_decided_who_agreed_and_who_contradicted():
    merged = merge_verdicts([META_SD, CLS_A_SD, CLS_B_GAN, BROKEN, f("other", "verification", "unknown")])
    roles = {name: row["role"] for name, row in merged["detectors"].items()}
    assert roles == {"metadata": "decided", "cls-a": "agrees", "cls-b": "conflicts", "broken": "error", "other": "inconclusive"}
    assert "cls-b" in merged["rule"]


def test_lower_tiers_are_outranked_when_the_deciding_tier_disagrees_with_itself():
    merged = merge_verdicts([f("m1", "provenance", "synthetic"), f("m2", "provenance", "real"), CLS_A_REAL])
    assert merged["outcome"] == "conflict" and merged["label"] == "unknown"
    assert merged["detectors"]["cls-a"]["role"] == "outranked"
    assert merged["detectors"]["m1"]["role"] == merged["detectors"]["m2"]["role"] == "conflicts"


def test_an_unrecognised_kind_counts_as_attribution_and_order_does_not_matter():
    a = merge_verdicts([f("x", "novel-kind", "real"), META_UNKNOWN, CLS_B_REAL])
    b = merge_verdicts([CLS_B_REAL, META_UNKNOWN, f("x", "novel-kind", "real")])
    assert a == b and a["outcome"] == "agree" and a["detectors"]["x"]["kind"] == "attribution"


CLS_B_OUTSIDE = {**f("cls-b", "attribution", "unknown"),
                 "domain": {"in_domain": False, "reason": "outside the validated domain: a 640×427 image"}}
CLS_B_UNSURE = f("cls-b", "attribution", "unknown")


@pytest.mark.parametrize("others", [[CLS_B_OUTSIDE], [CLS_B_UNSURE], [CLS_B_UNSURE, BROKEN]])
def test_rule_8_one_classifier_alone_does_not_accuse_when_others_ran(others):
    merged = merge_verdicts([{**CLS_A_SD, "confidence": 0.99}, *others])
    assert (merged["label"], merged["source"], merged["outcome"]) == ("unknown", None, "inconclusive")
    assert merged["rule"].startswith("Rule 8:") and "cls-a" in merged["rule"] and "cls-b" in merged["rule"]
    assert merged["detectors"]["cls-a"]["role"] == "uncorroborated"
    assert merged["confidence"] is None


def test_rule_8_a_generator_is_named_only_by_two_attribution_detectors():
    merged = merge_verdicts([CLS_A_SD, f("cls-b", "attribution", "synthetic", None)])
    assert (merged["label"], merged["source"], merged["outcome"]) == ("synthetic", None, "unknown-generator")
    assert "only one of them names a generator" in merged["rule"]
    both = merge_verdicts([CLS_A_SD, CLS_B_SD])
    assert (both["label"], both["source"], both["outcome"]) == ("synthetic", "stable-diffusion", "agree")


def test_the_merged_confidence_is_the_weakest_deciding_confidence_and_the_explanation_says_who():
    merged = merge_verdicts([{**CLS_A_SD, "confidence": 0.97}, {**CLS_B_SD, "confidence": 0.91}])
    assert merged["confidence"] == 0.91
    assert merged["explanation"] == ("2 detectors (cls-a, cls-b) found that this image was made by the generator "
                                     "stable-diffusion with calibrated confidence of at least 0.91.")
    assert merge_verdicts([META_SD])["confidence"] is None  # metadata carries no calibrated confidence


def test_an_image_outside_every_attribution_domain_says_so_in_its_explanation():
    outside = [{**f(name, "attribution", "unknown"), "domain": {"in_domain": False, "reason": "a 640×427 image"}}
               for name in ("cls-a", "cls-b")]
    merged = merge_verdicts([META_UNKNOWN, *outside])
    assert merged["outcome"] == "inconclusive"
    assert "outside the validated domain of every attribution detector (cls-a, cls-b)" in merged["explanation"]
    assert merged["detectors"]["cls-a"]["in_domain"] is False
